package image

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/signing/dmverity"
)

// FuzzInspect runs the handler on an arbitrary image and an arbitrary hash
// device beside it (IMAGE.verity): never a panic, every error a
// *format.MalformedError, and a dm-verity digest only when the hash device
// holds the image's own tree. Seeds: an ext4 image mkfs.ext4 makes and the
// hash device veritysetup writes (when they are installed), and an image
// and device csv makes, cut and flipped.
func FuzzInspect(f *testing.F) {
	img := make([]byte, 8*4096)
	copy(img, "hsqs")
	img[28] = 4
	for i := 4096; i < len(img); i++ {
		img[i] = byte(i * 7)
	}
	var dev memWriter
	if _, _, err := dmverity.Format(bytes.NewReader(img), int64(len(img)), dmverity.Params{Salt: []byte("seed")}, [16]byte{1}, &dev); err != nil {
		f.Fatal(err)
	}
	seeds := [][2][]byte{{img, dev.b}}
	if _, err := lookPaths("mkfs.ext4", "veritysetup"); err == nil {
		dir := f.TempDir()
		p := mkfs(f, Ext4, dir)
		verity(f, p)
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(p + SuffixVerity)
		seeds = append(seeds, [2][]byte{a, b})
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
		f.Add(s[0], s[1][:len(s[1])-1])
		f.Add(s[0], s[1][:600])
		f.Add(s[0][:len(s[0])-4096], s[1])
		x := bytes.Clone(s[1])
		x[80] ^= 0x10
		f.Add(s[0], x)
		y := bytes.Clone(s[0])
		y[len(y)-1] ^= 1
		f.Add(y, s[1])
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, image, hashDev []byte) {
		if Kind(image) == "" {
			if formattest.Sniff(Handler{}, image) {
				t.Fatal("sniffed without a magic number")
			}
			return
		}
		p := filepath.Join(dir, "fuzz.img")
		if err := os.WriteFile(p, image, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+SuffixVerity, hashDev, 0o600); err != nil {
			t.Fatal(err)
		}
		res := inspect(t, p, cipolicy.AllNeeds(), nil)
		formattest.CheckInvariants(t, &formattest.Result{Facts: res.facts, Digests: res.digests, Err: res.err}, cipolicy.AllNeeds())
		root := res.digests.Get(cipolicy.DMVeritySHA256)
		if res.err != nil || root == nil {
			return
		}
		sb, err := dmverity.ParseSuperblock(hashDev)
		if err != nil {
			t.Fatalf("a digest from a superblock that does not parse: %v", err)
		}
		want, err := dmverity.RootHash(bytes.NewReader(image), int64(len(image)), sb.Params)
		if err != nil || !bytes.Equal(want, root) {
			t.Fatalf("digest %x, the image's tree %x (%v)", root, want, err)
		}
	})
}

type memWriter struct{ b []byte }

func (w *memWriter) WriteAt(p []byte, off int64) (int, error) {
	if n := int(off) + len(p); n > len(w.b) {
		w.b = append(w.b, make([]byte, n-len(w.b))...)
	}
	copy(w.b[off:], p)
	return len(p), nil
}
