package oci

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// walkDir walks the image layout directory dir through OpenDir.
func walkDir(t testing.TB, dir string) ([]got, error) {
	t.Helper()
	if !IsLayoutDir(dir) {
		t.Errorf("IsLayoutDir(%s) is false", dir)
	}
	d := NewDir(dir)
	defer d.Close()
	var out []got
	err := Reader{}.Walk(context.Background(), d, d.Size(), filepath.Base(dir), defaultLimits(),
		func(m *container.Member, r io.Reader) error {
			g := got{m: *m}
			if r != nil {
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				g.data = b
			}
			out = append(out, g)
			return nil
		})
	return out, err
}

// TestLayoutDir: an image layout directory (csv's generator's, and the one
// skopeo writes from it) yields the root filesystem umoci unpacks, with
// whiteouts applied, as its tarball does.
func TestLayoutDir(t *testing.T) {
	skopeo := testenv.Tool(t, "skopeo")
	for _, comp := range []string{"", "gzip"} {
		t.Run(nameComp(comp), func(t *testing.T) {
			layout := ociLayout(t, map[string][]map[string]fsEntry{"v1": testLayers(1)}, comp)
			files, links := rootfs(t, layout, "v1")
			if _, ok := files["usr/bin/deleted"]; ok {
				t.Fatal("umoci kept a deleted file: the oracle is not applying whiteouts")
			}
			members, err := walkDir(t, layout)
			if err != nil {
				t.Fatalf("Walk of the directory: %v", err)
			}
			checkAgainst(t, members, "", files, links)

			copied := filepath.Join(t.TempDir(), "copy")
			run(t, skopeo, "copy", "--quiet", "oci:"+layout+":v1", "oci:"+copied+":v1")
			members, err = walkDir(t, copied)
			if err != nil {
				t.Fatalf("Walk of skopeo's layout directory: %v", err)
			}
			checkAgainst(t, members, "", files, links)
		})
	}
}

// TestLayoutDirRefused: what a layout directory may not hold, and a changed
// byte, are malformed errors naming the file.
func TestLayoutDirRefused(t *testing.T) {
	layout := ociLayout(t, map[string][]map[string]fsEntry{"v1": testLayers(3)}, "")
	clone := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "img")
		run(t, "cp", "-a", layout, dir)
		return dir
	}
	blob := func(t *testing.T, dir string) string {
		ents, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
		if err != nil {
			t.Fatal(err)
		}
		// The largest blob is a layer.
		var best string
		var size int64
		for _, e := range ents {
			fi, _ := e.Info()
			if fi.Size() > size {
				best, size = e.Name(), fi.Size()
			}
		}
		return filepath.Join(dir, "blobs", "sha256", best)
	}
	cases := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{"changed byte", func(t *testing.T, dir string) {
			p := blob(t, dir)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "digest"},
		{"file no image uses", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "blobs", "evil.exe"), []byte("MZ"), 0o755)
		}, "blobs/evil.exe, which no image uses"},
		{"fifo", func(t *testing.T, dir string) {
			if err := mkfifo(filepath.Join(dir, "blobs", "pipe")); err != nil {
				t.Skip(err)
			}
		}, "blobs/pipe is a FIFO"},
		{"missing blob", func(t *testing.T, dir string) {
			os.Remove(blob(t, dir))
		}, "not in the image layout directory"},
		{"link out of the layout", func(t *testing.T, dir string) {
			p := blob(t, dir)
			os.Rename(p, filepath.Join(t.TempDir(), "outside"))
			os.Symlink("/etc/passwd", p)
		}, "not in the image layout directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := clone(t)
			c.change(t, dir)
			_, err := walkDir(t, dir)
			var me *signing.MalformedError
			if !errors.As(err, &me) || !strings.Contains(me.Reason, c.want) {
				t.Fatalf("Walk: %v, want a malformed error saying %q", err, c.want)
			}
		})
	}
}

// TestLayoutDirChangedWhileRead: a blob that changes size after the
// directory is listed is an error naming it, not a short read.
func TestLayoutDirChangedWhileRead(t *testing.T) {
	layout := ociLayout(t, map[string][]map[string]fsEntry{"v1": testLayers(3)}, "")
	d := NewDir(layout)
	defer d.Close()
	if err := d.list(); err != nil {
		t.Fatal(err)
	}
	f := d.files[len(d.files)-1]
	if err := os.Truncate(filepath.Join(layout, f.name), f.size/2); err != nil {
		t.Fatal(err)
	}
	_, err := d.ReadAt(make([]byte, 16), f.off)
	var me *signing.MalformedError
	if !errors.As(err, &me) || !strings.Contains(me.Reason, "changed while csv read") {
		t.Fatalf("ReadAt: %v", err)
	}
}
