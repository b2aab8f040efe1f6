package deb_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/deb"
	"github.com/codesignval/csv/container/internal/ctest"
	"github.com/codesignval/csv/signing"
)

// pkg builds a Debian package with dpkg-deb from generated files and
// returns it with what dpkg-deb -R extracts (control files under DEBIAN/).
func pkg(t testing.TB, compression string) ([]byte, map[string][]byte) {
	t.Helper()
	ctest.Need(t, "dpkg-deb")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	ctest.Tree(t, root, map[string][]byte{
		"DEBIAN/control": []byte("Package: csvtest\nVersion: 1.0\nArchitecture: amd64\nMaintainer: csv <csv@example.com>\nDescription: test\n"),
		"usr/lib/modules/6.1.0/kernel/drivers/x.ko": ctest.Bytes(1, 120_000),
		"usr/bin/app":          ctest.Bytes(2, 250_000),
		"usr/share/doc/csv/ro": []byte("readme\n"),
	})
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "postinst"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctest.Run(t, dir, "dpkg-deb", "--root-owner-group", "-Z"+compression, "--build", "root", "p.deb")
	b, err := os.ReadFile(filepath.Join(dir, "p.deb"))
	if err != nil {
		t.Fatal(err)
	}
	ctest.Run(t, dir, "dpkg-deb", "-R", "p.deb", "x")
	return b, ctest.Files(t, filepath.Join(dir, "x"))
}

func TestAgainstDpkgDeb(t *testing.T) {
	for _, z := range []string{"xz", "zstd", "gzip", "none"} {
		t.Run(z, func(t *testing.T) {
			b, want := pkg(t, z)
			if !(deb.Reader{}).Sniff(b, "p.deb") || (deb.Ar{}).Sniff(b, "p.deb") {
				t.Fatal("Sniff: a deb must be read by deb.Reader, not deb.Ar")
			}
			g := ctest.Walk(t, deb.Reader{}, b, "p.deb", ctest.Limits())
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			ctest.Same(t, g.Bytes, want)
		})
	}
}

// arMember is an ar member header and data, padded.
func arMember(name string, data []byte) []byte {
	h := fmt.Sprintf("%-16s%-12s%-6s%-6s%-8s%-10d`\n", name, "0", "0", "0", "100644", len(data))
	b := append([]byte(h), data...)
	if len(data)%2 == 1 {
		b = append(b, '\n')
	}
	return b
}

// parts splits a dpkg-deb package into its ar members.
func parts(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	off := 8
	for off+60 <= len(b) {
		name := strings.TrimRight(string(b[off:off+16]), " /")
		var size int
		fmt.Sscanf(strings.TrimSpace(string(b[off+48:off+58])), "%d", &size)
		m[name] = b[off+60 : off+60+size]
		off += 60 + size + size%2
	}
	return m
}

func TestStructure(t *testing.T) {
	ctest.Need(t, "dpkg-deb")
	b, _ := pkg(t, "xz")
	p := parts(t, b)
	ver, ctl, data := p["debian-binary"], p["control.tar.xz"], p["data.tar.xz"]
	if ver == nil || ctl == nil || data == nil {
		t.Fatalf("dpkg-deb's members: %v", p)
	}
	ar := func(ms ...[]byte) []byte { return append([]byte(deb.Magic), bytes.Join(ms, nil)...) }
	sig := []byte("-----BEGIN PGP SIGNATURE-----\n")
	for _, tc := range []struct {
		name      string
		b         []byte
		malformed bool
		problem   string // the member with a Problem
		member    string // a member yielded without one
	}{
		{"signed", ar(arMember("debian-binary", ver), arMember("control.tar.xz", ctl), arMember("data.tar.xz", data), arMember("_gpgorigin", sig)), false, "", "_gpgorigin"},
		{"unknown member", ar(arMember("debian-binary", ver), arMember("control.tar.xz", ctl), arMember("evil.exe", []byte("MZ")), arMember("data.tar.xz", data)), false, "evil.exe", "usr/bin/app"},
		{"version 3", ar(arMember("debian-binary", []byte("3.0\n")), arMember("control.tar.xz", ctl), arMember("data.tar.xz", data)), true, "", ""},
		{"data first", ar(arMember("debian-binary", ver), arMember("data.tar.xz", data), arMember("control.tar.xz", ctl)), true, "", ""},
		{"no data", ar(arMember("debian-binary", ver), arMember("control.tar.xz", ctl)), true, "", ""},
		{"two data", ar(arMember("debian-binary", ver), arMember("control.tar.xz", ctl), arMember("data.tar.xz", data), arMember("data.tar.xz", data)), true, "", ""},
		{"data.tar.foo", ar(arMember("debian-binary", ver), arMember("control.tar.xz", ctl), arMember("data.tar.foo", data)), true, "", ""},
		{"cut", b[:len(b)-100], true, "", ""},
		{"size past the end", append(bytes.Clone(b[:len(b)-len(data)]), data[:len(data)/2]...), true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := ctest.Walk(t, deb.Reader{}, tc.b, "p.deb", ctest.Limits())
			var me *signing.MalformedError
			if tc.malformed != errors.As(g.Err, &me) {
				t.Fatalf("Walk: %v, malformed %v", g.Err, tc.malformed)
			}
			if tc.malformed {
				return
			}
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			var found bool
			for _, m := range g.Members {
				if m.Name == tc.problem {
					found = errors.Is(m.Problem, container.ErrMember)
				}
			}
			if tc.problem != "" && !found {
				t.Errorf("%s not yielded with a Problem", tc.problem)
			}
			if tc.member != "" && g.Bytes[tc.member] == nil {
				t.Errorf("%s not yielded", tc.member)
			}
			if tc.name == "signed" && !bytes.Equal(g.Bytes["_gpgorigin"], sig) {
				t.Errorf("_gpgorigin: %q", g.Bytes["_gpgorigin"])
			}
			// dpkg-deb's verdict on what Walk accepts with a Problem.
			if tc.problem != "" {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "p.deb"), tc.b, 0o644); err != nil {
					t.Fatal(err)
				}
				if !ctest.Fails(dir, "dpkg-deb", "-x", "p.deb", "x") {
					t.Errorf("dpkg-deb -x accepts the package that holds %s, which Walk blocks", tc.problem)
				}
			}
		})
	}
}

func TestMalformedAgreesWithDpkg(t *testing.T) {
	b, _ := pkg(t, "zstd")
	dir := t.TempDir()
	for name, c := range map[string][]byte{"cut": b[:len(b)-100], "magic": append([]byte("!<arch>\r"), b[8:]...)} {
		p := filepath.Join(dir, name+".deb")
		if err := os.WriteFile(p, c, 0o644); err != nil {
			t.Fatal(err)
		}
		g := ctest.Walk(t, deb.Reader{}, c, "p.deb", ctest.Limits())
		if !errors.Is(g.Err, signing.ErrMalformed) {
			t.Errorf("%s: Walk: %v", name, g.Err)
		}
		if !ctest.Fails(dir, "dpkg-deb", "-x", p, filepath.Join(dir, "x"+name)) {
			t.Errorf("%s: dpkg-deb -x accepts what Walk refuses", name)
		}
	}
}

// TestAr reads a static library made by GNU ar, long names included, as
// ar x extracts it.
func TestAr(t *testing.T) {
	ctest.Need(t, "ar")
	dir := t.TempDir()
	files := map[string][]byte{
		"a.o": ctest.Bytes(1, 1001),
		"b.o": ctest.Bytes(2, 2000),
		"a-very-long-object-file-name-past-sixteen.o": ctest.Bytes(3, 33),
		"another-very-long-object-file-name-indeed.o": ctest.Bytes(4, 0),
	}
	ctest.Tree(t, filepath.Join(dir, "s"), files)
	names := []string{"rc", "../lib.a"}
	for n := range files {
		names = append(names, n)
	}
	ctest.Run(t, filepath.Join(dir, "s"), "ar", names...)
	b, err := os.ReadFile(filepath.Join(dir, "lib.a"))
	if err != nil {
		t.Fatal(err)
	}
	if !(deb.Ar{}).Sniff(b, "lib.a") || (deb.Reader{}).Sniff(b, "lib.a") {
		t.Fatal("Sniff")
	}
	if err := os.Mkdir(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctest.Run(t, filepath.Join(dir, "x"), "ar", "x", "../lib.a")
	g := ctest.Walk(t, deb.Ar{}, b, "lib.a", ctest.Limits())
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	ctest.Same(t, g.Bytes, ctest.Files(t, filepath.Join(dir, "x")))
	ctest.Same(t, g.Bytes, files)

	// ar q appends a second a.o: the later copy is blocked.
	ctest.Run(t, filepath.Join(dir, "s"), "ar", "q", "../lib.a", "a.o")
	b, _ = os.ReadFile(filepath.Join(dir, "lib.a"))
	g = ctest.Walk(t, deb.Ar{}, b, "lib.a", ctest.Limits())
	last := g.Members[len(g.Members)-1]
	if g.Err != nil || last.Name != "a.o" || !errors.Is(last.Problem, container.ErrMember) {
		t.Fatalf("duplicate: %v %+v", g.Err, last)
	}
}

func TestCaps(t *testing.T) {
	b, _ := pkg(t, "gzip")
	lim := ctest.Limits()
	lim.MaxMembers = 4
	g := ctest.Walk(t, deb.Reader{}, b, "p.deb", lim)
	var le *container.LimitError
	if !errors.As(g.Err, &le) || le.Cap != "max-container-members" {
		t.Errorf("MaxMembers 4: %v", g.Err)
	}
}

// TestLegacyCompressions: data.tar.bz2 and data.tar.lzma, which dpkg-deb
// no longer writes but still reads, assembled from a package dpkg-deb
// built and compressed by bzip2 and lzma; dpkg-deb -x extracts what Walk
// yields.
func TestLegacyCompressions(t *testing.T) {
	b, want := pkg(t, "none")
	p := parts(t, b)
	for _, tc := range []struct{ tool, suffix string }{{"bzip2", ".bz2"}, {"lzma", ".lzma"}} {
		t.Run(tc.tool, func(t *testing.T) {
			ctest.Need(t, tc.tool)
			data, err := ctest.Stdin(p["data.tar"], tc.tool, "-c")
			if err != nil {
				t.Fatal(err)
			}
			d := append([]byte(deb.Magic), bytes.Join([][]byte{arMember("debian-binary", p["debian-binary"]),
				arMember("control.tar", p["control.tar"]), arMember("data.tar"+tc.suffix, data)}, nil)...)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.deb"), d, 0o644); err != nil {
				t.Fatal(err)
			}
			ctest.Run(t, dir, "dpkg-deb", "-R", "p.deb", "x")
			g := ctest.Walk(t, deb.Reader{}, d, "p.deb", ctest.Limits())
			if g.Err != nil {
				t.Fatal(g.Err)
			}
			ctest.Same(t, g.Bytes, ctest.Files(t, filepath.Join(dir, "x")))
			ctest.Same(t, g.Bytes, want)
		})
	}
}

// TestArLateTables: GNU ar reads a symbol table only as the first member
// and the long-name table only first or right after it; a later
// __.SYMDEF is a file ar x lays down, and must be judged, and a later "/"
// or "//" is blocked.
func TestArLateTables(t *testing.T) {
	ar := func(ms ...[]byte) []byte { return append([]byte(deb.Magic), bytes.Join(ms, nil)...) }
	elf := append([]byte("\x7fELF"), ctest.Bytes(5, 300)...)
	b := ar(arMember("a.o/", []byte("hello\n")), arMember("__.SYMDEF", elf), arMember("__.SYMDEF SORTED", elf[:100]))
	if _, err := exec.LookPath("ar"); err == nil {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "t.a"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		ctest.Run(t, dir, "ar", "x", "t.a")
		if got, err := os.ReadFile(filepath.Join(dir, "__.SYMDEF")); err != nil || !bytes.Equal(got, elf[:100]) {
			t.Fatalf("ar x did not lay down __.SYMDEF (%v)", err)
		}
	}
	g := ctest.Walk(t, deb.Ar{}, b, "t.a", ctest.Limits())
	if g.Err != nil {
		t.Fatal(g.Err)
	}
	// GNU ar names "__.SYMDEF SORTED" __.SYMDEF: the second copy, blocked.
	if !bytes.Equal(g.Bytes["__.SYMDEF"], elf) || len(g.Members) != 3 || g.Members[2].Name != "__.SYMDEF" || g.Members[2].Problem == nil {
		t.Fatalf("a __.SYMDEF after the first member was not yielded: %+v", g.Members)
	}
	// A short name ends at its first '/' or space, as GNU ar reads it.
	b = ar(arMember("x.ps1 a.txt", []byte("Write-Host 1\n")), arMember("d/e.ps1/", []byte("Write-Host 2\n")))
	g = ctest.Walk(t, deb.Ar{}, b, "t.a", ctest.Limits())
	if g.Err != nil || g.Bytes["x.ps1"] == nil || g.Bytes["d"] == nil {
		t.Fatalf("short names: %v %+v", g.Err, g.Members)
	}

	b = ar(arMember("a.o/", []byte("hi\n")), arMember("/", elf), arMember("//", []byte("x.o/\n")))
	g = ctest.Walk(t, deb.Ar{}, b, "t.a", ctest.Limits())
	if g.Err != nil || len(g.Members) != 3 || g.Members[1].Problem == nil || g.Members[2].Problem == nil {
		t.Fatalf("late tables: %v %+v", g.Err, g.Members)
	}
	// A second long-name table is no table: GNU ar names /0 from the first.
	b = ar(arMember("//", []byte("x.o/\n")), arMember("//", []byte("other.o/\n")), arMember("/0", elf))
	g = ctest.Walk(t, deb.Ar{}, b, "t.a", ctest.Limits())
	if g.Err != nil || !bytes.Equal(g.Bytes["x.o"], elf) {
		t.Fatalf("second long-name table: %v %+v", g.Err, g.Members)
	}
	// The first member's symbol table is not yielded.
	b = ar(arMember("/", []byte{0, 0, 0, 0}), arMember("a.o/", []byte("hi\n")))
	g = ctest.Walk(t, deb.Ar{}, b, "t.a", ctest.Limits())
	if g.Err != nil || len(g.Members) != 1 || g.Members[0].Name != "a.o" {
		t.Fatalf("symbol table: %v %+v", g.Err, g.Members)
	}
}
