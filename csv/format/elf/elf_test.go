package elf_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/elf"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

func sign(t testing.TB, leaf *testca.Cert, img []byte) []byte {
	t.Helper()
	return formattest.Sign(t, elf.Handler{}, img, &format.SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert}})
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"elf64", testbin.ELF(testbin.ELFOptions{}), true},
		{"elf32", testbin.ELF(testbin.ELFOptions{Class32: true}), true},
		{"truncated", testbin.ELF(testbin.ELFOptions{})[:200], true}, // a malformed ELF, not skipped
		{"pe", testbin.PE(testbin.PEOptions{}), false},
		{"text", []byte("ELF"), false},
	} {
		if got := formattest.Sniff(elf.Handler{}, tc.data); got != tc.want {
			t.Errorf("%s: Sniff = %v", tc.name, got)
		}
	}
}

// TestSignAndInspect: Sign appends a module signature that openssl cms
// accepts over exactly the signed prefix (the oracle), and that Inspect
// finds and verifies with the signer's certificate; signing again replaces
// it, and Append is refused (an ELF file carries one signature).
func TestSignAndInspect(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	img := testbin.ELF(testbin.ELFOptions{})
	signed := sign(t, leaf, img)
	cert, err := signing.ParseCertificate(leaf.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	res := formattest.Inspect(elf.Handler{}, signed, cipolicy.AllNeeds(), []*signing.Certificate{cert})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
	info := res.Facts.Info.(*elf.Info)
	if !res.Facts.Signed || info.SignedLength != int64(len(img)) || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
		t.Fatalf("facts %+v, info %+v", res.Facts, info)
	}
	if again := sign(t, leaf, signed); len(again) != len(signed) {
		t.Errorf("signing a signed file again: %d bytes, want %d (the signature replaced)", len(again), len(signed))
	}
	r := formattest.Inspect(elf.Handler{}, signed, cipolicy.Needs{}, nil)
	if r.Err != nil || !r.Facts.Signed || r.Facts.Signatures != nil {
		t.Errorf("without signatures asked for: %+v", r)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	app, err := modsig.Find(formattestReader(signed), int64(len(signed)))
	if err != nil || app == nil {
		t.Fatalf("modsig.Find: %v", err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	out, err := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", write("sig.p7", app.PKCS7),
		"-content", write("prefix", signed[:app.SignedLen]), "-certfile", write("leaf.pem", testca.PEM(leaf.Cert)),
		"-CAfile", write("cas.pem", testca.PEM(ca.Intermediate.Cert, ca.Root.Cert)), "-purpose", "any",
		"-attime", fmt.Sprint(testca.Epoch.Unix()), "-out", os.DevNull).CombinedOutput()
	if err != nil {
		t.Errorf("openssl cms -verify: %v\n%s", err, out)
	}
}

// TestSignRefusesAppend: an ELF file carries one appended signature.
func TestSignRefusesAppend(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	signed := sign(t, leaf, testbin.ELF(testbin.ELFOptions{}))
	r := formattestReader(signed)
	buf := make([]byte, 1<<16)
	n, _ := r.Read(buf[:format.SniffSize])
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	defer out.Close()
	_, err := elf.Handler{}.Sign(t.Context(), format.NewFile(r, int64(len(signed)), buf, n), out,
		&format.SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert}, Append: true})
	if err == nil {
		t.Error("a second signature was appended")
	}
	// And with an expectation that does not hold, nothing is signed.
	r = formattestReader(signed)
	n, _ = r.Read(buf[:format.SniffSize])
	_, err = elf.Handler{}.Sign(t.Context(), format.NewFile(r, int64(len(signed)), buf, n), out,
		&format.SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert}, Expect: cipolicy.Digests{cipolicy.SHA256: make([]byte, 32)}})
	if !errors.Is(err, format.ErrChanged) {
		t.Errorf("err = %v", err)
	}
}

// FuzzInspect: whatever the bytes, Inspect never panics, and what it finds
// keeps the handlers' promises (formattest.CheckInvariants).
func FuzzInspect(f *testing.F) {
	ca := testca.New(f)
	leaf := ca.Leaf(f, testca.LeafOptions{})
	img := testbin.ELF(testbin.ELFOptions{})
	sig := sign(f, leaf, img)
	f.Add(img)
	f.Add(testbin.ELF(testbin.ELFOptions{Class32: true}))
	f.Add(sig)
	f.Add(sig[:len(sig)-1])
	f.Add(sig[:len(sig)-40])
	f.Add(img[:200])
	cert, _ := signing.ParseCertificate(leaf.Cert.Raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		if !formattest.Sniff(elf.Handler{}, data) {
			return
		}
		for _, need := range []cipolicy.Needs{cipolicy.AllNeeds(), {}} {
			formattest.CheckInvariants(t, formattest.Inspect(elf.Handler{}, data, need, []*signing.Certificate{cert}), need)
			formattest.CheckStreamed(t, elf.Handler{}, data, need, []*signing.Certificate{cert})
		}
	})
}

func formattestReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
