package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/container"
)

// FuzzWalk walks arbitrary bytes as an image tarball: Walk must not
// panic, must yield a reader exactly when a member has no Problem, and
// every member it delivers must hold its declared size.
func FuzzWalk(f *testing.F) {
	var seeds [][]byte
	_, errTar := exec.LookPath("tar")
	_, errSkopeo := exec.LookPath("skopeo")
	if errTar == nil && errSkopeo == nil {
		small := []map[string]fsEntry{
			{"usr/bin/a": {data: []byte("MZ a")}, "usr/bin/gone": {data: []byte("g")}, "lib/l": {link: "a"}},
			{"usr/bin/.wh.gone": {}, "usr/bin/b": {data: []byte("b"), hard: "usr/bin/c"}},
		}
		for _, comp := range []string{"", "gzip"} {
			layout := ociLayout(f, map[string][]map[string]fsEntry{"v1": small}, comp)
			b, err := os.ReadFile(tarDir(f, layout))
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
			da := filepath.Join(f.TempDir(), "d.tar")
			run(f, "skopeo", "copy", "--quiet", "oci:"+layout+":v1", "docker-archive:"+da+":ex/a:v1")
			if b, err = os.ReadFile(da); err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	} else {
		f.Log("tar or skopeo is not installed: seeds are crafted images only")
	}
	base := mkTar([]tent{{name: "usr/bin/x", data: []byte("MZ x")}, {name: "etc/o/a", data: []byte("a")}}, nil)
	upper := mkTar([]tent{{name: "usr/bin/.wh.x"}, {name: "etc/o/.wh..wh..opq"}, {name: "etc/o/b", data: []byte("b")}}, nil)
	seeds = append(seeds, mkImage([]img{{layers: [][]byte{base, upper}, ref: "v1"}}, layoutOpts{dockerSave: true}),
		mkImage([]img{{layers: [][]byte{gzBytes(base)}, plain: [][]byte{base}, mediaType: mediaTypes["gzip"]}}, layoutOpts{}))
	// Hostile shapes: a hard link to a lower layer's file its own layer
	// replaces, an absolute symbolic link in a tarball of two images, a
	// file no image uses beside a Docker 25 save.
	seeds = append(seeds,
		mkImage([]img{{layers: [][]byte{mkTar([]tent{{name: "bin/evil", data: []byte("evil")}}, nil),
			mkTar([]tent{{name: "bin/ok", typ: tar.TypeLink, link: "bin/evil"}, {name: "bin/evil", data: []byte("ok")}}, nil)}, ref: "v1"}}, layoutOpts{}),
		mkImage([]img{{layers: [][]byte{base}, ref: "ex/a:1"}, {layers: [][]byte{mkTar([]tent{{name: "bin/x", data: []byte("x")},
			{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/x"}}, nil)}, ref: "ex/b:2"}}, layoutOpts{dockerSave: true,
			extra: []tent{{name: "repositories", data: []byte("{}")}, {name: "bin/evil.exe", data: []byte("MZ")}}}))
	for _, b := range seeds {
		f.Add(b)
		f.Add(b[:len(b)*2/3])
		c := bytes.Clone(b)
		c[len(c)/2] ^= 0x40
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := defaultLimits()
		lim.MaxExpandedSize = 64 << 20
		_ = Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "f.tar", lim,
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
		(Reader{}).Sniff(b[:min(len(b), container.SniffSize)], "f.tar")
	})
}
