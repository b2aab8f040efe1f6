package tar_test

import (
	stdtar "archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/container/tar"
	"github.com/codesignval/csv/signing"
)

// FuzzWalk walks arbitrary bytes as a tar: Walk never panics, returns a
// MalformedError, a cap or nil, passes a reader exactly to members without
// a Problem, and delivers exactly the declared bytes of each.
func FuzzWalk(f *testing.F) {
	if _, err := os.Stat("/usr/bin/tar"); err == nil {
		for _, format := range []string{"gnu", "pax", "ustar", "v7"} {
			dir := f.TempDir()
			ctest.Tree(f, filepath.Join(dir, "s"), map[string][]byte{"a/b": ctest.Bytes(1, 1500), "c": []byte("c"), "e": nil})
			if err := os.Symlink("c", filepath.Join(dir, "s", "l")); err != nil {
				f.Fatal(err)
			}
			ctest.Run(f, filepath.Join(dir, "s"), "tar", "--format="+format, "--xattrs", "-cf", "../t.tar", ".")
			b, err := os.ReadFile(filepath.Join(dir, "t.tar"))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(b[:len(b)/2])
			f.Add(b[:1024])
		}
	}
	f.Add(craft(f, []*stdtar.Header{
		{Name: "x", Typeflag: stdtar.TypeReg, Size: 2, PAXRecords: map[string]string{"SCHILY.xattr.security.ima": "s"}},
		{Name: "x", Typeflag: stdtar.TypeReg, Size: 1, PAXRecords: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "y", "GNU.sparse.realsize": "100000"}},
		{Name: "../h", Typeflag: stdtar.TypeLink, Linkname: "x"},
	}, []string{"ab", "c"}))
	f.Add(longNameAndPAXPath(false, "readme.txt", "evil.ps1", "Write-Host pwned\n"))
	f.Add(longNameAndPAXPath(true, "a/b", "../c", "x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := ctest.Limits()
		lim.MaxMembers = 100
		lim.MaxExpandedSize = 1 << 20
		err := tar.Reader{}.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "f.tar", lim, func(m *container.Member, r io.Reader) error {
			if (m.Problem != nil) == (r != nil) {
				t.Fatalf("member %q: Problem %v with reader %v", m.Name, m.Problem, r != nil)
			}
			if m.Problem != nil {
				if !errors.Is(m.Problem, container.ErrMember) {
					t.Fatalf("member %q: Problem %v is not ErrMember", m.Name, m.Problem)
				}
				return nil
			}
			if _, err := container.CleanName(m.Name); err != nil {
				t.Fatalf("member %q yielded with an unclean name", m.Name)
			}
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				return err
			}
			if n != m.Size {
				t.Fatalf("member %q: %d bytes read, %d declared", m.Name, n, m.Size)
			}
			return nil
		})
		var le *container.LimitError
		if err != nil && !errors.Is(err, signing.ErrMalformed) && !errors.As(err, &le) {
			t.Fatalf("Walk: %v (%T), neither malformed nor a cap", err, err)
		}
	})
}
