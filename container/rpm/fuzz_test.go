package rpm

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/codesignval/csv/container"
)

// FuzzWalk walks arbitrary bytes as a package: Walk must not panic, must
// yield a reader exactly when a member has no Problem, and every member
// it delivers must hold its declared size.
func FuzzWalk(f *testing.F) {
	if _, err := exec.LookPath("rpmbuild"); err == nil {
		tr := genTree(3)
		for _, p := range payloads {
			b, err := os.ReadFile(buildRPM(f, tr, p.macro))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(b[:len(b)*2/3])
			f.Add(flip(b, int64(len(b))-100))
		}
	} else {
		f.Log("rpmbuild is not installed: seeds are crafted packages only")
	}
	f.Add(mkRPM(nil, gzMain(), gz(cpioArchive([]ent{{name: "./usr/bin/x", mode: reg, data: []byte("MZ")},
		{name: "a", mode: reg, nlink: 2, ino: 9}, {name: "b", mode: reg, nlink: 2, ino: 9, data: []byte("l")},
		{name: "l", mode: 0o120777, data: []byte("x")}, {name: "c", mode: reg, crc: true, data: []byte("abc")}}, true))))
	f.Add(mkRPM(nil, []tagv{tStr(tagPayloadFormat, "cpio")}, cpioArchive([]ent{{name: "x", mode: reg, data: []byte("abc")}}, true)))
	f.Add(mkRPM(nil, gzMain(fileTags(hf{"/usr/bin/x", reg, 4}, hf{"/a", reg, 1}, hf{"/b", reg, 1})...),
		cpioArchive([]ent{{name: "./usr/bin/x", mode: 0o40755, data: []byte("\x7fELF")},
			{name: "a", mode: reg, nlink: 2, ino: 9}, {name: "b", mode: reg, nlink: 2, ino: 9, data: []byte("l")}}, true)))
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := defaultLimits()
		lim.MaxExpandedSize = 64 << 20
		_ = Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "f.rpm", lim,
			func(m *container.Member, r io.Reader) error {
				if (r == nil) != (m.Problem != nil) {
					t.Fatalf("member %q: reader %v, Problem %v", m.Name, r != nil, m.Problem)
				}
				if r == nil {
					return nil
				}
				n, err := io.Copy(io.Discard, r)
				if err == nil && n != m.Size {
					t.Fatalf("member %q: %d bytes delivered, Size %d", m.Name, n, m.Size)
				}
				return err
			})
	})
}
