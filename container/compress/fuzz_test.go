package compress_test

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/compress"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/signing"
)

// FuzzWalk walks arbitrary bytes with the reader their magic number
// picks: Walk never panics, returns a MalformedError, a cap or nil, and
// passes a reader exactly to members without a Problem. Seeds: each
// tool's output for a file and for a tar, whole, cut and with a byte
// changed.
func FuzzWalk(f *testing.F) {
	tarball := []byte(nil)
	if out, err := exec.Command("sh", "-c", "d=$(mktemp -d) && cd $d && printf abc > a && printf '\\177ELF' > b && tar -cf - a b && rm -r $d").Output(); err == nil {
		tarball = out
	}
	for _, tc := range tools {
		if _, err := exec.LookPath(tc.tool); err != nil {
			continue
		}
		for _, in := range [][]byte{ctest.Bytes(5, 3000), tarball} {
			if in == nil {
				continue
			}
			c, err := ctest.Stdin(in, tc.tool, tc.args...)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(c)
			f.Add(c[:len(c)/2])
			flip := append([]byte(nil), c...)
			flip[len(flip)*2/3] ^= 4
			f.Add(flip)
		}
	}
	if out, err := ctest.Stdin(ctest.Bytes(6, 5000), "xz", "-c", "--block-size=1024"); err == nil {
		f.Add(append(out, make([]byte, 4)...)) // several blocks, stream padding
	}
	if out, err := ctest.Stdin(tarball, "xz", "--format=lzma", "-c"); err == nil && tarball != nil {
		f.Add(out) // LZMA-alone, read as f.lzma
		f.Add(out[:len(out)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		f := compress.Detect(b)
		if f == 0 && compress.LZMAReader.Sniff(b, "f.lzma") {
			f = compress.LZMA
		}
		if f == 0 {
			return
		}
		lim := ctest.Limits()
		lim.MaxMembers = 100
		lim.MaxExpandedSize = 4 << 20
		r := compress.Reader{Format: f}
		_ = r.KindOf(ctest.ReaderAt(b), int64(len(b)))
		err := r.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "f.gz", lim, func(m *container.Member, body io.Reader) error {
			if (m.Problem != nil) == (body != nil) {
				t.Fatalf("member %q: Problem %v with reader %v", m.Name, m.Problem, body != nil)
			}
			if body != nil {
				_, err := io.Copy(io.Discard, body)
				return err
			}
			return nil
		})
		var le *container.LimitError
		if err != nil && !errors.Is(err, signing.ErrMalformed) && !errors.As(err, &le) {
			t.Fatalf("Walk: %v (%T), neither malformed nor a cap", err, err)
		}
	})
}
