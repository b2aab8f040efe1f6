package cab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/internal/ctest"
)

// benchCab is an MSZIP cabinet gcab makes of 24 binary-like files of 2
// MiB (48 MiB expanded), written to a directory that lives for the run.
var benchCab = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "cabbench")
	if err != nil {
		return "", err
	}
	args := []string{"-c", "-z", filepath.Join(dir, "bench.cab")}
	for i := range 24 {
		name := fmt.Sprintf("x%02d.dll", i)
		if err := os.WriteFile(filepath.Join(dir, name), ctest.Bytes(uint64(100+i), 2<<20), 0o644); err != nil {
			return "", err
		}
		args = append(args, name)
	}
	cmd := exec.Command("gcab", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("gcab: %v: %s", err, out)
	}
	return filepath.Join(dir, "bench.cab"), nil
})

// TestMain removes the benchmark's cabinet and files.
func TestMain(m *testing.M) {
	code := m.Run()
	if !ranBench {
		os.Exit(code)
	}
	if p, err := benchCab(); err == nil && p != "" {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

var ranBench bool

func benchInput(b *testing.B) ([]byte, string) {
	ctest.Need(b, "gcab")
	ranBench = true
	p, err := benchCab()
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return data, p
}

// BenchmarkWalk walks the 48 MiB MSZIP cabinet and reads every member
// (decompression, block checksums, the checks); MB/s of expanded bytes.
func BenchmarkWalk(b *testing.B) {
	data, _ := benchInput(b)
	b.SetBytes(24 << 21)
	buf := make([]byte, 32<<10)
	for b.Loop() {
		err := Reader{}.Walk(context.Background(), bytes.NewReader(data), int64(len(data)), "bench.cab", nil, func(m *container.Member, r io.Reader) error {
			_, err := io.CopyBuffer(io.Discard, r, buf)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGcabExtract is the peer on the same cabinet: gcab -x, which
// writes the members to a directory (on the same file system as the
// test's temporary files); MB/s of expanded bytes.
func BenchmarkGcabExtract(b *testing.B) {
	_, p := benchInput(b)
	b.SetBytes(24 << 21)
	out := b.TempDir()
	for b.Loop() {
		if out, err := exec.Command("gcab", "-x", "-C", out, p).CombinedOutput(); err != nil {
			b.Fatalf("gcab -x: %v: %s", err, out)
		}
	}
}
