package fsverity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// peerSizes are the file sizes the digest is checked at against `fsverity
// digest`: empty, one byte, around one block, a full level-0 block of
// hashes (128 blocks) and one block past it, around two levels, and a few
// MB.
var peerSizes = []int{0, 1, 4095, 4096, 4097, 128 * 4096, 128*4096 + 1, 128*128*4096 - 1, 128*128*4096 + 4096, 3<<20 + 17}

// content returns n bytes of deterministic pseudo-random data.
func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// peerDigest runs `fsverity digest --compact` on the file.
func peerDigest(t *testing.T, tool, path string) []byte {
	t.Helper()
	out, err := exec.Command(tool, "digest", "--compact", "--hash-alg=sha256", "--block-size=4096", path).CombinedOutput()
	if err != nil {
		t.Fatalf("fsverity digest %s: %v\n%s", path, err, out)
	}
	d, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil || len(d) != HashSize {
		t.Fatalf("fsverity digest printed %q", out)
	}
	return d
}

// digestOf computes the digest writing data in chunks of the given size.
func digestOf(data []byte, chunk int) []byte {
	d := New()
	for len(data) > 0 {
		n := min(chunk, len(data))
		d.Write(data[:n])
		data = data[n:]
	}
	return d.Sum(nil)
}

// TestDigestMatchesPeer: csv's digest equals `fsverity digest`'s for every
// size, whatever the write sizes, and a changed byte changes both.
func TestDigestMatchesPeer(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	dir := t.TempDir()
	for _, n := range peerSizes {
		data := content(n, 1)
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		want := peerDigest(t, tool, p)
		for _, chunk := range []int{1 << 30, 4096, 1000, 65536 + 3} {
			if n > 1<<20 && chunk == 1000 {
				continue
			}
			if got := digestOf(data, chunk); !bytes.Equal(got, want) {
				t.Errorf("size %d, writes of %d: digest %x, fsverity digest %x", n, chunk, got, want)
			}
		}
		if n == 0 {
			continue
		}
		data[n/2] ^= 1
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		changed := peerDigest(t, tool, p)
		if bytes.Equal(changed, want) {
			t.Fatalf("size %d: fsverity digest did not change with a byte", n)
		}
		if got := digestOf(data, 1<<20); !bytes.Equal(got, changed) {
			t.Errorf("size %d, one byte changed: digest %x, fsverity digest %x", n, got, changed)
		}
	}
}

// TestRootHashMatchesPeerTree: the root hash is the hash of the top block
// of the Merkle tree `fsverity digest --out-merkle-tree` writes (levels
// from the top; the tree of a one-block file is empty and its root hash is
// the block's hash), and the file digest is the SHA-256 of the descriptor
// --out-descriptor writes, which is Descriptor's.
func TestRootHashMatchesPeerTree(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	dir := t.TempDir()
	for _, n := range []int{1, 4096, 4097, 128*4096 + 1, 2 << 20} {
		data := content(n, 2)
		p := filepath.Join(dir, "f")
		tree, desc := filepath.Join(dir, "tree"), filepath.Join(dir, "desc")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "digest", "--out-merkle-tree="+tree, "--out-descriptor="+desc, p).CombinedOutput()
		if err != nil {
			t.Fatalf("fsverity digest: %v\n%s", err, out)
		}
		d := New()
		d.Write(data)
		root := d.RootHash()
		tb, _ := os.ReadFile(tree)
		var want [32]byte
		if len(tb) == 0 {
			want = sha256.Sum256(append(data, make([]byte, BlockSize-n)...))
		} else {
			want = sha256.Sum256(tb[:BlockSize])
		}
		if !bytes.Equal(root, want[:]) {
			t.Errorf("size %d: root hash %x, top of fsverity's tree %x", n, root, want)
		}
		db, _ := os.ReadFile(desc)
		if got := Descriptor(int64(n), root); !bytes.Equal(got, db) {
			t.Errorf("size %d: descriptor\n%x\nfsverity's\n%x", n, got, db)
		}
		if lv := Levels(int64(n)); (lv == 0) != (len(tb) == 0) {
			t.Errorf("size %d: %d levels, fsverity wrote a %d-byte tree", n, lv, len(tb))
		}
	}
}

// TestEmptyAndReset: the empty file's root hash is all zeros; Sum does not
// change the state; Reset starts over.
func TestEmptyAndReset(t *testing.T) {
	d := New()
	if !bytes.Equal(d.RootHash(), make([]byte, 32)) {
		t.Fatalf("empty root hash %x", d.RootHash())
	}
	empty := d.Sum(nil)
	data := content(3*BlockSize+5, 3)
	d.Write(data[:5000])
	first := d.Sum(nil)
	if !bytes.Equal(first, d.Sum(nil)) {
		t.Fatal("Sum changed the digester")
	}
	d.Write(data[5000:])
	full := d.Sum(nil)
	if !bytes.Equal(full, digestOf(data, 7)) {
		t.Fatal("Sum in the middle changed the result")
	}
	d.Reset()
	if !bytes.Equal(d.Sum(nil), empty) {
		t.Fatal("Reset did not forget")
	}
	d.Write(data)
	if !bytes.Equal(d.Sum(nil), full) {
		t.Fatal("digest after Reset differs")
	}
}
