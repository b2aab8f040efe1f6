package dmverity

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// BenchmarkRootHash1GiB: the root hash of a 1 GiB image read from a file
// (256 KiB reads, data blocks hashed on every core) against veritysetup
// format of the same file, in the same run. Run it once:
//
//	go test -run '^$' -bench RootHash1GiB -benchtime 1x ./signing/dmverity
func BenchmarkRootHash1GiB(b *testing.B) {
	vs := testenv.Tool(b, "veritysetup")
	dir := b.TempDir()
	img := filepath.Join(dir, "img")
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	chunk := content(1<<20, 1)
	for range 1024 {
		f.Write(chunk)
	}
	f.Close()
	const size = 1 << 30
	p := Params{Salt: []byte("0123456789abcdef0123456789abcdef")}
	b.Run("csv", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			f, _ := os.Open(img)
			if _, err := RootHash(f, size, p); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("veritysetup-format", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if out, err := exec.Command(vs, "format", img, filepath.Join(dir, "hash"), "--salt=3031323334353637383961626364656630313233343536373839616263646566").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
