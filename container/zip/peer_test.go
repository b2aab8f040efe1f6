package zip

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

// peerFiles is the tree the peer tests zip: sizes from empty to past the
// ratio grace, names with directories and a space.
func peerFiles() map[string][]byte {
	return map[string][]byte{
		"empty.txt":             {},
		"one":                   {'x'},
		"lib/native/x.dll":      binaryLike(1, 70_000),
		"lib/net8.0/a b.dll":    binaryLike(2, 300_000),
		"bin/tool":              binaryLike(3, 2_500_000),
		"docs/zeros.bin":        make([]byte, 3<<20),
		"deep/a/b/c/d/e/f.so.1": binaryLike(4, 4096),
	}
}

// unzipNames lists the archive's files (not directories) as unzip reads it.
func unzipNames(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(string(run(t, "", nil, "unzip", "-Z1", path)), "\n") {
		if l != "" && !strings.HasSuffix(l, "/") {
			names = append(names, l)
		}
	}
	slices.Sort(names)
	return names
}

// checkPeer walks the zip at path and compares every member with what unzip
// extracts, byte for byte, and with the files it was made from.
func checkPeer(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !(Reader{}).Sniff(b[:min(len(b), container.SniffSize)], filepath.Base(path)) {
		t.Fatalf("Sniff does not recognise %s", path)
	}
	gs, err := walk(t, b, nil)
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	var names []string
	for _, g := range gs {
		if g.m.Problem != nil || g.err != nil {
			t.Errorf("member %q: problem %v, read error %v", g.m.Name, g.m.Problem, g.err)
			continue
		}
		names = append(names, g.m.Name)
		if want, ok := files[g.m.Name]; ok && !bytes.Equal(g.data, want) {
			t.Errorf("member %q: %d bytes yielded differ from the %d zipped", g.m.Name, len(g.data), len(want))
		}
		if int64(len(g.data)) != g.m.Size {
			t.Errorf("member %q: Size %d, %d bytes yielded", g.m.Name, g.m.Size, len(g.data))
		}
		if out := run(t, "", nil, "unzip", "-p", path, g.m.Name); !bytes.Equal(out, g.data) {
			t.Errorf("member %q: unzip -p extracts %d bytes, Walk yielded %d others", g.m.Name, len(out), len(g.data))
		}
	}
	slices.Sort(names)
	if want := unzipNames(t, path); !slices.Equal(names, want) {
		t.Errorf("Walk yields %q, unzip lists %q", names, want)
	}
	if files != nil {
		var want []string
		for n := range files {
			want = append(want, n)
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("Walk yields %q, the zip was made of %q", names, want)
		}
	}
}

// TestPeerZip builds archives with Info-ZIP zip (stored, deflated, zip64,
// streamed to a pipe with data descriptors) and checks that Walk yields
// what unzip extracts.
func TestPeerZip(t *testing.T) {
	need(t, "zip", "unzip")
	files := peerFiles()
	src := tree(t, files)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"stored", []string{"-0"}},
		{"deflate9", []string{"-9"}},
		{"deflate1-nodirs", []string{"-1", "-D"}},
		{"zip64", []string{"-fz"}},
		{"pipe-descriptors", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "a.zip")
			if strings.HasPrefix(tc.name, "pipe") {
				// Written to a pipe, zip cannot seek back: data descriptors.
				b := run(t, src, nil, "zip", append(append([]string{"-q", "-r"}, tc.args...), "-", ".")...)
				if err := os.WriteFile(out, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if le16(b[6:])&flagDesc == 0 {
					t.Fatalf("zip to a pipe wrote no data descriptor (flags %#x)", le16(b[6:]))
				}
			} else {
				run(t, src, nil, "zip", append(append([]string{"-q", "-r"}, tc.args...), out, ".")...)
			}
			checkPeer(t, out, files)
		})
	}
}

// TestPeerPython builds archives with Python's zipfile: data descriptors
// (written to an unseekable stream), forced zip64 and a comment.
func TestPeerPython(t *testing.T) {
	need(t, "unzip")
	for _, tc := range []struct{ name, script string }{
		{"unseekable-zip64", `
import sys, zipfile
class W:
    def __init__(s, f): s.f = f
    def write(s, b): return s.f.write(b)
    def flush(s): s.f.flush()
with open(sys.argv[1], 'wb') as f:
    with zipfile.ZipFile(W(f), 'w', zipfile.ZIP_DEFLATED) as z:
        with z.open('a.dll', 'w', force_zip64=True) as w: w.write(bytes(range(256)) * 4000)
        with z.open('b.dll', 'w', force_zip64=True) as w: w.write(b'')
`},
		{"unseekable", `
import sys, zipfile
class W:
    def __init__(s, f): s.f = f
    def write(s, b): return s.f.write(b)
    def flush(s): s.f.flush()
with open(sys.argv[1], 'wb') as f:
    with zipfile.ZipFile(W(f), 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('a.dll', bytes(range(256)) * 4000)
        z.writestr('st/b.bin', b'stored' * 1000, compress_type=zipfile.ZIP_STORED)
        with z.open('c.so', 'w') as w: w.write(b'\x7fELF' + bytes(50000))
`},
		{"zip64-comment", `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    z.comment = b'a comment'
    with z.open('a.dll', 'w', force_zip64=True) as w: w.write(bytes(range(256)) * 4000)
    z.writestr('b', b'')
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := python(t, tc.script)
			path := filepath.Join(t.TempDir(), "p.zip")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			checkPeer(t, path, nil)
		})
	}
}

// TestPeerCorrupt changes a byte in a member's data, in turn in each
// member, and cuts the archive: unzip -t refuses each, and so does Walk
// (the member's read fails, or Walk does); an untouched member still reads.
func TestPeerCorrupt(t *testing.T) {
	need(t, "zip", "unzip")
	files := map[string][]byte{"a.dll": binaryLike(5, 200_000), "b.dll": binaryLike(6, 50_000), "s.bin": binaryLike(7, 10_000)}
	src := tree(t, files)
	dir := t.TempDir()
	path := filepath.Join(dir, "a.zip")
	run(t, src, nil, "zip", "-q", "-9", path, "a.dll", "b.dll")
	run(t, src, nil, "zip", "-q", "-0", path, "s.bin")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := readArchive(t.Context(), bytes.NewReader(good), int64(len(good)), &container.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	unzipT := func(b []byte) error {
		p := filepath.Join(dir, "c.zip")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return exec.Command("unzip", "-tqq", p).Run()
	}
	if err := unzipT(good); err != nil {
		t.Fatalf("unzip -t refuses the good archive: %v", err)
	}
	for _, e := range a.entries {
		for _, at := range []int64{e.dataStart + 10, e.dataStart + int64(e.csize)/2, e.end - 1} {
			b := bytes.Clone(good)
			b[at] ^= 0x55
			if unzipT(b) == nil {
				t.Errorf("unzip -t accepts %s with byte %d changed", e.raw, at)
			}
			gs, werr := walk(t, b, nil)
			bad := byName(gs, e.raw)
			if werr == nil && (len(bad) != 1 || bad[0].err == nil) {
				t.Errorf("%s with byte %d changed: no error (Walk %v)", e.raw, at, werr)
			} else if err := errors.Join(werr, bad[0].err); !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("%s with byte %d changed: %v, want ErrMalformed", e.raw, at, err)
			}
			for _, g := range gs {
				if g.m.Name != e.raw && (g.err != nil || !bytes.Equal(g.data, files[g.m.Name])) {
					t.Errorf("%s with byte %d changed: untouched member %s: %v", e.raw, at, g.m.Name, g.err)
				}
			}
		}
	}
	for _, cut := range []int{len(good) - 1, len(good) - endLen, len(good) - 30, int(a.cdOff) + 10, int(a.cdOff), int(a.cdOff) / 2, 100, 10} {
		b := good[:cut]
		if unzipT(b) == nil {
			t.Errorf("unzip -t accepts the archive cut to %d bytes", cut)
		}
		if _, err := walk(t, b, nil); !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("the archive cut to %d bytes: Walk %v, want ErrMalformed", cut, err)
		}
	}
}

// TestPeerFindings builds with the tools what must be a finding: a
// symbolic link (zip -y), encrypted members (zip -P), methods other than
// store and deflate, duplicate and unsafe names (Python).
func TestPeerFindings(t *testing.T) {
	need(t, "zip")
	t.Run("symlink", func(t *testing.T) {
		src := tree(t, map[string][]byte{"real.dll": binaryLike(8, 1000)})
		if err := os.Symlink("/etc/passwd", filepath.Join(src, "link.dll")); err != nil {
			t.Skipf("cannot make a symbolic link: %v", err)
		}
		out := filepath.Join(t.TempDir(), "l.zip")
		run(t, src, nil, "zip", "-q", "-y", out, "real.dll", "link.dll")
		b, _ := os.ReadFile(out)
		gs, err := walk(t, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := byName(gs, "link.dll")
		if len(l) != 1 || l[0].m.Type != container.Symlink || l[0].m.Link != "/etc/passwd" || !errors.Is(l[0].m.Problem, container.ErrMember) {
			t.Fatalf("link.dll: %+v, want a Symlink with an ErrMember problem", l)
		}
		if r := byName(gs, "real.dll"); len(r) != 1 || r[0].m.Problem != nil {
			t.Errorf("real.dll: %+v", r)
		}
	})
	t.Run("encrypted", func(t *testing.T) {
		src := tree(t, map[string][]byte{"a.dll": binaryLike(9, 5000), "b.dll": {}})
		out := filepath.Join(t.TempDir(), "e.zip")
		run(t, src, nil, "zip", "-q", "-P", "secret", out, "a.dll", "b.dll")
		b, _ := os.ReadFile(out)
		gs, err := walk(t, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 2 {
			t.Fatalf("%d members yielded, want 2", len(gs))
		}
		for _, g := range gs {
			if !errors.Is(g.m.Problem, container.ErrMember) {
				t.Errorf("%s: problem %v, want ErrMember", g.m.Name, g.m.Problem)
			}
		}
	})
	t.Run("python", func(t *testing.T) {
		b := python(t, `
import sys, zipfile, warnings
warnings.simplefilter('ignore')
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('ok.dll', b'MZ' + bytes(100))
    z.writestr('bz.dll', b'MZ' * 1000, compress_type=zipfile.ZIP_BZIP2)
    z.writestr('xz.dll', b'MZ' * 1000, compress_type=zipfile.ZIP_LZMA)
    z.writestr('dup.dll', b'first')
    z.writestr('./dup.dll', b'second')
    z.writestr('../evil.dll', b'x')
    z.writestr('/abs.dll', b'x')
    z.writestr('C:/drive.dll', b'x')
    z.writestr('dir/', b'')
    i = zipfile.ZipInfo('fat/')
    i.external_attr = 0o40755 << 16
    z.writestr(i, b'data in a directory')
`)
		gs, err := walk(t, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]error{
			"ok.dll": nil, "bz.dll": container.ErrMember, "xz.dll": container.ErrMember,
			"../evil.dll": container.ErrMember, "/abs.dll": container.ErrMember, "C:/drive.dll": container.ErrMember,
			"fat": container.ErrMember,
		}
		for name, werr := range want {
			g := byName(gs, name)
			if len(g) != 1 {
				t.Errorf("%s: yielded %d times", name, len(g))
				continue
			}
			if werr == nil && g[0].m.Problem != nil || werr != nil && !errors.Is(g[0].m.Problem, werr) {
				t.Errorf("%s: problem %v, want %v", name, g[0].m.Problem, werr)
			}
		}
		d := byName(gs, "dup.dll")
		if len(d) != 2 || d[0].m.Problem != nil || !errors.Is(d[1].m.Problem, container.ErrMember) {
			t.Errorf("dup.dll: %+v, want the first judged and the second with an ErrMember problem", d)
		}
		if len(byName(gs, "dir")) != 0 {
			t.Errorf("the empty directory dir/ was yielded")
		}
	})
}

// TestPeerRefused builds with the tools archives that unzip -t refuses and
// checks that Walk refuses them too: Info-ZIP zip -fz writing to a pipe
// (an end record that needs a zip64 end record it does not write), and an
// archive whose comment holds an end record signature (which unzip takes
// for the end record, and Python does not).
func TestPeerRefused(t *testing.T) {
	need(t, "zip", "unzip")
	dir := t.TempDir()
	check := func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "r.zip")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if exec.Command("unzip", "-tqq", p).Run() == nil {
			t.Errorf("unzip -t accepts the archive")
		}
		if _, err := walk(t, b, nil); !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("Walk: %v, want ErrMalformed", err)
		}
	}
	t.Run("zip-fz-pipe", func(t *testing.T) {
		src := tree(t, map[string][]byte{"a.dll": binaryLike(10, 100_000), "b/c.so": binaryLike(11, 1000)})
		check(t, run(t, src, nil, "zip", "-q", "-r", "-fz", "-", "."))
	})
	t.Run("comment-signature", func(t *testing.T) {
		check(t, python(t, `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    z.comment = b'a comment PK\x05\x06 with a signature in it'
    z.writestr('a.dll', bytes(range(256)) * 400)
`))
	})
}
