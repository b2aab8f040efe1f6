package msi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// wixl builds a package from a WiX source whose Media element is media
// (two files, app.exe and lib.dll, on disk 1).
func wixl(t testing.TB, media string) []byte {
	t.Helper()
	tool := testenv.Tool(t, "wixl")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.exe"), testbin.PE(testbin.PEOptions{}), 0o600)
	os.WriteFile(filepath.Join(dir, "lib.dll"), testbin.PE(testbin.PEOptions{PE32: true}), 0o600)
	wxs := `<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="12345678-1234-1234-1234-aaaaaaaaaaaa" Name="csv test" Language="1033" Version="1.0.0" Manufacturer="csv" UpgradeCode="12345678-1234-1234-1234-bbbbbbbbbbbb">
    <Package InstallerVersion="200" Compressed="yes"/>
    ` + media + `
    <Directory Id="TARGETDIR" Name="SourceDir"><Directory Id="ProgramFilesFolder"><Directory Id="INSTALLDIR" Name="csvtest">
      <Component Id="C1" Guid="12345678-1234-1234-1234-000000000001"><File Id="F1" Name="app.exe" Source="app.exe" KeyPath="yes"/></Component>
      <Component Id="C2" Guid="12345678-1234-1234-1234-000000000002"><File Id="F2" Name="lib.dll" Source="lib.dll" KeyPath="yes"/></Component>
    </Directory></Directory></Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="C1"/><ComponentRef Id="C2"/></Feature>
  </Product>
</Wix>`
	os.WriteFile(filepath.Join(dir, "p.wxs"), []byte(wxs), 0o600)
	cmd := exec.Command(tool, "-o", "p.msi", "p.wxs")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wixl: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(dir, "p.msi"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// export runs msiinfo export: the table's rows, their fields split.
func export(t testing.TB, pkg []byte, table string) [][]string {
	t.Helper()
	tool := testenv.Tool(t, "msiinfo")
	path := filepath.Join(t.TempDir(), "p.msi")
	os.WriteFile(path, pkg, 0o600)
	out, err := exec.Command(tool, "export", path, table).Output()
	if err != nil {
		t.Fatalf("msiinfo export %s: %v", table, err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\r\n"), "\n")
	var rows [][]string
	for _, l := range lines[3:] { // names, types, table and keys
		rows = append(rows, strings.Split(strings.TrimRight(l, "\r"), "\t"))
	}
	return rows
}

// tableStreams returns the package's table streams by table name.
func tableStreams(t testing.TB, pkg []byte) map[string][]byte {
	t.Helper()
	f, err := cfb.Parse(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, c := range f.Entries[0].Children {
		if name, ok := strings.CutPrefix(msi.DecodeName(f.Entries[c].Name), msi.TablePrefix); ok && f.Entries[c].Type == cfb.TypeStream {
			s, err := f.Open(c)
			if err != nil {
				t.Fatal(err)
			}
			if out[name], err = s.ReadAll(1 << 30); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// rewrite writes pkg anew with the root streams edit changes (by decoded
// name; edit returns nil to leave one out).
func rewrite(t testing.TB, pkg []byte, edit func(name string, b []byte) []byte) []byte {
	t.Helper()
	f, err := cfb.Parse(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	root := f.Tree()
	var kids []*cfb.Node
	for _, n := range root.Children {
		if n.Type == cfb.TypeStream {
			r, err := n.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			b = edit(msi.DecodeName(n.Name), b)
			if b == nil {
				continue
			}
			n.Size = int64(len(b))
			n.Open = func() (io.Reader, error) { return bytes.NewReader(b), nil }
		}
		kids = append(kids, n)
	}
	root.Children = kids
	var out bytes.Buffer
	if _, err := cfb.Write(&out, root, f.SectorSize); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestMediaMatchesMsiinfo: the Media rows and each disk's files are
// msiinfo export's, for an embedded and an external cabinet.
func TestMediaMatchesMsiinfo(t *testing.T) {
	for name, pkg := range map[string][]byte{
		"embedded": wixl(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>`),
		"external": wixl(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="no"/>`),
		"testmsi":  testmsi.Build(t, testmsi.File{Name: "a.exe", Data: testbin.PE(testbin.PEOptions{})}),
	} {
		t.Run(name, func(t *testing.T) {
			f, err := cfb.Parse(bytes.NewReader(pkg), int64(len(pkg)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readMedia(f)
			if err != nil {
				t.Fatal(err)
			}
			want := export(t, pkg, "Media")
			files := export(t, pkg, "File")
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%d Media rows, msiinfo %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if s := fmt.Sprint(g.Disk); s != w[0] || fmt.Sprint(g.LastSequence) != w[1] || g.Cabinet != w[3] {
					t.Errorf("row %d: %+v, msiinfo %q", i, g, w)
				}
				n := 0
				for _, r := range files {
					if seq, _ := strconv.ParseInt(r[7], 10, 64); seq <= g.LastSequence {
						n++
					}
				}
				if g.Files != n || n == 0 {
					t.Errorf("disk %d: %d files, msiinfo's File table %d", g.Disk, g.Files, n)
				}
			}
		})
	}
}

// walkProblems walks pkg and returns its members' problems by name.
func walkProblems(t *testing.T, pkg []byte) (map[string]error, error) {
	t.Helper()
	out := map[string]error{}
	err := Reader{}.Walk(context.Background(), bytes.NewReader(pkg), int64(len(pkg)), "p.msi", nil,
		func(m *container.Member, r io.Reader) error {
			if r != nil {
				io.Copy(io.Discard, r)
			}
			if m.Problem != nil {
				out[m.Name] = m.Problem
			}
			return nil
		})
	return out, err
}

// setColumn returns a table stream with column col (0-based, of the given
// widths) of every row set to v.
func setColumn(b []byte, widths []int, col int, v uint32) []byte {
	row := 0
	for _, w := range widths {
		row += w
	}
	n := len(b) / row
	off := 0
	for _, w := range widths[:col] {
		off += w * n
	}
	out := bytes.Clone(b)
	for r := range n {
		p := out[off+r*widths[col]:][:widths[col]]
		for i := range p {
			p[i] = byte(v >> (8 * i))
		}
	}
	return out
}

// renameString rewrites pkg with the string old of its string pool
// replaced by new (the pool's entry for it given the new length).
func renameString(t testing.TB, pkg []byte, old, new string) []byte {
	t.Helper()
	streams := tableStreams(t, pkg)
	pool, data := bytes.Clone(streams["_StringPool"]), streams["_StringData"]
	le := binary.LittleEndian
	off := 0
	for i := 4; i < len(pool); i += 4 {
		n := int(le.Uint16(pool[i:]))
		if string(data[off:off+n]) == old {
			le.PutUint16(pool[i:], uint16(len(new)))
			data = append(append(bytes.Clone(data[:off]), new...), data[off+n:]...)
			return rewrite(t, pkg, func(name string, b []byte) []byte {
				switch name {
				case msi.TablePrefix + "_StringPool":
					return pool
				case msi.TablePrefix + "_StringData":
					return data
				}
				return b
			})
		}
		off += n
	}
	t.Fatalf("no string %q", old)
	return nil
}

// Media (DiskId i2, LastSequence i4, DiskPrompt, Cabinet, VolumeLabel,
// Source: strings) and File (File, Component_, FileName strings, FileSize
// i4, Version, Language strings, Attributes i2, Sequence i4) as wixl writes
// them, with 2-byte string references.
var (
	mediaWidths = []int{2, 4, 2, 2, 2, 2}
	fileWidths  = []int{2, 2, 2, 4, 2, 2, 2, 4}
)

// TestMediaFindings: files the package installs from outside it are
// members with problems naming where they are; an embedded cabinet that is
// present is none.
func TestMediaFindings(t *testing.T) {
	embedded := wixl(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>`)
	external := wixl(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="no"/>`)
	for _, tc := range []struct {
		name     string
		pkg      []byte
		member   string // the problem member; "" none
		external string // its ExternalError's Name, "-" for not one
	}{
		{"embedded", embedded, "", ""},
		{"external cabinet", external, "app.cab", "app.cab"},
		{"embedded cabinet missing", rewrite(t, embedded, func(n string, b []byte) []byte {
			if n == "app.cab" {
				return nil
			}
			return b
		}), "app.cab", "-"},
		{"no cabinet", rewrite(t, embedded, func(n string, b []byte) []byte {
			if n == msi.TablePrefix+"Media" {
				return setColumn(b, mediaWidths, 3, 0)
			}
			return b
		}), "Media disk 1 (uncompressed source files)", ""},
		{"files marked uncompressed", rewrite(t, embedded, func(n string, b []byte) []byte {
			if n == msi.TablePrefix+"File" {
				return setColumn(b, fileWidths, 6, 0x8000+0x2000)
			}
			return b
		}), "Media disk 1 (uncompressed source files)", ""},
		{"database's own stream as cabinet", renameString(t, embedded, "#app.cab", "#\x05SummaryInformation"), "\x05SummaryInformation", "-"},
		{"files on no disk", rewrite(t, external, func(n string, b []byte) []byte {
			if n == msi.TablePrefix+"File" {
				return setColumn(b, fileWidths, 7, 0x80000000+100) // Sequence 100, past LastSequence
			}
			return b
		}), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs, err := walkProblems(t, tc.pkg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.member == "" {
				if len(probs) != 0 {
					t.Fatalf("problems %v", probs)
				}
				return
			}
			if len(probs) != 1 || probs[tc.member] == nil {
				t.Fatalf("problems %v, want one for %q", probs, tc.member)
			}
			err = probs[tc.member]
			var ext *container.ExternalError
			if !errors.Is(err, container.ErrMember) || errors.As(err, &ext) != (tc.external != "-") {
				t.Fatalf("%v (%T)", err, err)
			}
			if ext != nil && ext.Name != tc.external {
				t.Errorf("external %q, want %q", ext.Name, tc.external)
			}
			t.Log(err)
		})
	}
}

// TestMalformedTables: a database csv cannot read strictly blocks the
// package as malformed, with the reason.
func TestMalformedTables(t *testing.T) {
	pkg := wixl(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>`)
	streams := tableStreams(t, pkg)
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		table string
		edit  func([]byte) []byte
		want  string
	}{
		{"pool cut", "_StringPool", func(b []byte) []byte { return b[:len(b)-2] }, "not a 4-byte header"},
		{"pool empty", "_StringPool", func([]byte) []byte { return []byte{} }, "string pool is 0 bytes"},
		{"data short", "_StringData", func(b []byte) []byte { return b[:len(b)-1] }, "runs past the string data"},
		{"data long", "_StringData", func(b []byte) []byte { return append(b, 'x') }, "bytes no string holds"},
		{"long string past data", "_StringPool", func(b []byte) []byte {
			b = bytes.Clone(b)
			le.PutUint16(b[4:], 0)
			le.PutUint16(b[6:], 0x7fff)
			return b
		}, "runs past the string data"},
		{"columns cut", "_Columns", func(b []byte) []byte { return b[:len(b)-1] }, "_Columns table is"},
		{"media cut", "Media", func(b []byte) []byte { return b[:len(b)-1] }, "Media table is"},
		{"cabinet id past pool", "Media", func(b []byte) []byte { return setColumn(b, mediaWidths, 3, 0xfff0) }, "names string 65520"},
		{"no DiskId", "Media", func(b []byte) []byte { return setColumn(b, mediaWidths, 0, 0) }, "no DiskId"},
		{"file cut", "File", func(b []byte) []byte { return b[:len(b)-3] }, "File table is"},
		{"no columns", "_Columns", func([]byte) []byte { return []byte{} }, "no columns in _Columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := rewrite(t, pkg, func(n string, b []byte) []byte {
				if n == msi.TablePrefix+tc.table {
					return tc.edit(b)
				}
				return b
			})
			_, err := walkProblems(t, bad)
			var me *signing.MalformedError
			if !errors.As(err, &me) || !strings.Contains(me.Reason, tc.want) {
				t.Fatalf("%v, want a MalformedError saying %q", err, tc.want)
			}
			// The same from the streams alone (the fuzz target's way).
			tables := map[string]func(int64) ([]byte, error){}
			for n, b := range streams {
				if n == tc.table {
					b = tc.edit(b)
				}
				tables[n] = func(int64) ([]byte, error) { return b, nil }
			}
			if _, err := readTables(tables); !errors.As(err, &me) {
				t.Errorf("readTables: %v", err)
			}
		})
	}
}

// FuzzTables reads the Media table from fuzzed table streams (wixl's
// packages' streams, cut and changed, as seeds): an error is a
// MalformedError, never a panic, and each disk's files are at most the
// File table's rows.
func FuzzTables(f *testing.F) {
	names := []string{"_StringPool", "_StringData", "_Columns", "Media", "File"}
	for _, media := range []string{`<Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>`, `<Media Id="1" Cabinet="app.cab" EmbedCab="no"/>`} {
		s := tableStreams(f, wixl(f, media))
		f.Add(s["_StringPool"], s["_StringData"], s["_Columns"], s["Media"], s["File"])
		f.Add(s["_StringPool"][:len(s["_StringPool"])-4], s["_StringData"], s["_Columns"], s["Media"], s["File"])
		f.Add(s["_StringPool"], s["_StringData"], s["_Columns"][:len(s["_Columns"])/2], s["Media"][:6], s["File"])
		long := bytes.Clone(s["_StringPool"])
		long[3] |= 0x80
		f.Add(long, s["_StringData"], s["_Columns"], s["Media"], s["File"])
	}
	f.Fuzz(func(t *testing.T, pool, data, columns, media, file []byte) {
		tables := map[string]func(int64) ([]byte, error){}
		for i, b := range [][]byte{pool, data, columns, media, file} {
			tables[names[i]] = func(max int64) ([]byte, error) {
				if int64(len(b)) > max {
					return nil, capError(names[i], int64(len(b)), max)
				}
				return b, nil
			}
		}
		rows, err := readTables(tables)
		if err != nil {
			var me *signing.MalformedError
			if !errors.As(err, &me) || rows != nil {
				t.Fatalf("%v (%T), rows %v", err, err, rows)
			}
			return
		}
		total := 0
		for _, r := range rows {
			if r.Files < r.Uncompressed || r.Files < 0 {
				t.Fatalf("%+v", r)
			}
			total += r.Files
		}
		if total > len(file) {
			t.Fatalf("%d files from a File table of %d bytes", total, len(file))
		}
	})
}
