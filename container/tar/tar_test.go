package tar_test

import (
	stdtar "archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/container/tar"
	"github.com/codesignval/csv/signing"
)

// tree is a build's output: binaries of several sizes, an empty file, a
// name longer than ustar's 100 bytes, a directory of its own.
func tree() map[string][]byte {
	long := strings.Repeat("nested-directory/", 8) + strings.Repeat("x", 120) + ".so"
	return map[string][]byte{
		"bin/app":            ctest.Bytes(1, 300_000),
		"lib/libx.so":        ctest.Bytes(2, 4097),
		"empty":              {},
		"share/doc/README":   []byte("hello\n"),
		long:                 ctest.Bytes(3, 700),
		"modules/a/b/c/x.ko": ctest.Bytes(4, 65536),
	}
}

// build makes a tar of files with GNU tar in the given format and returns
// it and what tar extracts from it.
func build(t *testing.T, format string, files map[string][]byte) ([]byte, map[string][]byte) {
	t.Helper()
	ctest.Need(t, "tar")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	ctest.Tree(t, src, files)
	ctest.Run(t, src, "tar", "--format="+format, "-cf", "../out.tar", ".")
	b, err := os.ReadFile(filepath.Join(dir, "out.tar"))
	if err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	ctest.Run(t, x, "tar", "-xf", "../out.tar")
	return b, ctest.Files(t, x)
}

func TestAgainstGNUTar(t *testing.T) {
	for _, format := range []string{"gnu", "pax", "ustar", "v7", "oldgnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			files := tree()
			if format == "ustar" || format == "v7" {
				// ustar names are at most 255 bytes (prefix and name), v7's 99.
				for name := range files {
					if len(name) > 99 {
						delete(files, name)
					}
				}
			}
			b, want := build(t, format, files)
			if !(tar.Reader{}).Sniff(b[:min(len(b), container.SniffSize)], "out.tar") {
				t.Fatalf("Sniff does not recognise GNU tar's %s archive", format)
			}
			g := ctest.Walk(t, tar.Reader{}, b, "out.tar", ctest.Limits())
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			ctest.Same(t, g.Bytes, want)
			ctest.Same(t, want, files)
		})
	}
}

// TestSection checks that an uncompressed tar's members are read from the
// archive by offset, the same bytes as by Read.
func TestSection(t *testing.T) {
	files := tree()
	b, want := build(t, "gnu", files)
	err := tar.Reader{}.Walk(context.Background(), ctest.ReaderAt(b), int64(len(b)), "out.tar", ctest.Limits(),
		func(m *container.Member, r io.Reader) error {
			ra, ok := r.(interface {
				io.ReaderAt
				Size() int64
			})
			if !ok {
				t.Fatalf("member %s: %T has no ReadAt and Size", m.Name, r)
			}
			buf := make([]byte, ra.Size())
			if _, err := ra.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if !bytes.Equal(buf, want[m.Name]) {
				t.Errorf("member %s: ReadAt gives other bytes than tar extracts", m.Name)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSniff(t *testing.T) {
	b, _ := build(t, "gnu", map[string][]byte{"a": []byte("a")})
	for _, tc := range []struct {
		name string
		head []byte
		want bool
	}{
		{"gnu tar", b, true},
		{"short", b[:511], false},
		{"zeros", make([]byte, 1024), false},
		{"elf", append([]byte("\x7fELF"), make([]byte, 600)...), false},
		{"checksum off by one", func() []byte {
			c := bytes.Clone(b)
			c[0]++
			return c
		}(), false},
	} {
		if got := (tar.Reader{}).Sniff(tc.head, "x"); got != tc.want {
			t.Errorf("%s: Sniff = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// craft writes a tar with archive/tar, whose writer makes what GNU tar
// would not (duplicates, unsafe names) on request.
func craft(t testing.TB, hdrs []*stdtar.Header, bodies []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stdtar.NewWriter(&buf)
	for i, h := range hdrs {
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if i < len(bodies) && bodies[i] != "" {
			if _, err := io.WriteString(w, bodies[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestProblems(t *testing.T) {
	reg := func(name, body string) *stdtar.Header {
		return &stdtar.Header{Name: name, Typeflag: stdtar.TypeReg, Size: int64(len(body)), Mode: 0o755, Format: stdtar.FormatPAX}
	}
	hdrs := []*stdtar.Header{
		reg("ok", "first"),
		{Name: "dir/", Typeflag: stdtar.TypeDir, Mode: 0o755},
		{Name: "link", Typeflag: stdtar.TypeSymlink, Linkname: "/usr/bin/evil"},
		{Name: "hard", Typeflag: stdtar.TypeLink, Linkname: "ok"},
		{Name: "fifo", Typeflag: stdtar.TypeFifo},
		{Name: "dev", Typeflag: stdtar.TypeChar, Devmajor: 1, Devminor: 3},
		reg("../escape", "x"),
		reg("/abs", "x"),
		reg("./ok", "second"),
		reg("back\\slash", "x"),
	}
	bodies := []string{"first", "", "", "", "", "", "x", "x", "second", "x"}
	b := craft(t, hdrs, bodies)
	g := ctest.Walk(t, tar.Reader{}, b, "c.tar", ctest.Limits())
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	want := map[string]container.MemberType{
		"link": container.Symlink, "hard": container.Hardlink, "fifo": container.Other, "dev": container.Other,
		"../escape": container.Regular, "/abs": container.Regular, "back\\slash": container.Regular,
	}
	var dup bool
	for _, m := range g.Members {
		if m.Name == "dir" {
			t.Errorf("directory yielded")
		}
		if m.Name == "ok" && m.Problem != nil {
			if dup {
				t.Errorf("ok blocked twice")
			}
			dup = true
			if !errors.Is(m.Problem, container.ErrMember) {
				t.Errorf("duplicate's Problem %v is not ErrMember", m.Problem)
			}
			continue
		}
		typ, bad := want[m.Name]
		if !bad {
			continue
		}
		delete(want, m.Name)
		if !errors.Is(m.Problem, container.ErrMember) {
			t.Errorf("%s: Problem %v, want ErrMember", m.Name, m.Problem)
		}
		if m.Type != typ {
			t.Errorf("%s: type %d, want %d", m.Name, m.Type, typ)
		}
	}
	if !dup {
		t.Errorf("the second copy of ok was not blocked")
	}
	if string(g.Bytes["ok"]) != "first" {
		t.Errorf("ok: the first copy was not delivered")
	}
	for name := range want {
		t.Errorf("%s not yielded", name)
	}
}

func TestXattrs(t *testing.T) {
	ima := "\x03\x02\x04\x01\x02\x03\x04\x00\x02sig"
	b := craft(t, []*stdtar.Header{{Name: "x.ko", Typeflag: stdtar.TypeReg, Size: 3, Format: stdtar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.security.ima": ima, "SCHILY.xattr.user.a": "b", "comment": "c"}}}, []string{"abc"})
	if _, err := exec(t, b, "tar", "--xattrs", "-tvf", "-"); err != nil {
		t.Fatalf("GNU tar refuses the crafted PAX archive: %v", err)
	}
	g := ctest.Walk(t, tar.Reader{}, b, "x.tar", ctest.Limits())
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	if len(g.Members) != 1 || string(g.Members[0].Attrs["security.ima"]) != ima || string(g.Members[0].Attrs["user.a"]) != "b" || len(g.Members[0].Attrs) != 2 {
		t.Fatalf("attrs %q", g.Members[0].Attrs)
	}
}

// exec runs a tool with b on its standard input.
func exec(t *testing.T, b []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctest.Need(t, name)
	return ctest.Stdin(b, name, args...)
}

func TestSparse(t *testing.T) {
	ctest.Need(t, "tar")
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 10<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, format := range []string{"gnu", "pax"} {
		ctest.Run(t, dir, "tar", "--format="+format, "--sparse", "-cf", format+".tar", "sparse")
		b, err := os.ReadFile(filepath.Join(dir, format+".tar"))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1<<20 {
			t.Skipf("tar did not store the file sparse (%d bytes): the file system has no holes", len(b))
		}
		g := ctest.Walk(t, tar.Reader{}, b, "s.tar", ctest.Limits())
		if g.Err != nil {
			t.Fatal(g.Err)
		}
		if len(g.Members) != 1 || g.Members[0].Name != "sparse" || !errors.Is(g.Members[0].Problem, container.ErrMember) {
			t.Fatalf("%s: sparse member not blocked: %+v", format, g.Members)
		}
	}
}

func TestMalformed(t *testing.T) {
	b, _ := build(t, "gnu", tree())
	// A tar of two members: headers at 0 and 1024.
	two := craft(t, []*stdtar.Header{
		{Name: "a", Typeflag: stdtar.TypeReg, Size: 300},
		{Name: "b", Typeflag: stdtar.TypeReg, Size: 3000},
	}, []string{strings.Repeat("a", 300), strings.Repeat("b", 3000)})
	cases := []struct {
		name string
		b    []byte
	}{
		{"cut in a member", two[:1024+512+1000]},
		{"cut in a header", two[:1024+100]},
		{"bad checksum", func() []byte {
			c := bytes.Clone(two)
			c[1024+1] ^= 1
			return c
		}()},
		{"size past the end", func() []byte {
			c := bytes.Clone(two[:1024+512+3072])
			// b's size 3000 becomes 30000 (octal 72460), checksum fixed.
			h := c[1024 : 1024+512]
			copy(h[124:136], "00000072460\x00")
			copy(h[148:156], "        ")
			var sum int
			for _, x := range h {
				sum += int(x)
			}
			copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
			return c
		}()},
		{"data after the end", append(bytes.Clone(b), append(make([]byte, 1024), 'x')...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := ctest.Walk(t, tar.Reader{}, tc.b, "m.tar", ctest.Limits())
			var me *signing.MalformedError
			if !errors.As(g.Err, &me) || me.Format != "tar" {
				t.Fatalf("Walk: %v, want a MalformedError of tar", g.Err)
			}
			if tc.name != "data after the end" && tc.name != "cut in a header" {
				// GNU tar refuses these too. It ignores bytes after the
				// end-of-archive marker and a last header cut short
				// (exit 0): csv refuses both, see the package
				// documentation.
				if _, err := ctest.Stdin(tc.b, "tar", "-tf", "-"); err == nil {
					t.Errorf("GNU tar accepts what Walk refuses")
				}
			}
		})
	}
}

func TestCaps(t *testing.T) {
	b, _ := build(t, "gnu", tree())
	lim := ctest.Limits()
	lim.MaxMembers = 3
	g := ctest.Walk(t, tar.Reader{}, b, "c.tar", lim)
	var le *container.LimitError
	if !errors.As(g.Err, &le) || le.Cap != "max-container-members" {
		t.Errorf("MaxMembers 3: %v", g.Err)
	}
	lim = ctest.Limits()
	lim.MaxExpandedSize = 100_000
	g = ctest.Walk(t, tar.Reader{}, b, "c.tar", lim)
	if !errors.As(g.Err, &le) || le.Cap != "max-container-size" {
		t.Errorf("MaxExpandedSize 100000: %v", g.Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (tar.Reader{}).Walk(ctx, ctest.ReaderAt(b), int64(len(b)), "c.tar", ctest.Limits(), func(*container.Member, io.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestGlobalHeader(t *testing.T) {
	for _, tc := range []struct {
		records map[string]string
		blocked bool
	}{
		{map[string]string{"comment": "2f1c0e4c9d"}, false},
		{map[string]string{"path": "evil", "comment": "x"}, true},
	} {
		b := craft(t, []*stdtar.Header{
			{Typeflag: stdtar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: tc.records},
			{Name: "a", Typeflag: stdtar.TypeReg, Size: 1},
		}, []string{"", "a"})
		g := ctest.Walk(t, tar.Reader{}, b, "g.tar", ctest.Limits())
		if g.Err != nil {
			t.Fatal(g.Err)
		}
		if string(g.Bytes["a"]) != "a" {
			t.Errorf("%v: a not delivered", tc.records)
		}
		blocked := len(g.Members) == 2 && errors.Is(g.Members[0].Problem, container.ErrMember)
		if blocked != tc.blocked || len(g.Members) != map[bool]int{true: 2, false: 1}[tc.blocked] {
			t.Errorf("%v: members %+v, want blocked %v", tc.records, g.Members, tc.blocked)
		}
	}
}

// TestGitArchive: git archive's tar starts with a PAX global header
// holding the commit; its files are yielded as tar extracts them, and
// nothing is blocked.
func TestGitArchive(t *testing.T) {
	ctest.Need(t, "git", "tar")
	dir := t.TempDir()
	files := map[string][]byte{"src/main.c": []byte("int main(){}\n"), "bin/tool": ctest.Bytes(8, 5000)}
	ctest.Tree(t, dir, files)
	git := func(args ...string) []byte {
		return ctest.Run(t, dir, "git", append([]string{"-c", "user.name=csv", "-c", "user.email=csv@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "x")
	b := git("archive", "--format=tar", "HEAD")
	g := ctest.Walk(t, tar.Reader{}, b, "a.tar", ctest.Limits())
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	for _, m := range g.Members {
		if m.Problem != nil {
			t.Errorf("%s: %v", m.Name, m.Problem)
		}
	}
	ctest.Same(t, g.Bytes, files)
}

// TestLongDuplicate: names longer than NameKey keeps whole are still told
// apart and found twice.
func TestLongDuplicate(t *testing.T) {
	long := strings.Repeat("d/", 60) + "x.so"
	b := craft(t, []*stdtar.Header{
		{Name: long, Typeflag: stdtar.TypeReg, Size: 1},
		{Name: long + "2", Typeflag: stdtar.TypeReg, Size: 1},
		{Name: long, Typeflag: stdtar.TypeReg, Size: 1},
	}, []string{"a", "b", "c"})
	g := ctest.Walk(t, tar.Reader{}, b, "l.tar", ctest.Limits())
	if g.Err != nil || len(g.Members) != 3 || g.Members[0].Problem != nil || g.Members[1].Problem != nil || !errors.Is(g.Members[2].Problem, container.ErrMember) {
		t.Fatalf("%v %+v", g.Err, g.Members)
	}
}

// rawHeader is a tar header block written by hand, for shapes archive/tar's
// writer will not make: typ, name, size, link, magic ("ustar\x0000" or
// GNU's "ustar  \x00").
func rawHeader(name string, size int, typ byte, link, magic string) []byte {
	b := make([]byte, tar.BlockSize)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[157:], link)
	copy(b[257:], magic)
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// rawEntry is a header and its body padded to blocks.
func rawEntry(name string, typ byte, link, magic, body string) []byte {
	b := rawHeader(name, len(body), typ, link, magic)
	b = append(b, body...)
	return append(b, make([]byte, (tar.BlockSize-len(body)%tar.BlockSize)%tar.BlockSize)...)
}

// paxBody is the records of a PAX extended header.
func paxBody(kv ...string) string {
	var s string
	for i := 0; i < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		s += fmt.Sprint(n) + rec
	}
	return s
}

// longNameAndPAXPath is a member named twice: by a GNU long name (an 'L'
// header) and by a PAX path record, in either order. archive/tar takes the
// long name, GNU tar the PAX path: the member must be blocked, under the
// name GNU tar lays it down with.
func longNameAndPAXPath(paxFirst bool, long, path, body string) []byte {
	const gnu, ustar = "ustar  \x00", "ustar\x0000"
	l := rawEntry("././@LongLink", 'L', "", gnu, long+"\x00")
	x := rawEntry("PaxHeaders/short", 'x', "", ustar, paxBody("path", path))
	var b []byte
	if paxFirst {
		b = append(append(b, x...), l...)
	} else {
		b = append(append(b, l...), x...)
	}
	b = append(b, rawEntry("short", '0', "", ustar, body)...)
	return append(b, make([]byte, 2*tar.BlockSize)...)
}

func TestLongNameAndPAXPath(t *testing.T) {
	for _, paxFirst := range []bool{false, true} {
		b := longNameAndPAXPath(paxFirst, "readme.txt", "evil.ps1", "Write-Host pwned\n")
		if out, err := exec(t, b, "tar", "-tf", "-"); err != nil || strings.TrimSpace(string(out)) != "evil.ps1" {
			t.Fatalf("GNU tar lists %q (%v), want evil.ps1", out, err)
		}
		g := ctest.Walk(t, tar.Reader{}, b, "c.tar", ctest.Limits())
		if g.Err != nil {
			t.Fatal(g.Err)
		}
		if len(g.Members) != 1 || g.Members[0].Name != "evil.ps1" || !errors.Is(g.Members[0].Problem, container.ErrMember) {
			for _, m := range g.Members {
				t.Logf("member %q Problem %v", m.Name, m.Problem)
			}
			t.Fatalf("paxFirst=%v: want one member evil.ps1, blocked", paxFirst)
		}
		// Link targets likewise: a 'K' long link name and a PAX linkpath.
	}
	const gnu, ustar = "ustar  \x00", "ustar\x0000"
	b := append(rawEntry("././@LongLink", 'K', "", gnu, "a\x00"), rawEntry("PaxHeaders/l", 'x', "", ustar, paxBody("linkpath", "/etc/b"))...)
	b = append(append(b, rawEntry("l", '2', "c", ustar, "")...), make([]byte, 2*tar.BlockSize)...)
	g := ctest.Walk(t, tar.Reader{}, b, "c.tar", ctest.Limits())
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	if len(g.Members) != 1 || g.Members[0].Link != "/etc/b" {
		t.Fatalf("link members %+v, want l with Link /etc/b", g.Members)
	}
}

// TestFileNamedAsDirectory: a regular file ('0' or '7') whose name ends in
// a slash is a directory to GNU tar, which reads its bytes as the next
// headers (a member archive/tar never yields at the top): the tar is
// refused.
func TestFileNamedAsDirectory(t *testing.T) {
	const ustar = "ustar\x0000"
	inner := string(rawEntry("evil.ps1", '0', "", ustar, "Write-Host pwned\n"))
	for _, typ := range []byte{'0', '7'} {
		b := append(rawEntry("d/", typ, "", ustar, inner), make([]byte, 2*tar.BlockSize)...)
		// tar -t lists d/ alone; tar -x lays down evil.ps1.
		x := t.TempDir()
		if _, err := exec(t, b, "tar", "-xf", "-", "-C", x); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(x, "evil.ps1")); err != nil {
			t.Fatalf("GNU tar did not extract evil.ps1: %v", err)
		}
		// Refused as a whole: the members GNU tar reads in its bytes are
		// never seen, whatever --include would say of their names.
		g := ctest.Walk(t, tar.Reader{}, b, "c.tar", ctest.Limits())
		if !errors.Is(g.Err, signing.ErrMalformed) || len(g.Members) != 0 {
			t.Fatalf("type %c: %v %+v, want malformed", typ, g.Err, g.Members)
		}
	}
}

// TestBadFirstHeader: GNU tar reads a .tar whose first header's checksum
// is wrong by skipping to the next header it finds, and extracts what
// follows (exit status 2): csv took the file for no tar and skipped it. A
// file named .tar is read as a tar, and refused.
func TestBadFirstHeader(t *testing.T) {
	const ustar = "ustar\x0000"
	bad := rawHeader("readme", 0, '0', "", ustar)
	bad[148] ^= 1
	b := append(append(bad, rawEntry("evil.ps1", '0', "", ustar, "Write-Host pwned\n")...), make([]byte, 2*tar.BlockSize)...)
	x := t.TempDir()
	_, _ = exec(t, b, "tar", "-xf", "-", "-C", x) // exits 2, having extracted evil.ps1
	if _, err := os.Stat(filepath.Join(x, "evil.ps1")); err != nil {
		t.Fatalf("GNU tar did not extract evil.ps1: %v", err)
	}
	if (tar.Reader{}).Sniff(b, "x.bin") || !(tar.Reader{}).Sniff(b, "x.TAR") || (tar.Reader{}).Sniff(make([]byte, 1024), "empty.tar") {
		t.Fatal("Sniff")
	}
	g := ctest.Walk(t, tar.Reader{}, b, "x.tar", ctest.Limits())
	if !errors.Is(g.Err, signing.ErrMalformed) || len(g.Members) != 0 {
		t.Fatalf("Walk: %v %+v, want malformed", g.Err, g.Members)
	}
}

// TestLibarchiveXattrs: bsdtar --xattrs lays down a LIBARCHIVE.xattr
// record (base64) when it comes after the SCHILY one, GNU tar the SCHILY
// record: a member whose two records disagree, or that has the
// libarchive one alone, has no one security.ima to judge and is blocked;
// the two agreeing (as bsdtar writes them) are read.
func TestLibarchiveXattrs(t *testing.T) {
	good, bad := "\x03\x02good", "\x03\x02bad!"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct {
		name    string
		records map[string]string
		problem bool
	}{
		{"agree", map[string]string{"SCHILY.xattr.security.ima": good, "LIBARCHIVE.xattr.security.ima": b64(good)}, false},
		{"disagree", map[string]string{"SCHILY.xattr.security.ima": good, "LIBARCHIVE.xattr.security.ima": b64(bad)}, true},
		{"libarchive only", map[string]string{"LIBARCHIVE.xattr.security.ima": b64(bad)}, true},
		{"not base64", map[string]string{"SCHILY.xattr.security.ima": good, "LIBARCHIVE.xattr.security.ima": "%%"}, true},
		{"encoded name", map[string]string{"SCHILY.xattr.security.ima": good, "LIBARCHIVE.xattr.security%2Eima": b64(bad)}, true},
	} {
		b := craft(t, []*stdtar.Header{{Name: "x.ko", Typeflag: stdtar.TypeReg, Size: 3, Format: stdtar.FormatPAX, PAXRecords: c.records}}, []string{"abc"})
		g := ctest.Walk(t, tar.Reader{}, b, "x.tar", ctest.Limits())
		if g.Err != nil {
			t.Fatalf("%s: %v", c.name, g.Err)
		}
		if len(g.Members) != 1 {
			t.Fatalf("%s: %d members", c.name, len(g.Members))
		}
		m := g.Members[0]
		if got := m.Problem != nil; got != c.problem {
			t.Errorf("%s: problem %v, want one: %v", c.name, m.Problem, c.problem)
		} else if got && !errors.Is(m.Problem, container.ErrMember) {
			t.Errorf("%s: problem %v does not wrap ErrMember", c.name, m.Problem)
		}
		if !c.problem && string(m.Attrs["security.ima"]) != good {
			t.Errorf("%s: attrs %q", c.name, m.Attrs)
		}
	}
}
