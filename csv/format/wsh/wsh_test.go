package wsh_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/csv/format/wsh"
)

// A JScript file as Windows signs it (the block's shape; its base64 is
// not a signature, which csv does not read).
var signedJS = []byte("WScript.Echo(\"hi\");\r\n\r\n// SIG // Begin signature block\r\n// SIG // MIIF0wYJKoZIhvcNAQcCoIIFxDCC\r\n// SIG // End signature block\r\n")

func TestSniff(t *testing.T) {
	for name, want := range map[string]bool{"a.js": true, "A.VBS": true, "b.wsf": true, "c.jse": true, "d.VBE": true, "e.vbs.": true, "f.js  ": true, "g.vb\u017f": true, "a.json": false, "a.ps1": false, "js": false} {
		if got := formattest.SniffNamed(wsh.Handler{}, name, []byte("x")); got != want {
			t.Errorf("%q: %v", name, got)
		}
	}
}

// TestInspect: a script with a signature block is signed, by a signature
// csv does not verify (ErrNotVerified); one without is unsigned.
func TestInspect(t *testing.T) {
	for name, tc := range map[string]struct {
		data   []byte
		signed bool
	}{
		"plain.js":  {[]byte("WScript.Echo(1);\n"), false},
		"signed.js": {signedJS, true},
		"wide.vbs":  {append([]byte{0xff, 0xfe}, []byte("'\x00'\x00 \x00S\x00I\x00G\x00 \x00'\x00'\x00 \x00B\x00e\x00g\x00i\x00n\x00 \x00s\x00i\x00g\x00n\x00a\x00t\x00u\x00r\x00e\x00 \x00b\x00l\x00o\x00c\x00k\x00")...), true},
		"empty.wsf": {nil, false},
	} {
		res := formattest.InspectNamed(wsh.Handler{}, name, tc.data, cipolicy.AllNeeds(), nil)
		formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
		if res.Err != nil || res.Facts.Signed != tc.signed || res.Facts.Info.(*wsh.Info).SignatureBlock != tc.signed {
			t.Errorf("%s: %v, signed %v", name, res.Err, res.Facts.Signed)
		}
		if tc.signed && (len(res.Facts.Signatures) != 1 || res.Facts.Signatures[0].Verified() || !errors.Is(res.Facts.Signatures[0].Problem, wsh.ErrNotVerified)) {
			t.Errorf("%s: signatures %+v", name, res.Facts.Signatures)
		}
	}
}

// TestSignCopies: csv sign leaves a script as it is, saying so, and
// refuses one that changed since validation.
func TestSignCopies(t *testing.T) {
	sum := sha256.Sum256(signedJS)
	out := formattest.SignNamed(t, wsh.Handler{}, "a.js", signedJS, &format.SignOptions{Expect: cipolicy.Digests{cipolicy.SHA256: sum[:]}})
	if !bytes.Equal(out, signedJS) {
		t.Fatalf("changed")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	r := bytes.NewReader(signedJS)
	n, _ := r.Read(buf[:format.SniffSize])
	file := format.NewFile(r, int64(len(signedJS)), buf, n)
	file.Name = "a.js"
	if _, err := (wsh.Handler{}).Sign(context.Background(), file, f, &format.SignOptions{Expect: cipolicy.Digests{cipolicy.SHA256: make([]byte, 32)}}); !errors.Is(err, format.ErrChanged) {
		t.Errorf("changed file: %v", err)
	}
}

func FuzzInspect(f *testing.F) {
	f.Add(signedJS)
	f.Add(signedJS[:len(signedJS)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		res := formattest.InspectNamed(wsh.Handler{}, "f.js", data, cipolicy.AllNeeds(), nil)
		formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
	})
}
