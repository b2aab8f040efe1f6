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

// derSequence is a DER SEQUENCE of n bytes in all (2 <= n < 130): the
// shape of a signature, for tables that only need to be split.
func derSequence(n int) []byte {
	b := make([]byte, n)
	b[0], b[1] = 0x30, byte(n-2)
	return b
}

// withCertTable appends a certificate table (one entry of n bytes of
// payload, a DER SEQUENCE) at the 8-aligned end of img and points the
// directory at it.
func withCertTable(img []byte, payload int) []byte {
	out := bytes.Clone(img)
	for len(out)%8 != 0 {
		out = append(out, 0)
	}
	off := len(out)
	entry := append(make([]byte, 8), derSequence(payload)...)
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
			if me.Format != "PE" {
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
	// entry is a WIN_CERTIFICATE holding data, dwLength counting it all.
	entry := func(rev, typ uint16, data []byte) []byte {
		e := make([]byte, 8, 8+len(data))
		binary.LittleEndian.PutUint32(e, uint32(8+len(data)))
		binary.LittleEndian.PutUint16(e[4:], rev)
		binary.LittleEndian.PutUint16(e[6:], typ)
		return append(e, data...)
	}
	sig := func(data []byte) []byte { return entry(CertRevision2_0, CertTypePKCSSignedData, data) }
	pad := func(b []byte) []byte {
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		return b
	}
	two := append(pad(sig(derSequence(13))), pad(sig(derSequence(20)))...)
	certs, err := ParseCertificateTable(two, 0x1000)
	if err != nil || len(certs) != 2 || certs[1].Offset != 0x1000+24 || len(certs[0].Data) != 13 {
		t.Fatalf("two entries: %+v, %v", certs, err)
	}
	good := map[string][]byte{
		"entry without trailing padding": sig(derSequence(13)),
		"padding inside dwLength":        sig(append(derSequence(13), 0, 0, 0)),
		"padding split around dwLength":  pad(sig(append(derSequence(13), 0))),
		"long-form DER length":           sig(append([]byte{0x30, 0x81, 0x80}, make([]byte, 0x80)...)),
	}
	for name, b := range good {
		if _, err := ParseCertificateTable(b, 0); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	mz := append([]byte("MZ"), make([]byte, 4094)...)
	junk := bytes.Repeat([]byte{0x5a}, 4096)
	bad := []struct {
		name  string
		table []byte
		at    int64 // offset the error names
		says  string
	}{
		{"empty", []byte{}, 0, "no entries"},
		{"dwLength too small", []byte{4, 0, 0, 0, 0, 2, 2, 0}, 0, "smaller than its header"},
		{"dwLength too large", append([]byte{0xff, 0, 0, 0, 0, 2, 2, 0}, make([]byte, 8)...), 0, "exceeds"},
		{"non-zero padding after dwLength", append(sig(derSequence(13)), 1, 1, 1), 21, "non-zero padding"},
		{"stray bytes", append(pad(sig(derSequence(13))), 1, 2, 3), 24, "stray bytes"},
		// Nothing but Authenticode signatures: the CVE-2013-3900 class.
		{"X509 entry starting with MZ", append(pad(sig(derSequence(13))), entry(CertRevision2_0, CertTypeX509, mz)...), 24, "type X509"},
		{"PKCS1_SIGN entry", entry(CertRevision2_0, CertTypePKCS1Sign, derSequence(16)), 0, "type PKCS1_SIGN"},
		{"revision 1.0", entry(CertRevision1_0, CertTypePKCSSignedData, derSequence(16)), 0, "revision 0x0100"},
		{"second entry of junk", append(pad(sig(derSequence(13))), sig(junk)...), 32, "not a DER SEQUENCE"},
		{"not DER", sig([]byte{0x30, 0x80, 0, 0}), 8, "not a DER SEQUENCE"},
		{"non-minimal DER length", sig(append([]byte{0x30, 0x81, 0x10}, make([]byte, 0x10)...)), 8, "not a DER SEQUENCE"},
		{"data after the signature", sig(append(derSequence(13), 'M', 'Z')), 21, "2 bytes after the signature are not zero padding"},
		{"second DER element", sig(append(derSequence(16), derSequence(16)...)), 24, "16 bytes after the signature"},
		{"8 bytes of zero padding", sig(append(derSequence(16), make([]byte, 8)...)), 24, "past the 8-byte boundary (at most 0)"},
		{"zero padding past the boundary", sig(append(derSequence(13), make([]byte, 4)...)), 21, "4 bytes of padding after the signature, past the 8-byte boundary (at most 3)"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCertificateTable(tt.table, 0)
			var me *binfmt.MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v, want a *binfmt.MalformedError", err)
			}
			if me.Offset != tt.at || !strings.Contains(me.Reason, tt.says) {
				t.Errorf("error at %#x %q, want at %#x saying %q", me.Offset, me.Reason, tt.at, tt.says)
			}
		})
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
	// A signed image with an X509 second entry and with junk after the
	// signature: what ParseCertificateTable must refuse.
	signed := withCertTable(testbin.PE(testbin.PEOptions{}), 40)
	withTable := func(extra []byte) []byte {
		b := append(bytes.Clone(signed), extra...)
		pf, err := parse(signed)
		if err != nil {
			f.Fatal(err)
		}
		binary.LittleEndian.PutUint32(b[pf.CertDirOffset+4:], uint32(pf.CertTable.Len)+uint32(len(extra)))
		return b
	}
	x509 := append([]byte{24, 0, 0, 0, 0, 2, 1, 0, 'M', 'Z'}, make([]byte, 14)...)
	f.Add(withTable(x509))
	f.Add(withTable(append([]byte{16, 0, 0, 0, 0, 2, 2, 0}, 'j', 'u', 'n', 'k', 0, 0, 0, 0)))
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
					if c.Revision != CertRevision2_0 || c.Type != CertTypePKCSSignedData || len(c.Data) < 2 || c.Data[0] != 0x30 {
						t.Fatalf("entry %+v accepted: not a PKCS#7 signature", c)
					}
				}
			}
		}
	})
}
