package csv

import (
	"errors"
	"slices"
	"testing"
)

// TestManifestNames: a manifest names each signed file by its path
// relative to the signed tree: under one directory root or --out, the
// path under the root; otherwise the path reports show, which must be
// relative.
func TestManifestNames(t *testing.T) {
	under := func(root, p string) Signed { return Signed{Root: root, Path: p} }
	file := func(root string) Signed { return Signed{Root: root, Path: "x", fileRoot: true} }
	for _, tt := range []struct {
		name   string
		signed []Signed
		roots  []string
		out    string
		want   []string
	}{
		{"one directory", []Signed{under("build", "bin/app.exe"), under("build", "lib/m.ko")}, []string{"build"}, "", []string{"bin/app.exe", "lib/m.ko"}},
		{"one absolute directory", []Signed{under("/src/build", "app.exe")}, []string{"/src/build"}, "", []string{"app.exe"}},
		{"two directories", []Signed{under("a", "x.exe"), under("./b", "y/z.exe")}, []string{"a", "./b"}, "", []string{"a/x.exe", "b/y/z.exe"}},
		{"two absolute directories, out", []Signed{under("/a", "x.exe"), under("/b", "y.exe")}, []string{"/a", "/b"}, "signed", []string{"x.exe", "y.exe"}},
		{"one file", []Signed{file("bin/app.exe")}, []string{"bin/app.exe"}, "", []string{"bin/app.exe"}},
		{"one file, out", []Signed{file("/abs/app.exe")}, []string{"/abs/app.exe"}, "signed", []string{"x"}},
		{"nothing signed", nil, []string{"build"}, "", []string{}},
	} {
		got, err := ManifestNames(tt.signed, tt.roots, tt.out)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		name   string
		signed []Signed
		roots  []string
	}{
		{"absolute directories", []Signed{under("/a", "x.exe"), under("/b", "y.exe")}, []string{"/a", "/b"}},
		{"a directory above", []Signed{under("../a", "x.exe"), under("b", "y.exe")}, []string{"../a", "b"}},
		{"an absolute file", []Signed{file("/abs/app.exe")}, []string{"/abs/app.exe"}},
	} {
		if got, err := ManifestNames(tt.signed, tt.roots, ""); !errors.Is(err, ErrOptions) || got != nil {
			t.Errorf("%s: %q, %v; want ErrOptions", tt.name, got, err)
		}
	}
}
