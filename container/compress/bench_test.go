package compress_test

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/compress"
	"github.com/codesignval/csv/container/internal/ctest"
)

// benchTar is a tar of 48 generated files of 512 KiB (24 MiB),
// compressed by tool.
func benchTar(b *testing.B, tool string) []byte {
	b.Helper()
	ctest.Need(b, "tar", tool)
	dir := b.TempDir()
	files := map[string][]byte{}
	for i := range 48 {
		files["usr/lib/m"+strconv.Itoa(i)+".so"] = ctest.Bytes(uint64(i), 512<<10)
	}
	ctest.Tree(b, filepath.Join(dir, "s"), files)
	ctest.Run(b, filepath.Join(dir, "s"), "tar", "--use-compress-program="+tool, "-cf", "../t", ".")
	c, err := os.ReadFile(filepath.Join(dir, "t"))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkWalk measures Walk (decompress, read the tar, deliver every
// member's bytes) against the bare decompressor on the same input; MB/s
// are of the decompressed bytes.
func BenchmarkWalk(b *testing.B) {
	for _, tc := range []struct {
		tool   string
		reader compress.Reader
		bare   map[string]func(io.Reader) (io.Reader, error)
	}{
		{"gzip", compress.GzipReader, map[string]func(io.Reader) (io.Reader, error){
			"stdlib":    func(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) },
			"klauspost": func(r io.Reader) (io.Reader, error) { return kgzip.NewReader(r) },
		}},
		{"xz", compress.XZReader, map[string]func(io.Reader) (io.Reader, error){
			"ulikunitz": func(r io.Reader) (io.Reader, error) { return xz.NewReader(r) },
		}},
		{"zstd", compress.ZstdReader, map[string]func(io.Reader) (io.Reader, error){
			"klauspost": func(r io.Reader) (io.Reader, error) {
				return zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
			},
			"klauspost-concurrent": func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) },
		}},
	} {
		b.Run(tc.tool, func(b *testing.B) {
			c := benchTar(b, tc.tool)
			var total int64
			b.Run("walk", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					total = 0
					err := tc.reader.Walk(context.Background(), bytes.NewReader(c), int64(len(c)), "t", ctest.Limits(), func(m *container.Member, r io.Reader) error {
						n, err := io.Copy(io.Discard, r)
						total += n
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(total)
			})
			for name, open := range tc.bare {
				b.Run("bare-"+name, func(b *testing.B) {
					var n int64
					for b.Loop() {
						d, err := open(bufio.NewReader(bytes.NewReader(c)))
						if err != nil {
							b.Fatal(err)
						}
						n, err = io.Copy(io.Discard, d)
						if err != nil {
							b.Fatal(err)
						}
					}
					b.SetBytes(n)
				})
			}
		})
	}
}
