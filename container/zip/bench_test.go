package zip

import (
	stdzip "archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"

	"github.com/codesignval/csv/container"
)

// reportCPU adds the MB per CPU second of a benchmark that started at
// start (cpuTime) and delivered total bytes per op.
func reportCPU(b *testing.B, start time.Duration, total int64) {
	if d := cpuTime() - start; d > 0 {
		b.ReportMetric(float64(total)*float64(b.N)/d.Seconds()/1e6, "MB/cpu-s")
	}
}

var benchZip = sync.OnceValues(func() ([]byte, int64) {
	var buf bytes.Buffer
	w := stdzip.NewWriter(&buf)
	var total int64
	for i := range 32 {
		data := binaryLike(uint64(100+i), 1<<20+i*4096)
		f, err := w.Create(fmt.Sprintf("lib/x%02d.dll", i))
		if err != nil {
			panic(err)
		}
		f.Write(data)
		total += int64(len(data))
	}
	w.Close()
	return buf.Bytes(), total
})

// BenchmarkWalk walks a zip of 32 deflated binary-like members (about 33
// MB expanded) and reads every member: decompression, CRC-32 and the
// checks; MB/s of expanded bytes.
func BenchmarkWalk(b *testing.B) {
	z, total := benchZip()
	b.SetBytes(total)
	buf := make([]byte, 32<<10)
	start := cpuTime()
	defer func() { reportCPU(b, start, total) }()
	for b.Loop() {
		err := Reader{}.Walk(context.Background(), bytes.NewReader(z), int64(len(z)), "b.zip", nil, func(m *container.Member, r io.Reader) error {
			_, err := io.CopyBuffer(io.Discard, r, buf)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchBare decompresses every member of the benchmark zip with nothing
// around it but a bufio.Reader (and, with crc, the CRC-32 archive/zip
// computes too).
func benchBare(b *testing.B, newReader func(io.Reader) io.ReadCloser, crc bool) {
	z, total := benchZip()
	a, err := readArchive(context.Background(), bytes.NewReader(z), int64(len(z)), &container.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	buf := make([]byte, 32<<10)
	br := bufio.NewReaderSize(nil, 32<<10)
	start := cpuTime()
	defer func() { reportCPU(b, start, total) }()
	for b.Loop() {
		for _, e := range a.entries {
			br.Reset(io.NewSectionReader(bytes.NewReader(z), e.dataStart, int64(e.csize)))
			fr := newReader(br)
			var w io.Writer = io.Discard
			if crc {
				w = crc32.NewIEEE()
			}
			if _, err := io.CopyBuffer(w, fr, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkBareFlate(b *testing.B) {
	benchBare(b, flate.NewReader, false)
}

func BenchmarkBareFlateCRC(b *testing.B) {
	benchBare(b, flate.NewReader, true)
}

func BenchmarkBareKlauspostFlate(b *testing.B) {
	benchBare(b, kflate.NewReader, false)
}

// BenchmarkArchiveZip reads every member with archive/zip (which checks
// CRC-32 too), for comparison.
func BenchmarkArchiveZip(b *testing.B) {
	z, total := benchZip()
	b.SetBytes(total)
	buf := make([]byte, 32<<10)
	start := cpuTime()
	defer func() { reportCPU(b, start, total) }()
	for b.Loop() {
		zr, err := stdzip.NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkBareKlauspostFlateCRC(b *testing.B) {
	benchBare(b, kflate.NewReader, true)
}
