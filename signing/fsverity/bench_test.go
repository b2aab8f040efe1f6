package fsverity

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// BenchmarkDigest: the fs-verity digest of 16 MiB in memory, written in
// the pipeline's 256 KiB reads; SHA256 of the same bytes beside it (the
// tree hashes 1/128 more than the data).
func BenchmarkDigest(b *testing.B) {
	data := content(16<<20, 9)
	b.Run("fsverity", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			d := New()
			for off := 0; off < len(data); off += 256 << 10 {
				d.Write(data[off : off+256<<10])
			}
			d.Sum(nil)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sha256.Sum256(data)
		}
	})
}

// BenchmarkPeerFiles: csv's digest of a corpus of 64 files (16 KiB to
// 2 MiB, 40 MiB in all) read from disk, one at a time on one core, against
// `fsverity digest` run once per file, as a script hashing a build would.
func BenchmarkPeerFiles(b *testing.B) {
	tool := testenv.Tool(b, "fsverity")
	dir := b.TempDir()
	var files []string
	total := int64(0)
	for i := range 64 {
		n := 16<<10 + i*(2<<20-16<<10)/63
		p := filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err := os.WriteFile(p, content(n, uint64(i)), 0o600); err != nil {
			b.Fatal(err)
		}
		files = append(files, p)
		total += int64(n)
	}
	buf := make([]byte, 256<<10)
	b.Run("csv", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			for _, p := range files {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				d := New()
				for {
					n, err := f.Read(buf)
					d.Write(buf[:n])
					if err != nil {
						break
					}
				}
				f.Close()
				d.Sum(nil)
			}
		}
	})
	b.Run("fsverity-digest", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			for _, p := range files {
				if out, err := exec.Command(tool, "digest", p).CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			}
		}
	})
}
