package dmverity

import (
	"bytes"
	"errors"
	"testing"

	"github.com/codesignval/csv/signing"
)

// FuzzSuperblock parses arbitrary bytes as a superblock: never a panic;
// what parses is canonical (Marshal gives back the same 512 bytes, as the
// parser refuses every byte no field uses) and its layout is sane. Seeds:
// superblocks of several parameter sets (byte-identical to veritysetup's,
// TestMatchesVeritysetup), cut and flipped.
func FuzzSuperblock(f *testing.F) {
	for _, c := range peerCases() {
		l, err := NewLayout(c.p, uint64(c.blocks))
		if err != nil {
			f.Fatal(err)
		}
		b := (&Superblock{Layout: l, UUID: uuid}).Marshal()
		f.Add(b)
		f.Add(b[:300])
		for _, at := range []int{8, 12, 40, 64, 72, 79, 80, 100, 400} {
			x := bytes.Clone(b)
			x[at] ^= 0x41
			f.Add(x)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			if sb != nil || !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("%v with %v", sb, err)
			}
			return
		}
		if !bytes.Equal(sb.Marshal(), b[:SuperblockSize]) {
			t.Fatal("a superblock that parses is not canonical")
		}
		if sb.Levels > MaxLevels || sb.HashDeviceSize() <= 0 {
			t.Fatalf("layout %d levels, %d bytes", sb.Levels, sb.HashDeviceSize())
		}
	})
}

// FuzzVerify checks fixed data against an arbitrary hash device: never a
// panic, and a device is accepted only with the root hash of the data's
// tree (it must then hold that tree). Seeds: the hash device Format
// writes (byte-identical to veritysetup's), cut and flipped.
func FuzzVerify(f *testing.F) {
	data := content(130*1024, 3)
	p := Params{DataBlockSize: 1024, HashBlockSize: 1024, Salt: []byte("fuzz")}
	var dev writerAt
	_, root, err := Format(bytes.NewReader(data), int64(len(data)), p, uuid, &dev)
	if err != nil {
		f.Fatal(err)
	}
	good := dev.b
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:1024])
	for _, at := range []int{2048, 3000, len(good) - 5} {
		x := bytes.Clone(good)
		x[at] ^= 1
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, hash []byte) {
		if _, err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(hash), root); err != nil {
			return
		}
		// Only the UUID and bytes past the tree may differ.
		if len(hash) < len(good) || !bytes.Equal(hash[32:len(good)], good[32:]) || !bytes.Equal(hash[:16], good[:16]) {
			t.Fatal("a hash device other than the data's tree is accepted")
		}
	})
}

// writerAt is an in-memory io.WriterAt.
type writerAt struct{ b []byte }

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	if n := int(off) + len(p); n > len(w.b) {
		w.b = append(w.b, make([]byte, n-len(w.b))...)
	}
	copy(w.b[off:], p)
	return len(p), nil
}
