package pe_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/csv/format/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// signed returns img signed by a leaf of ca with the handler's Sign.
func signed(t testing.TB, ca *testca.CA, img []byte, appendSig bool) []byte {
	t.Helper()
	leaf := ca.Leaf(t, testca.LeafOptions{})
	return formattest.Sign(t, pe.Handler{}, img, &format.SignOptions{Key: leaf.Key,
		Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, Append: appendSig})
}

func roots(t testing.TB, ca *testca.CA) []*signing.Certificate {
	t.Helper()
	var out []*signing.Certificate
	for _, c := range []*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert} {
		sc, err := signing.ParseCertificate(c.Raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc)
	}
	return out
}

// TestSniff: a PE is recognised by its MZ header and the PE signature it
// points to; an "MZ" text file is not a PE, nor an ELF file.
func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"pe32+", testbin.PE(testbin.PEOptions{}), true},
		{"pe32", testbin.PE(testbin.PEOptions{PE32: true}), true},
		{"mz text", []byte("MZ is how this text starts"), false},
		{"elf", testbin.ELF(testbin.ELFOptions{}), false},
		{"empty", nil, false},
	} {
		if got := formattest.Sniff(pe.Handler{}, tc.data); got != tc.want {
			t.Errorf("%s: Sniff = %v", tc.name, got)
		}
	}
}

// TestSignAndInspect: what Sign makes, osslsigncode accepts (the oracle)
// and Inspect verifies with the digest osslsigncode computes, with and
// without a second, nested signature.
func TestSignAndInspect(t *testing.T) {
	ca := testca.New(t)
	img := testbin.PE(testbin.PEOptions{})
	once := signed(t, ca, img, false)
	twice := signed(t, ca, once, true)
	for name, data := range map[string][]byte{"signed": once, "nested": twice} {
		t.Run(name, func(t *testing.T) {
			res := formattest.Inspect(pe.Handler{}, data, cipolicy.AllNeeds(), roots(t, ca))
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
			info := res.Facts.Info.(*pe.Info)
			if !res.Facts.Signed || info.CertTableSize == 0 || len(res.Facts.Signatures) == 0 {
				t.Fatalf("facts %+v, info %+v", res.Facts, info)
			}
			for i, s := range res.Facts.Signatures {
				if !s.Verified() {
					t.Errorf("signature %d does not verify: %v", i, s.Problem)
				}
			}
			if name == "nested" && len(res.Facts.Signatures) != 2 {
				t.Errorf("%d signatures, want 2", len(res.Facts.Signatures))
			}
			ossl, err := exec.LookPath("osslsigncode")
			if err != nil {
				t.Skip("osslsigncode is not installed")
			}
			dir := t.TempDir()
			files := ca.WriteFiles(t, dir, ca.Leaf(t, testca.LeafOptions{}))
			p := filepath.Join(dir, "signed.exe")
			os.WriteFile(p, data, 0o644)
			if out, err := exec.Command(ossl, "verify", "-CAfile", files.Root, "-in", p).CombinedOutput(); err != nil {
				t.Errorf("osslsigncode verify: %v\n%s", err, out)
			}
		})
	}
	// The image hash survives signing: the unsigned and the signed file
	// have one Authenticode SHA256.
	a := formattest.Inspect(pe.Handler{}, img, cipolicy.AllNeeds(), nil)
	b := formattest.Inspect(pe.Handler{}, once, cipolicy.AllNeeds(), nil)
	if x, y := a.Digests.Get(cipolicy.AuthenticodeSHA256), b.Digests.Get(cipolicy.AuthenticodeSHA256); x == nil || !bytes.Equal(x, y) {
		t.Errorf("Authenticode SHA256 %x unsigned, %x signed", x, y)
	}
}

// TestSignRefusesChangedFile: with an expectation, a file whose image hash
// is not the one validated is not signed.
func TestSignRefusesChangedFile(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	img := testbin.PE(testbin.PEOptions{})
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r := bytes.NewReader(img)
	buf := make([]byte, 1<<16)
	n, _ := r.Read(buf[:format.SniffSize])
	_, err = pe.Handler{}.Sign(t.Context(), format.NewFile(r, int64(len(img)), buf, n), out, &format.SignOptions{Key: leaf.Key,
		Chain: []*x509.Certificate{leaf.Cert}, Expect: cipolicy.Digests{cipolicy.AuthenticodeSHA256: make([]byte, 32)}})
	if !errors.Is(err, format.ErrChanged) {
		t.Errorf("err = %v", err)
	}
}

// FuzzInspect: whatever the bytes, Inspect never panics, and what it finds
// keeps the handlers' promises (formattest.CheckInvariants).
func FuzzInspect(f *testing.F) {
	ca := testca.New(f)
	img := testbin.PE(testbin.PEOptions{})
	sig := signed(f, ca, img, false)
	f.Add(img)
	f.Add(testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("data")}))
	f.Add(sig)
	f.Add(signed(f, ca, sig, true))
	leaf := ca.Leaf(f, testca.LeafOptions{})
	f.Add(formattest.Sign(f, pe.Handler{}, testbin.PE(testbin.PEOptions{Data: make([]byte, 5000)}), &format.SignOptions{Key: leaf.Key,
		Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, PageHashes: true}))
	f.Add(sig[:len(sig)-9])
	f.Add(testbin.VersionPE([]testbin.VersionResource{{Lang: 0x409, FileVersion: &[4]uint16{1, 2, 3, 4},
		Tables: []testbin.VersionTable{{Key: "040904b0", Strings: [][2]string{{"OriginalFilename", "a.exe"}}}}}}))
	f.Add(img[:0x250])
	certs := roots(f, ca)
	f.Fuzz(func(t *testing.T, data []byte) {
		if !formattest.Sniff(pe.Handler{}, data) {
			return
		}
		pages := cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.PageSHA256)}
		for _, need := range []cipolicy.Needs{cipolicy.AllNeeds(), {}, pages} {
			formattest.CheckInvariants(t, formattest.Inspect(pe.Handler{}, data, need, certs), need)
			formattest.CheckStreamed(t, pe.Handler{}, data, need, certs)
		}
	})
}
