package rpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

func defaultLimits() *container.Limits { return container.DefaultLimits() }

// got is a member as Walk yielded it, with its bytes.
type got struct {
	m    container.Member
	data []byte
}

func walk(t testing.TB, b []byte, lim *container.Limits) ([]got, error) {
	t.Helper()
	if lim == nil {
		lim = defaultLimits()
	}
	var out []got
	err := Reader{}.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "x.rpm", lim,
		func(m *container.Member, r io.Reader) error {
			g := got{m: *m}
			if (r == nil) != (m.Problem != nil) {
				t.Errorf("member %s: reader %v with Problem %v", m.Name, r != nil, m.Problem)
			}
			if r != nil {
				d, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				g.data = d
			}
			out = append(out, g)
			return nil
		})
	return out, err
}

// tree is the generated content of a test package, by installed path.
type tree struct {
	files    map[string][]byte
	symlinks map[string]string
	hardlink [2]string // a second name of a file, and the file
}

func genTree(seed uint64) tree {
	rng := rand.New(rand.NewPCG(seed, 1))
	gen := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	t := tree{files: map[string][]byte{
		"opt/csvtest/bin/tool":         gen(200 << 10),
		"opt/csvtest/lib/libx.so.1":    gen(4097),
		"opt/csvtest/lib/empty":        nil,
		"opt/csvtest/share/one":        gen(1),
		"opt/csvtest/share/deep/a/b/c": append([]byte("#!/bin/sh\n"), gen(3000)...),
		"opt/csvtest/bin/linked":       gen(777),
	}, symlinks: map[string]string{"opt/csvtest/lib/libx.so": "libx.so.1"},
		hardlink: [2]string{"opt/csvtest/bin/linked2", "opt/csvtest/bin/linked"}}
	t.files[t.hardlink[0]] = t.files[t.hardlink[1]]
	return t
}

// buildRPM builds a package of tr with rpmbuild, its payload compressed
// as payload says (rpm's _binary_payload: "w9.gzdio"), and returns its
// path.
func buildRPM(t testing.TB, tr tree, payload string) string {
	t.Helper()
	rpmbuild := testenv.Tool(t, "rpmbuild")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for name, data := range tr.files {
		if name == tr.hardlink[0] {
			continue
		}
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, tr.hardlink[1]), filepath.Join(root, tr.hardlink[0])); err != nil {
		t.Fatal(err)
	}
	for name, target := range tr.symlinks {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	spec := fmt.Sprintf(`Name: csvtest
Version: 1
Release: 1
Summary: csv test package
License: MIT
BuildArch: noarch
%%define debug_package %%{nil}
%%define __os_install_post %%{nil}
%%define _build_id_links none
%%description
csv test package
%%install
mkdir -p %%{buildroot}
cp -a %s/. %%{buildroot}/
%%files
/opt/csvtest
`, root)
	specPath := filepath.Join(dir, "csvtest.spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rpmbuild, "-bb", "--quiet", "--define", "_topdir "+filepath.Join(dir, "top"),
		"--define", "_binary_payload "+payload, specPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "top", "RPMS", "*", "*.rpm"))
	if len(matches) != 1 {
		t.Fatalf("rpmbuild made %v", matches)
	}
	return matches[0]
}

// extract is the oracle: rpm2cpio | cpio -idm into a directory, read back
// as regular files by name and symlinks by name.
func extract(t testing.TB, pkg string) (map[string][]byte, map[string]string, error) {
	t.Helper()
	rpm2cpio := testenv.Tool(t, "rpm2cpio")
	cpio := testenv.Tool(t, "cpio")
	dir := t.TempDir()
	cmd := exec.Command("bash", "-c", `set -o pipefail; "$0" "$1" | (cd "$2" && "$3" -idm --quiet)`, rpm2cpio, pkg, dir, cpio)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("rpm2cpio | cpio: %v: %s", err, out)
	}
	files, links := map[string][]byte{}, map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			links[rel], err = os.Readlink(p)
			return err
		}
		files[rel], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, links, nil
}

var payloads = []struct{ name, macro string }{
	{"gzip", "w9.gzdio"},
	{"xz", "w6.xzdio"},
	{"zstd", "w19.zstdio"},
	{"bzip2", "w9.bzdio"},
	{"lzma", "w6.lzdio"},
	{"none", "w0.ufdio"},
}

// TestAgainstRpm2cpio builds a package with rpmbuild per payload
// compressor and checks that Walk yields exactly what rpm2cpio | cpio
// extracts: the same regular files byte for byte (both names of a hard
// link), the symbolic links as members with a Problem and their target.
func TestAgainstRpm2cpio(t *testing.T) {
	tr := genTree(1)
	for _, p := range payloads {
		t.Run(p.name, func(t *testing.T) {
			pkg := buildRPM(t, tr, p.macro)
			b, err := os.ReadFile(pkg)
			if err != nil {
				t.Fatal(err)
			}
			if !(Reader{}).Sniff(b[:min(len(b), container.SniffSize)], "x.rpm") {
				t.Fatal("Sniff does not recognise an rpmbuild package")
			}
			pk, err := ReadPackage(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			wantComp := p.name
			if p.name == "none" {
				wantComp = "gzip" // rpm writes no tag for w0.ufdio
			}
			if pk.PayloadCompressor != wantComp && !(p.name == "none" && pk.PayloadCompressor == "none") {
				t.Errorf("PayloadCompressor = %q, want %q", pk.PayloadCompressor, wantComp)
			}
			if len(pk.Signatures) != 0 {
				t.Errorf("an unsigned package reports signatures %v", pk.Signatures)
			}
			files, links, err := extract(t, pkg)
			if err != nil {
				t.Fatal(err)
			}
			members, err := walk(t, b, nil)
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			yielded, ylinks := map[string][]byte{}, map[string]string{}
			for _, g := range members {
				switch {
				case g.m.Problem == nil && g.m.Type == container.Regular:
					if _, dup := yielded[g.m.Name]; dup {
						t.Errorf("%s yielded twice", g.m.Name)
					}
					if g.m.Size != int64(len(g.data)) {
						t.Errorf("%s: Size %d, %d bytes", g.m.Name, g.m.Size, len(g.data))
					}
					yielded[g.m.Name] = g.data
				case g.m.Type == container.Symlink && errors.Is(g.m.Problem, container.ErrMember):
					ylinks[g.m.Name] = g.m.Link
				default:
					t.Errorf("unexpected member %+v", g.m)
				}
			}
			if diff := compare(files, yielded); diff != "" {
				t.Errorf("Walk and rpm2cpio|cpio differ:\n%s", diff)
			}
			if fmt.Sprint(links) != fmt.Sprint(ylinks) {
				t.Errorf("symlinks: cpio %v, Walk %v", links, ylinks)
			}
			// And the generated tree itself, so that the oracle is not
			// trusted blindly either.
			if diff := compare(tr.files, yielded); diff != "" {
				t.Errorf("Walk and the generated tree differ:\n%s", diff)
			}
		})
	}
}

func compare(want, have map[string][]byte) string {
	var diff []string
	for n, d := range want {
		h, ok := have[n]
		switch {
		case !ok:
			diff = append(diff, "missing "+n)
		case !bytes.Equal(h, d):
			diff = append(diff, fmt.Sprintf("%s: %d bytes, want %d", n, len(h), len(d)))
		}
	}
	for n := range have {
		if _, ok := want[n]; !ok {
			diff = append(diff, "extra "+n)
		}
	}
	sort.Strings(diff)
	return strings.Join(diff, "\n")
}

// TestRefusesWhatRpmRefuses corrupts a real package in ways the peers
// notice (rpm -K, or rpm2cpio | cpio) and checks that Walk returns a
// malformed error too.
func TestRefusesWhatRpmRefuses(t *testing.T) {
	rpmTool := testenv.Tool(t, "rpm")
	tr := genTree(2)
	for _, p := range payloads[:3] {
		t.Run(p.name, func(t *testing.T) {
			pkg := buildRPM(t, tr, p.macro)
			b, err := os.ReadFile(pkg)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := ReadPackage(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			cases := map[string][]byte{
				"truncated payload":  b[:pk.PayloadOffset+(int64(len(b))-pk.PayloadOffset)/2],
				"truncated header":   b[:pk.main.off+20],
				"payload byte":       flip(b, pk.PayloadOffset+(int64(len(b))-pk.PayloadOffset)/2),
				"main header byte":   flip(b, int64(len(pk.main.raw))/2+pk.main.off),
				"last payload bytes": flip(b, int64(len(b))-5),
			}
			for name, bad := range cases {
				f := filepath.Join(t.TempDir(), "bad.rpm")
				if err := os.WriteFile(f, bad, 0o644); err != nil {
					t.Fatal(err)
				}
				out, rpmErr := exec.Command(rpmTool, "-K", "--nosignature", f).CombinedOutput()
				_, _, cpioErr := extract(t, f)
				if rpmErr == nil && cpioErr == nil {
					t.Errorf("%s: neither rpm -K nor rpm2cpio|cpio refuse it (%s)", name, out)
					continue
				}
				if _, err := walk(t, bad, nil); !errors.Is(err, signing.ErrMalformed) {
					t.Errorf("%s: rpm refuses it (%s), Walk returns %v", name, bytes.TrimSpace(out), err)
				}
			}
		})
	}
}

func flip(b []byte, at int64) []byte {
	c := bytes.Clone(b)
	c[at] ^= 0x5a
	return c
}
