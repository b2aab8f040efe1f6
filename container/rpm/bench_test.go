package rpm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/codesignval/csv/container"
)

// binaryLike returns n bytes that compress about as executables do:
// blocks of random bytes and repeats of earlier blocks.
func binaryLike(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		blk := make([]byte, 4096)
		if len(b) > 0 && rng.IntN(2) == 0 {
			off := rng.IntN(len(b))
			copy(blk, b[off:])
		} else {
			for i := range blk {
				blk[i] = byte(rng.IntN(64))
			}
		}
		b = append(b, blk...)
	}
	return b[:n]
}

// benchPackage builds a package of 24 MiB in 12 files with rpmbuild.
func benchPackage(b *testing.B, macro string) ([]byte, *Package) {
	b.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	tr := tree{files: map[string][]byte{}, hardlink: [2]string{"opt/csvtest/l2", "opt/csvtest/l1"}}
	tr.files["opt/csvtest/l1"] = []byte("x")
	tr.files["opt/csvtest/l2"] = tr.files["opt/csvtest/l1"]
	for i := range 12 {
		tr.files["opt/csvtest/bin/f"+string(rune('a'+i))] = binaryLike(rng, 2<<20)
	}
	pkg, err := os.ReadFile(buildRPM(b, tr, macro))
	if err != nil {
		b.Fatal(err)
	}
	p, err := ReadPackage(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		b.Fatal(err)
	}
	return pkg, p
}

// BenchmarkWalk measures Walk (decompress, check, deliver every member to
// io.Discard) against the bare decompressor on the same payload; MB/s are
// of uncompressed payload.
func BenchmarkWalk(b *testing.B) {
	for _, p := range payloads[:4] {
		b.Run(p.name, func(b *testing.B) {
			pkg, pk := benchPackage(b, p.macro)
			payload := pkg[pk.PayloadOffset:]
			plain := bare(b, pk.PayloadCompressor, payload)
			b.Run("walk", func(b *testing.B) {
				b.SetBytes(plain)
				for b.Loop() {
					err := Reader{}.Walk(context.Background(), bytes.NewReader(pkg), int64(len(pkg)), "b.rpm", defaultLimits(),
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
					bare(b, pk.PayloadCompressor, payload)
				}
			})
			if p.name == "gzip" {
				b.Run("stdlib-gzip", func(b *testing.B) {
					b.SetBytes(plain)
					for b.Loop() {
						z, err := gzip.NewReader(bytes.NewReader(payload))
						if err != nil {
							b.Fatal(err)
						}
						if _, err := io.Copy(io.Discard, z); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

func bare(b *testing.B, comp string, payload []byte) int64 {
	r, closeDec, err := decompressor(comp, bufio.NewReaderSize(bytes.NewReader(payload), 64<<10))
	if err != nil {
		b.Fatal(err)
	}
	defer closeDec()
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
