package pe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

const lfanew = 0x40 // testbin's e_lfanew

func parse(b []byte) (*File, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

// withCertTable appends a certificate table (one entry of n bytes of
// payload) at the 8-aligned end of img and points the directory at it.
func withCertTable(img []byte, payload int) []byte {
	out := bytes.Clone(img)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	off := len(out)
	entry := make([]byte, 8+payload)
	binary.LittleEndian.PutUint32(entry, uint32(len(entry)))
	binary.LittleEndian.PutUint16(entry[4:], CertRevision2_0)
	binary.LittleEndian.PutUint16(entry[6:], CertTypePKCSSignedData)
	for len(entry)%8 != 0 {
		entry = append(entry, 0)
	}
	out = append(out, entry...)
	f, err := parse(img)
	if err != nil {
		panic(err)
	}
	binary.LittleEndian.PutUint32(out[f.CertDirOffset:], uint32(off))
	binary.LittleEndian.PutUint32(out[f.CertDirOffset+4:], uint32(len(entry)))
	return out
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name     string
		img      []byte
		pe32plus bool
		sections int
		signed   bool
	}{
		{"PE32+", testbin.PE(testbin.PEOptions{}), true, 1, false},
		{"PE32 with data", testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("d")}), false, 2, false},
		{"overlay", testbin.PE(testbin.PEOptions{Overlay: []byte("overlay data")}), true, 1, false},
		{"signed", withCertTable(testbin.PE(testbin.PEOptions{Overlay: []byte("x")}), 100), true, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !IsPE(bytes.NewReader(tt.img), int64(len(tt.img))) {
				t.Fatal("IsPE = false")
			}
			f, err := parse(tt.img)
			if err != nil {
				t.Fatal(err)
			}
			optOff := int64(lfanew + 4 + 20)
			if f.PE32Plus != tt.pe32plus || len(f.Sections) != tt.sections || f.Signed() != tt.signed {
				t.Errorf("PE32Plus=%v sections=%d signed=%v", f.PE32Plus, len(f.Sections), f.Signed())
			}
			if f.CheckSumOffset != optOff+64 {
				t.Errorf("CheckSumOffset = %#x, want %#x", f.CheckSumOffset, optOff+64)
			}
			dirs := int64(96)
			if tt.pe32plus {
				dirs = 112
			}
			if f.CertDirOffset != optOff+dirs+32 {
				t.Errorf("CertDirOffset = %#x, want %#x", f.CertDirOffset, optOff+dirs+32)
			}
			if f.Sections[0].Name != ".text" {
				t.Errorf("section 0 = %q", f.Sections[0].Name)
			}
			if f.Signed() {
				certs, err := ParseCertificateTable(tt.img[f.CertTable.Off:], f.CertTable.Off)
				if err != nil || len(certs) != 1 || len(certs[0].Data) != 100 || certs[0].Type != CertTypePKCSSignedData {
					t.Errorf("certificate table: %+v, %v", certs, err)
				}
			}
		})
	}
}

func TestIsPE(t *testing.T) {
	img := testbin.PE(testbin.PEOptions{})
	noSig := bytes.Clone(img)
	copy(noSig[lfanew:], "XX")
	farLfanew := bytes.Clone(img)
	binary.LittleEndian.PutUint32(farLfanew[0x3c:], 1<<30)
	for name, b := range map[string][]byte{
		"MZ text":          []byte("MZ but not a PE file, just text that starts with MZ\n"),
		"short":            []byte("MZ"),
		"no PE signature":  noSig,
		"e_lfanew too far": farLfanew,
		"ELF":              testbin.ELF(testbin.ELFOptions{}),
	} {
		if IsPE(bytes.NewReader(b), int64(len(b))) {
			t.Errorf("%s: IsPE = true", name)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	img := testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte{1}, 16)})
	f0, err := parse(img)
	if err != nil {
		t.Fatal(err)
	}
	signed := withCertTable(img, 64)
	mod := func(b []byte, fn func([]byte)) []byte { c := bytes.Clone(b); fn(c); return c }
	put32 := func(off int64, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	put16 := func(off int64, v uint16) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint16(b[off:], v) }
	}
	sf, _ := parse(signed)
	tests := []struct {
		name      string
		b         []byte
		truncated bool
		want      string // substring of the reason
	}{
		{"truncated in the NT headers", img[:lfanew+20], true, "NT headers"},
		{"truncated in the optional header", img[:lfanew+24+50], true, "optional header"},
		{"truncated in the section data", img[:0x300], true, "section 0"},
		{"bad optional header magic", mod(img, put16(lfanew+24, 0x107)), false, "magic"},
		{"no security directory", mod(img, put32(lfanew+24+108, 4)), false, "NumberOfRvaAndSizes is 4"},
		{"directories overflow the optional header", mod(img, put32(lfanew+24+108, 100)), false, "does not fit"},
		{"optional header too small", mod(img, put16(lfanew+20, 100)), false, "SizeOfOptionalHeader"},
		{"too many sections", mod(img, put16(lfanew+6, 5000)), false, "exceed the limit"},
		{"section beyond the file", mod(img, put32(lfanew+24+240+20, 0x10000)), true, "extends past the end"},
		{"SizeOfHeaders beyond the file", mod(img, put32(lfanew+24+60, 0x100000)), true, "SizeOfHeaders"},
		{"cert size without offset", mod(img, put32(f0.CertDirOffset+4, 16)), false, "offset 0"},
		{"cert offset without size", mod(img, put32(f0.CertDirOffset, 0x400)), false, "size 0"},
		{"cert table past the end", mod(signed, put32(sf.CertDirOffset+4, 4096)), true, "extends past the end"},
		{"cert table overlaps the image", mod(signed, put32(sf.CertDirOffset, 0x200)), false, "overlaps the image"},
		{"data after the cert table", append(bytes.Clone(signed), "appended"...), false, "not at the end of the file"},
		{"cert table too large", mod(signed, put32(sf.CertDirOffset+4, 1<<30)), false, "exceeds the limit"},
		{"e_lfanew zero", mod(img, put32(0x3c, 0)), false, "e_lfanew"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.b)
			var me *binfmt.MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *binfmt.MalformedError", err)
			}
			if me.Format != binfmt.PE {
				t.Errorf("format %q", me.Format)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
			if got := errors.Is(err, binfmt.ErrTruncated) || strings.Contains(err.Error(), "truncated"); got != tt.truncated {
				t.Errorf("truncated = %v, want %v (%v)", got, tt.truncated, err)
			}
		})
	}
}

func TestParseCertificateTable(t *testing.T) {
	entry := func(n int, typ uint16) []byte {
		e := make([]byte, 8+n)
		binary.LittleEndian.PutUint32(e, uint32(8+n))
		binary.LittleEndian.PutUint16(e[4:], CertRevision2_0)
		binary.LittleEndian.PutUint16(e[6:], typ)
		for i := 8; i < len(e); i++ {
			e[i] = 0x30
		}
		return e
	}
	pad := func(b []byte) []byte {
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		return b
	}
	two := append(pad(entry(13, CertTypePKCSSignedData)), pad(entry(20, CertTypePKCSSignedData))...)
	certs, err := ParseCertificateTable(two, 0x1000)
	if err != nil || len(certs) != 2 || certs[1].Offset != 0x1000+24 || len(certs[0].Data) != 13 {
		t.Fatalf("two entries: %+v, %v", certs, err)
	}
	unpaddedLast := entry(13, CertTypePKCSSignedData)
	if certs, err := ParseCertificateTable(unpaddedLast, 0); err != nil || len(certs) != 1 {
		t.Errorf("entry without trailing padding: %v", err)
	}
	bad := map[string][]byte{
		"empty":              {},
		"dwLength too small": {4, 0, 0, 0, 0, 2, 2, 0},
		"dwLength too large": append(entry(8, 2)[:0:0], append([]byte{0xff, 0, 0, 0, 0, 2, 2, 0}, make([]byte, 8)...)...),
		"non-zero padding":   append(entry(13, 2), 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
		"stray bytes":        append(pad(entry(13, 2)), 1, 2, 3),
	}
	for name, b := range bad {
		if _, err := ParseCertificateTable(b, 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestParseRealFiles parses every third-party PE file.
func TestParseRealFiles(t *testing.T) {
	dir := testenv.Shared(t, "testdata/pe")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	n := 0
	for _, p := range files {
		if strings.HasSuffix(p, ".pem") || strings.HasSuffix(p, ".md") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parse(b)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if f.Signed() != strings.Contains(filepath.Base(p), "authenticode") && f.Signed() != strings.Contains(p, ".signed.") {
			t.Errorf("%s: Signed = %v", p, f.Signed())
		}
		if f.Signed() {
			if _, err := ParseCertificateTable(b[f.CertTable.Off:f.CertTable.End()], f.CertTable.Off); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
		n++
	}
	if n < 10 {
		t.Fatalf("parsed %d files", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(testbin.PE(testbin.PEOptions{}))
	f.Add(testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("x"), Overlay: []byte("y")}))
	f.Add(withCertTable(testbin.PE(testbin.PEOptions{}), 40))
	if dir := filepath.Join(testenv.RepoRoot(f), "..", "shared", "testdata", "pe"); true {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*.e*"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b))
		isPE := IsPE(bytes.NewReader(b), size)
		pf, err := Parse(bytes.NewReader(b), size)
		if err != nil {
			var me *binfmt.MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error is not a MalformedError: %v", err)
			}
			if pf != nil {
				t.Fatal("file returned with an error")
			}
			return
		}
		if !isPE {
			t.Fatal("Parse accepted a file IsPE rejects")
		}
		// Invariants the Authenticode digest relies on.
		if !(pf.CheckSumOffset+4 <= pf.CertDirOffset && pf.CertDirOffset+8 <= size) {
			t.Fatalf("checksum %#x, cert dir %#x, size %#x", pf.CheckSumOffset, pf.CertDirOffset, size)
		}
		if pf.Signed() {
			if pf.CertTable.End() != size || pf.CertTable.Off < pf.ImageEnd || pf.CertTable.Off < pf.CertDirOffset+8 {
				t.Fatalf("certificate table %+v, image end %#x, size %#x", pf.CertTable, pf.ImageEnd, size)
			}
			certs, err := ParseCertificateTable(b[pf.CertTable.Off:], pf.CertTable.Off)
			if err == nil {
				for _, c := range certs {
					if c.Offset < pf.CertTable.Off || c.Offset+int64(c.Length) > size {
						t.Fatalf("entry %+v outside the table", c)
					}
				}
			}
		}
	})
}
