package dmverity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func write(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var rootRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})$`)

// peerFormat runs veritysetup format and returns the root hash it prints.
func peerFormat(t testing.TB, tool, data, hash string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(tool, append([]string{"format", data, hash}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("veritysetup format printed no root hash:\n%s", out)
	}
	root, _ := hex.DecodeString(string(m[1]))
	return root
}

type peerCase struct {
	name   string
	blocks int
	p      Params
}

var uuid = [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}

func peerCases() []peerCase {
	salt := bytes.Repeat([]byte{0xa5, 0x5a}, 16)
	return []peerCase{
		{"one-block", 1, Params{Salt: salt}},
		{"two-blocks", 2, Params{Salt: salt}},
		{"one-hash-block", 128, Params{Salt: salt}},
		{"two-hash-blocks", 129, Params{Salt: salt}},
		{"three-levels", 128*128 + 3, Params{Salt: salt}},
		{"no-salt", 300, Params{}},
		{"small-blocks", 1000, Params{DataBlockSize: 512, HashBlockSize: 1024, Salt: []byte{1, 2, 3}}},
		{"big-hash-blocks", 700, Params{DataBlockSize: 1024, HashBlockSize: 8192, Salt: content(256, 9)}},
	}
}

func peerArgs(c peerCase) []string {
	p := c.p
	p.normalize()
	salt := "-"
	if len(p.Salt) > 0 {
		salt = hex.EncodeToString(p.Salt)
	}
	return []string{"--salt=" + salt, fmt.Sprintf("--data-block-size=%d", p.DataBlockSize), fmt.Sprintf("--hash-block-size=%d", p.HashBlockSize),
		"--uuid=12345678-9abc-def0-1122-334455667788"}
}

type fileAt struct{ *os.File }

// TestMatchesVeritysetup: for each size and parameter set, csv's root hash
// equals veritysetup format's and the hash device csv writes is
// byte-identical to the one veritysetup writes; veritysetup verify accepts
// csv's hash device and refuses it with one byte of the data changed;
// csv's Verify accepts veritysetup's hash device and refuses a changed
// data byte, a changed hash device byte and another root hash.
func TestMatchesVeritysetup(t *testing.T) {
	tool := testenv.Tool(t, "veritysetup")
	for _, c := range peerCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bs := c.p.DataBlockSize
			if bs == 0 {
				bs = DefaultBlockSize
			}
			data := content(c.blocks*bs, uint64(c.blocks))
			dataPath := write(t, dir, "data.img", data)
			peerHash := filepath.Join(dir, "peer.verity")
			want := peerFormat(t, tool, dataPath, peerHash, peerArgs(c)...)

			root, err := RootHash(bytes.NewReader(data), int64(len(data)), c.p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(root, want) {
				t.Fatalf("root hash %x, veritysetup %x", root, want)
			}

			mine := filepath.Join(dir, "csv.verity")
			f, err := os.Create(mine)
			if err != nil {
				t.Fatal(err)
			}
			sb, root2, err := Format(bytes.NewReader(data), int64(len(data)), c.p, uuid, f)
			f.Close()
			if err != nil || !bytes.Equal(root2, want) {
				t.Fatalf("Format: %x, %v", root2, err)
			}
			peerBytes, _ := os.ReadFile(peerHash)
			mineBytes, _ := os.ReadFile(mine)
			if !bytes.Equal(peerBytes, mineBytes) {
				t.Errorf("hash device: csv's is %d bytes, veritysetup's %d; differ at %d", len(mineBytes), len(peerBytes), firstDiff(mineBytes, peerBytes))
			}
			if int64(len(peerBytes)) != sb.HashDeviceSize() {
				t.Errorf("HashDeviceSize %d, veritysetup wrote %d", sb.HashDeviceSize(), len(peerBytes))
			}
			hexRoot := hex.EncodeToString(want)
			if out, err := exec.Command(tool, "verify", dataPath, mine, hexRoot).CombinedOutput(); err != nil {
				t.Errorf("veritysetup verify refuses csv's hash device: %v\n%s", err, out)
			}

			// csv verifies veritysetup's hash device.
			hf, err := os.Open(peerHash)
			if err != nil {
				t.Fatal(err)
			}
			defer hf.Close()
			got, err := Verify(bytes.NewReader(data), int64(len(data)), hf, want)
			if err != nil {
				t.Fatalf("Verify of veritysetup's hash device: %v", err)
			}
			if got.DataBlocks != uint64(c.blocks) || !bytes.Equal(got.Salt, c.p.Salt) && len(c.p.Salt) > 0 || got.UUID != uuid {
				t.Errorf("superblock %+v", got)
			}
			changed := bytes.Clone(data)
			changed[len(changed)/3] ^= 1
			if _, err := Verify(bytes.NewReader(changed), int64(len(data)), hf, want); !errors.Is(err, ErrMismatch) {
				t.Errorf("Verify of changed data: %v", err)
			}
			write(t, dir, "changed.img", changed)
			if out, err := exec.Command(tool, "verify", filepath.Join(dir, "changed.img"), mine, hexRoot).CombinedOutput(); err == nil {
				t.Errorf("veritysetup verify accepts changed data:\n%s", out)
			}
			other := bytes.Clone(want)
			other[0] ^= 1
			if _, err := Verify(bytes.NewReader(data), int64(len(data)), hf, other); !errors.Is(err, ErrMismatch) {
				t.Errorf("Verify with another root hash: %v", err)
			}
			if len(peerBytes) > int(sb.start)*sb.HashBlockSize {
				tampered := bytes.Clone(peerBytes)
				tampered[len(tampered)-sb.HashBlockSize] ^= 1 // level 0's last block
				if _, err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(tampered), want); !errors.Is(err, ErrMismatch) {
					t.Errorf("Verify of a changed hash device: %v", err)
				}
			}
			if _, err := Verify(bytes.NewReader(data[:len(data)-bs]), int64(len(data)-bs), hf, want); !errors.Is(err, ErrMismatch) {
				t.Errorf("Verify of shorter data: %v", err)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRefusesUncoveredBytes: data that is not a whole number of blocks
// is refused (veritysetup would leave the tail unprotected).
func TestRefusesUncoveredBytes(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4097} {
		if _, err := RootHash(bytes.NewReader(make([]byte, n)), int64(n), Params{}); !errors.Is(err, ErrParams) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
	if _, err := RootHash(bytes.NewReader(nil), 4096, Params{DataBlockSize: 3000}); !errors.Is(err, ErrParams) {
		t.Errorf("block size 3000: %v", err)
	}
	if _, err := RootHash(bytes.NewReader(nil), 4096, Params{Salt: make([]byte, 257)}); !errors.Is(err, ErrParams) {
		t.Errorf("257-byte salt: %v", err)
	}
}

// TestSuperblockRefuses: every field is checked; the error names its
// offset.
func TestSuperblockRefuses(t *testing.T) {
	l, err := NewLayout(Params{Salt: []byte{1, 2, 3, 4}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	good := (&Superblock{Layout: l, UUID: uuid}).Marshal()
	if sb, err := ParseSuperblock(good); err != nil || sb.DataBlocks != 10 || !bytes.Equal(sb.Salt, []byte{1, 2, 3, 4}) {
		t.Fatalf("good superblock: %v %v", sb, err)
	}
	set := func(off int, v ...byte) []byte { b := bytes.Clone(good); copy(b[off:], v); return b }
	for _, tc := range []struct {
		name string
		b    []byte
		off  int64
	}{
		{"short", good[:511], 511},
		{"signature", set(0, 'V'), sbSignature},
		{"version", set(sbVersion, 2), sbVersion},
		{"chrome-os", set(sbHashType, 0), sbHashType},
		{"algorithm", set(sbAlgorithm, 's', 'h', 'a', '1', 0, 0), sbAlgorithm},
		{"algorithm-tail", set(sbAlgorithm+10, 'x'), sbAlgorithm + 6},
		{"data-block-size", set(sbDataBlockSize, 0, 0x30, 0, 0), sbDataBlockSize},
		{"hash-block-size", set(sbHashBlockSize, 0, 1, 0, 0), sbHashBlockSize},
		{"huge-block", set(sbHashBlockSize, 0, 0, 0, 0x80), sbHashBlockSize},
		{"no-blocks", set(sbDataBlocks, 0, 0, 0, 0, 0, 0, 0, 0), sbDataBlocks},
		{"too-much-data", set(sbDataBlocks, 0, 0, 0, 0, 0, 0, 0, 0x80), sbDataBlocks},
		{"salt-size", set(sbSaltSize, 1, 1), sbSaltSize},
		{"pad1", set(sbPad1+2, 1), sbPad1},
		{"salt-tail", set(sbSalt+4, 9), sbSalt + 4},
		{"pad2", set(SuperblockSize-1, 1), sbPad2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := ParseSuperblock(tc.b)
			var me *signing.MalformedError
			if sb != nil || !errors.As(err, &me) || !errors.Is(err, signing.ErrMalformed) || me.Offset != tc.off {
				t.Errorf("ParseSuperblock: %v, %v; want offset %d", sb, err, tc.off)
			}
		})
	}
}

// TestWriteSizes: the root hash is the same whatever the writes' sizes,
// on one core or several (large writes hash their blocks in parallel).
func TestWriteSizes(t *testing.T) {
	p := Params{DataBlockSize: 1024, HashBlockSize: 4096, Salt: []byte("s")}
	data := content(700*1024, 4)
	l, err := NewLayout(p, 700)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, workers := range []int{1, 2, 7} {
		for _, chunk := range []int{1, 1000, 1024, 64 << 10, 100000, len(data)} {
			if chunk == 1 && workers > 1 {
				continue
			}
			h := NewHasher(l, nil)
			h.workers = workers
			for off := 0; off < len(data); off += chunk {
				if _, err := h.Write(data[off:min(off+chunk, len(data))]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := h.Sum()
			if err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = got
			} else if !bytes.Equal(got, want) {
				t.Errorf("%d workers, writes of %d: %x, want %x", workers, chunk, got, want)
			}
		}
	}
	h := NewHasher(l, nil)
	if _, err := h.Write(append(data, make([]byte, 1024)...)); err == nil {
		t.Error("a write past the tree's data is accepted")
	}
}
