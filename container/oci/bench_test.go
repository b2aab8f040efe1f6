package oci

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/codesignval/csv/container"
)

func binaryLike(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		blk := make([]byte, 4096)
		if len(b) > 0 && rng.IntN(2) == 0 {
			copy(blk, b[rng.IntN(len(b)):])
		} else {
			for i := range blk {
				blk[i] = byte(rng.IntN(64))
			}
		}
		b = append(b, blk...)
	}
	return b[:n]
}

// BenchmarkWalk measures Walk of an image of three layers, 24 MiB of
// files, against the bare decompressor over the same layer blobs; MB/s
// are of uncompressed layer tar.
func BenchmarkWalk(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	var layers []map[string]fsEntry
	for l := range 3 {
		files := map[string]fsEntry{}
		for i := range 4 {
			files[filepath.Join("usr/lib", string(rune('a'+l)), string(rune('a'+i)))] = fsEntry{data: binaryLike(rng, 2<<20)}
		}
		layers = append(layers, files)
	}
	for _, comp := range []string{"", "gzip", "zstd"} {
		b.Run(nameComp(comp), func(b *testing.B) {
			layout := ociLayout(b, map[string][]map[string]fsEntry{"v1": layers}, comp)
			img, err := os.ReadFile(tarDir(b, layout))
			if err != nil {
				b.Fatal(err)
			}
			a, err := scan(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				b.Fatal(err)
			}
			imgs, err := a.images()
			if err != nil {
				b.Fatal(err)
			}
			var blobs [][]byte
			for _, l := range imgs[0].layers {
				r, _ := a.open(l.path)
				blob, _ := io.ReadAll(r)
				blobs = append(blobs, blob)
			}
			bare := func() int64 {
				var n int64
				for _, blob := range blobs {
					var r io.Reader = bytes.NewReader(blob)
					switch comp {
					case "gzip":
						z, err := gzip.NewReader(r)
						if err != nil {
							b.Fatal(err)
						}
						r = z
					case "zstd":
						z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
						if err != nil {
							b.Fatal(err)
						}
						defer z.Close()
						r = z
					}
					m, err := io.Copy(io.Discard, struct{ io.Reader }{r}) // no WriterTo: read as Walk reads
					if err != nil {
						b.Fatal(err)
					}
					n += m
				}
				return n
			}
			plain := bare()
			b.Run("walk", func(b *testing.B) {
				b.SetBytes(plain)
				for b.Loop() {
					err := Reader{}.Walk(context.Background(), bytes.NewReader(img), int64(len(img)), "i.tar", defaultLimits(),
						func(m *container.Member, r io.Reader) error {
							if r != nil {
								_, err := io.Copy(io.Discard, r)
								return err
							}
							return nil
						})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("bare", func(b *testing.B) {
				b.SetBytes(plain)
				for b.Loop() {
					bare()
				}
			})
		})
	}
}
