package msi_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/csv/format/msi"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
)

type pki struct {
	ca    *testca.CA
	leaf  *testca.Cert
	files testca.Files
	certs []*signing.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	p := &pki{ca: ca, leaf: leaf, files: ca.WriteFiles(t, t.TempDir(), leaf)}
	root, err := signing.ParseCertificate(ca.Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	p.certs = []*signing.Certificate{root}
	return p
}

var dll = bytes.Repeat([]byte("custom action DLL "), 300)

func build(t testing.TB) []byte {
	t.Helper()
	return testmsi.Build(t,
		testmsi.File{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte{7}, 9000)})},
		testmsi.File{Name: "CustomDll", Data: dll, Binary: true},
	)
}

func TestSniff(t *testing.T) {
	data := build(t)
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"x.bin", data, true},
		{"x.msi", data, true},
		{"x.msi", []byte("not a compound file"), false},
		// A compound file whose root is no installer's, named as one, is
		// claimed (and refused by Inspect); named otherwise, it is not.
		{"x.doc", otherRoot(data), false},
		{"x.MSI", otherRoot(data), true},
		{"x.bin", data[:100], false},
	} {
		if got := formattest.SniffNamed(msi.Handler{}, tc.name, tc.data); got != tc.want {
			t.Errorf("%s (%d bytes): sniff %v", tc.name, len(tc.data), got)
		}
	}
	res := formattest.InspectNamed(msi.Handler{}, "x.MSI", otherRoot(data), cipolicy.AllNeeds(), nil)
	var me *format.MalformedError
	if !errors.As(res.Err, &me) || me.Format != cipolicy.FormatMSI {
		t.Errorf("another root CLSID: %v", res.Err)
	}
}

// otherRoot changes the root storage's CLSID.
func otherRoot(data []byte) []byte {
	b := bytes.Clone(data)
	clsid, _ := msi.RootCLSID(bytes.NewReader(b), int64(len(b)))
	i := bytes.Index(b, clsid[:])
	b[i] ^= 0xff
	return b
}

// TestInspectPeerSigned: a package osslsigncode signed (with and without
// the extended signature) is inspected with its digest, the one
// osslsigncode calculates, and a verified signature; a changed byte in a
// stream leaves it unverified, a digest mismatch.
func TestInspectPeerSigned(t *testing.T) {
	p := newPKI(t)
	unsigned := build(t)
	for _, dse := range []bool{false, true} {
		var args []string
		if dse {
			args = []string{"-add-msi-dse"}
		}
		signed := testmsi.Sign(t, p.files, unsigned, args...)
		res := formattest.Inspect(msi.Handler{}, signed, cipolicy.AllNeeds(), p.certs)
		formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		info := res.Facts.Info.(*msi.Info)
		if !res.Facts.Signed || info.Extended != dse || info.Kind != "installation package" {
			t.Errorf("facts %+v", info)
		}
		if len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
			t.Fatalf("signatures %+v", res.Facts.Signatures)
		}
		ok, digests, out := testmsi.Verify(t, p.files, signed)
		got := hex.EncodeToString(res.Digests.Get(cipolicy.AuthenticodeSHA256))
		if !ok || len(digests) != 1 || digests[0] != got {
			t.Fatalf("osslsigncode (ok %v) %v, csv %s\n%s", ok, digests, got, out)
		}
		if len(res.Digests.Get(cipolicy.AuthenticodeSHA1)) != 20 {
			t.Errorf("digests %v", res.Digests)
		}
		bad := bytes.Clone(signed)
		bad[bytes.Index(bad, dll)+7] ^= 1
		res = formattest.Inspect(msi.Handler{}, bad, cipolicy.AllNeeds(), p.certs)
		if res.Err != nil || len(res.Facts.Signatures) != 1 || res.Facts.Signatures[0].Verified() ||
			!errors.Is(res.Facts.Signatures[0].Problem, signing.ErrDigestMismatch) {
			t.Errorf("changed: %v %+v", res.Err, res.Facts.Signatures)
		}
	}
}

// TestMalformedWithOffset: a broken package is a *format.MalformedError
// naming the offset, whatever the needs.
func TestMalformedWithOffset(t *testing.T) {
	data := build(t)
	for _, need := range []cipolicy.Needs{{}, cipolicy.AllNeeds()} {
		res := formattest.Inspect(msi.Handler{}, data[:len(data)-700], need, nil)
		var me *format.MalformedError
		if !errors.As(res.Err, &me) || me.Format != cipolicy.FormatMSI || !errors.Is(res.Err, signing.ErrMalformed) {
			t.Fatalf("truncated: %v", res.Err)
		}
		t.Log(res.Err)
	}
}

// TestSign: csv signs a package through the handler; osslsigncode
// verifies it, and inspection finds the signature verified; a package
// signed with the extended signature is re-signed with it; Expect refuses
// a package whose digests are not those validated.
func TestSign(t *testing.T) {
	p := newPKI(t)
	unsigned := build(t)
	chain := []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}
	for _, in := range [][]byte{unsigned, testmsi.Sign(t, p.files, unsigned, "-add-msi-dse")} {
		before := formattest.Inspect(msi.Handler{}, in, cipolicy.AllNeeds(), p.certs)
		if before.Err != nil {
			t.Fatal(before.Err)
		}
		var expect cipolicy.Digests
		expect.Set(cipolicy.AuthenticodeSHA256, before.Digests.Get(cipolicy.AuthenticodeSHA256))
		sum := sha256.Sum256(in)
		expect.Set(cipolicy.SHA256, sum[:])
		signed := formattest.Sign(t, msi.Handler{}, in, &format.SignOptions{Key: p.leaf.Key, Chain: chain, Expect: expect})
		res := formattest.Inspect(msi.Handler{}, signed, cipolicy.AllNeeds(), p.certs)
		if res.Err != nil || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
			t.Fatalf("%v %+v", res.Err, res.Facts.Signatures)
		}
		if got, want := res.Facts.Info.(*msi.Info).Extended, before.Facts.Info.(*msi.Info).Extended; got != want {
			t.Errorf("extended %v, before %v", got, want)
		}
		if ok, _, out := testmsi.Verify(t, p.files, signed); !ok {
			t.Errorf("osslsigncode refuses it\n%s", out)
		}
		// Changed since validation: refused.
		changed := bytes.Clone(in)
		changed[bytes.Index(changed, dll)] ^= 1
		f := formattestFile(changed)
		_, err := msi.Handler{}.Sign(t.Context(), f, tempOut(t), &format.SignOptions{Key: p.leaf.Key, Chain: chain, Expect: expect})
		if !errors.Is(err, format.ErrChanged) {
			t.Errorf("changed: %v", err)
		}
	}
}

func formattestFile(data []byte) *format.File {
	r := bytes.NewReader(data)
	buf := make([]byte, 64<<10)
	n, _ := r.Read(buf[:min(len(data), format.SniffSize)])
	return format.NewFile(r, int64(len(data)), buf, n)
}

func tempOut(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func FuzzInspect(f *testing.F) {
	p := newPKI(f)
	unsigned := build(f)
	for _, b := range [][]byte{unsigned, testmsi.Sign(f, p.files, unsigned), testmsi.Sign(f, p.files, unsigned, "-add-msi-dse")} {
		f.Add(b)
		f.Add(b[:len(b)/2])
		c := bytes.Clone(b)
		c[0x30] ^= 1
		f.Add(c)
	}
	need := cipolicy.AllNeeds()
	f.Fuzz(func(t *testing.T, b []byte) {
		if !formattest.Sniff(msi.Handler{}, b) {
			return
		}
		res := formattest.Inspect(msi.Handler{}, b, need, p.certs)
		formattest.CheckInvariants(t, res, need)
	})
}
