package cab

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/signing"
)

// FuzzWalk walks arbitrary bytes as a cabinet: never a panic, every error
// a malformed cabinet or a cap, a member with a Problem never given a
// reader, and no member yielding more than it declares. Seeds: cabinets
// gcab makes (uncompressed and MSZIP), cut and with a changed byte, and
// the crafted ones of the hostile tests.
func FuzzWalk(f *testing.F) {
	files := map[string][]byte{"a.dll": ctest.Bytes(1, 6_000), "d/b.exe": ctest.Bytes(2, 3000), "e": {}}
	for _, zip := range []bool{false, true} {
		if _, err := exec.LookPath("gcab"); err != nil {
			break // the crafted seeds only (the CI fuzz job has no gcab)
		}
		b, _ := gcabMake(f, files, zip)
		f.Add(b)
		f.Add(b[:len(b)/2])
		c := append([]byte(nil), b...)
		c[len(c)-50] ^= 1
		f.Add(c)
	}
	data := ctest.Bytes(3, 40_000)
	f.Add((&tcab{folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(f, data)}},
		files: []tfile{{name: "a", size: 30_000}, {name: "b", size: 10_000, off: 30_000}}}).bytes())
	f.Add((&tcab{folders: []tfolder{{comp: compNone, blocks: storedBlocks(data)}, {comp: compLZX}},
		files: []tfile{{name: `x\a`, size: 40_000}, {name: "b", size: 1, folder: 1}}, reserve: make([]byte, 20)}).bytes())
	f.Add((&tcab{flags: flagPrev | flagNext, set: []byte("p\x00d\x00n\x00e\x00"), folders: []tfolder{{comp: compMSZIP, blocks: mszipBlocks(f, data[:100])}},
		files: []tfile{{name: "a", size: 100}}}).bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := container.DefaultLimits()
		lim.MaxExpandedSize = 8 << 20
		err := Reader{}.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "f.cab", lim, func(m *container.Member, r io.Reader) error {
			if (m.Problem != nil) != (r == nil) {
				t.Fatalf("member %q: Problem %v with reader %v", m.Name, m.Problem, r != nil)
			}
			if r == nil {
				return nil
			}
			n, err := io.Copy(io.Discard, r)
			if n > m.Size {
				t.Fatalf("member %q: %d bytes, declared %d", m.Name, n, m.Size)
			}
			if err == nil && n != m.Size {
				t.Fatalf("member %q: %d bytes without an error, declared %d", m.Name, n, m.Size)
			}
			return nil
		})
		if err != nil && !errors.Is(err, signing.ErrMalformed) && !errors.Is(err, container.ErrLimit) {
			t.Fatalf("Walk: %v is neither malformed nor a cap", err)
		}
	})
}
