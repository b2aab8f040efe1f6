package cab

import (
	"bytes"
	stdflate "compress/flate"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

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
	start := cpuTime()
	for b.Loop() {
		err := Reader{}.Walk(context.Background(), bytes.NewReader(data), int64(len(data)), "bench.cab", nil, func(m *container.Member, r io.Reader) error {
			_, err := io.CopyBuffer(io.Discard, r, buf)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpuTime()-start, 24<<21)
	b.ReportMetric(float64(len(data))/1e6, "cab-MB")
}

// reportCPU adds the expanded MB per CPU second of a benchmark that took
// cpu in all (its own, or the peer's processes').
func reportCPU(b *testing.B, cpu time.Duration, perOp int64) {
	if cpu > 0 {
		b.ReportMetric(float64(perOp)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

// BenchmarkWalkStdlibFlate is BenchmarkWalk with compress/flate in place
// of klauspost/compress/flate.
func BenchmarkWalkStdlibFlate(b *testing.B) {
	saved := newFlate
	defer func() { newFlate = saved }()
	newFlate = func(r io.Reader, dict []byte) io.ReadCloser { return stdflate.NewReaderDict(r, dict) }
	BenchmarkWalk(b)
}

// BenchmarkGcabExtract is the peer on the same cabinet: gcab -x, which
// writes the members to a directory (on the same file system as the
// test's temporary files); MB/s of expanded bytes.
func BenchmarkGcabExtract(b *testing.B) {
	_, p := benchInput(b)
	b.SetBytes(24 << 21)
	out := b.TempDir()
	var cpu time.Duration
	for b.Loop() {
		cmd := exec.Command("gcab", "-x", "-C", out, p)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("gcab -x: %v: %s", err, out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	reportCPU(b, cpu, 24<<21)
}
