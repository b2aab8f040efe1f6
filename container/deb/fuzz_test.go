package deb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/deb"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/signing"
)

// FuzzWalk walks arbitrary bytes as a Debian package or an ar archive:
// Walk never panics, returns a MalformedError, a cap or nil, and passes a
// reader exactly to members without a Problem. Seeds: packages dpkg-deb
// built (whole and cut) and a static library GNU ar built.
func FuzzWalk(f *testing.F) {
	if _, err := exec.LookPath("dpkg-deb"); err == nil {
		for _, z := range []string{"gzip", "none"} {
			b, _ := pkg(f, z)
			f.Add(b)
			f.Add(b[:len(b)/2])
			f.Add(b[:200])
		}
	}
	f.Add([]byte(deb.Magic + "//                                              8         `\nlong.o/\n/0              0           0     0     644     2         `\nab"))
	f.Add(append([]byte(deb.Magic), bytes.Join([][]byte{arMember("a.o/", []byte("hi\n")), arMember("__.SYMDEF", []byte("\x7fELF")), arMember("//", []byte("x.o/\n")), arMember("x.ps1 a.txt", []byte("w"))}, nil)...))
	f.Add([]byte(deb.Magic + "#1/5            0           0     0     644     7         `\nx.o\x00\x00ab"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := ctest.Limits()
		lim.MaxMembers = 200
		lim.MaxExpandedSize = 4 << 20
		for _, r := range []container.Reader{deb.Reader{}, deb.Ar{}} {
			err := r.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "f.deb", lim, func(m *container.Member, body io.Reader) error {
				if (m.Problem != nil) == (body != nil) {
					t.Fatalf("member %q: Problem %v with reader %v", m.Name, m.Problem, body != nil)
				}
				if body != nil {
					n, err := io.Copy(io.Discard, body)
					if err == nil && m.Size >= 0 && n != m.Size {
						t.Fatalf("member %q: %d bytes, %d declared", m.Name, n, m.Size)
					}
					return err
				}
				return nil
			})
			var le *container.LimitError
			if err != nil && !errors.Is(err, signing.ErrMalformed) && !errors.As(err, &le) {
				t.Fatalf("%s Walk: %v (%T), neither malformed nor a cap", r.Kind(), err, err)
			}
		}
	})
}
