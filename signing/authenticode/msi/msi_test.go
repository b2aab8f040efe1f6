package msi_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// pki is a test CA with the PEM files osslsigncode reads.
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
	for _, c := range []*x509.Certificate{ca.Root.Cert} {
		sc, err := signing.ParseCertificate(c.Raw)
		if err != nil {
			t.Fatal(err)
		}
		p.certs = append(p.certs, sc)
	}
	return p
}

// dll is the Binary table entry's content (stored as it is: tests find
// it in the file to change a byte of it).
var dll = bytes.Repeat([]byte("custom action DLL "), 300)

func build(t testing.TB) []byte {
	t.Helper()
	return testmsi.Build(t,
		testmsi.File{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte{7}, 9000)})},
		testmsi.File{Name: "small.dll", Data: testbin.PE(testbin.PEOptions{PE32: true})},
		testmsi.File{Name: "CustomDll", Data: dll, Binary: true},
	)
}

// inspect parses data, computes its digests and verifies its signatures.
func inspect(t testing.TB, data []byte, certs []*signing.Certificate) (*msi.Package, map[crypto.Hash][]byte, []*signing.Signature, error) {
	t.Helper()
	p, err := msi.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, nil, err
	}
	hs := append(authenticode.DigestAlgorithms(p), crypto.SHA256, crypto.SHA1, crypto.SHA384)
	sums, err := p.Digest(hs...)
	if err != nil {
		return p, nil, nil, err
	}
	if !p.Signed() {
		return p, sums, nil, nil
	}
	sigs, err := msi.Verify(p, sums, authenticode.VerifyOptions{Certificates: certs})
	return p, sums, sigs, err
}

// flip changes the byte at i.
func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 1
	return out
}

// TestPeerSignsCSVVerifies: osslsigncode signs a package wixl built, with
// and without the extended signature and with SHA-1; csv finds the
// signature valid over the digest osslsigncode calculates; a changed byte
// in a stream breaks it for both.
func TestPeerSignsCSVVerifies(t *testing.T) {
	p := newPKI(t)
	unsigned := build(t)
	for _, tc := range []struct {
		name string
		args []string
		h    crypto.Hash
	}{
		{"sha256", nil, crypto.SHA256},
		{"dse", []string{"-add-msi-dse"}, crypto.SHA256},
		{"sha1-dse", []string{"-add-msi-dse", "-h", "sha1"}, crypto.SHA1},
		{"sha384", []string{"-h", "sha384"}, crypto.SHA384},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signed := testmsi.Sign(t, p.files, unsigned, tc.args...)
			pkg, sums, sigs, err := inspect(t, signed, p.certs)
			if err != nil {
				t.Fatal(err)
			}
			if !pkg.Signed() || (pkg.Ex != nil) != (len(tc.args) > 0 && tc.args[0] == "-add-msi-dse") {
				t.Fatalf("signed %v, ex %x", pkg.Signed(), pkg.Ex)
			}
			if len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("signatures %+v", sigs)
			}
			if why := sigs[0].IgnoredBy[signing.HostWindows]; why != "" {
				t.Errorf("Windows would not count it: %s", why)
			}
			ok, digests, out := testmsi.Verify(t, p.files, signed)
			if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(sums[tc.h]) {
				t.Fatalf("osslsigncode (ok %v) calculated %v, csv %x\n%s", ok, digests, sums[tc.h], out)
			}
			// Without the extended signature, the unsigned package's digest
			// is the signed one's: a hash rule written before signing still
			// matches.
			if pkg.Ex == nil {
				if _, u, _, err := inspect(t, unsigned, nil); err != nil || !bytes.Equal(u[tc.h], sums[tc.h]) {
					t.Errorf("unsigned digest %x (%v), signed %x", u[tc.h], err, sums[tc.h])
				}
			}
			i := bytes.Index(signed, dll)
			if i < 0 {
				t.Fatal("the Binary stream is not stored contiguously")
			}
			bad := flip(signed, i+100)
			_, _, sigs, err = inspect(t, bad, p.certs)
			if err != nil || len(sigs) != 1 || sigs[0].Verified() || !errors.Is(sigs[0].Problem, signing.ErrDigestMismatch) {
				t.Errorf("changed stream: %v, %+v", err, sigs)
			}
			if ok, _, _ := testmsi.Verify(t, p.files, bad); ok {
				t.Errorf("osslsigncode accepts the changed package")
			}
		})
	}
}

// TestMetadataChangeBreaksDSE: a changed modification time of a stream
// leaves the content digest as it is but not the pre-hash: with
// \x05MsiDigitalSignatureEx csv refuses it as osslsigncode does, without
// it both accept it (the basic signature does not cover metadata).
func TestMetadataChangeBreaksDSE(t *testing.T) {
	p := newPKI(t)
	unsigned := build(t)
	for _, dse := range []bool{false, true} {
		var args []string
		if dse {
			args = []string{"-add-msi-dse"}
		}
		signed := testmsi.Sign(t, p.files, unsigned, args...)
		pkg, err := msi.Parse(bytes.NewReader(signed), int64(len(signed)))
		if err != nil {
			t.Fatal(err)
		}
		// A stream's entry: change its modification time.
		var off int64 = -1
		for _, e := range pkg.CFB.Entries[1:] {
			if e.Name != msi.SignatureStream && e.Name != msi.SignatureExStream && e.Size > 0 {
				off = e.Offset + 0x6c
				break
			}
		}
		bad := flip(signed, int(off))
		_, _, sigs, err := inspect(t, bad, p.certs)
		ok, _, out := testmsi.Verify(t, p.files, bad)
		if dse {
			if !errors.Is(err, msi.ErrPreHash) || !errors.Is(err, signing.ErrMalformed) {
				t.Errorf("dse: csv: %v %+v", err, sigs)
			}
			if ok {
				t.Errorf("dse: osslsigncode accepts it\n%s", out)
			}
		} else if err != nil || len(sigs) != 1 || !sigs[0].Verified() || !ok {
			t.Errorf("no dse: csv %v %+v, osslsigncode %v\n%s", err, sigs, ok, out)
		}
	}
}

// TestAppendedData: bytes appended to a signed package are in no stream
// and covered by no signature: csv refuses the package as malformed
// (osslsigncode, which hashes the streams only, is not asked).
func TestAppendedData(t *testing.T) {
	p := newPKI(t)
	signed := testmsi.Sign(t, p.files, build(t))
	bad := append(bytes.Clone(signed), bytes.Repeat([]byte("PK"), 512)...)
	_, _, _, err := inspect(t, bad, p.certs)
	var me *signing.MalformedError
	if !errors.As(err, &me) || me.Offset != int64(len(signed)) {
		t.Fatalf("got %v, want malformed at %#x", err, len(signed))
	}
}

// TestCSVSignsPeerVerifies: what csv signs, with and without the
// extended signature, osslsigncode verifies over the digest csv
// computes; a changed byte in a stream of csv's output is refused by both;
// a signature appended to csv's own verifies nested.
func TestCSVSignsPeerVerifies(t *testing.T) {
	p := newPKI(t)
	unsigned := build(t)
	for _, ext := range []bool{false, true} {
		signer, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		res, err := msi.Sign(t.Context(), bytes.NewReader(unsigned), int64(len(unsigned)), &out, signer, msi.SignOptions{Extended: ext})
		if err != nil {
			t.Fatal(err)
		}
		signed := out.Bytes()
		if res.Size != int64(len(signed)) {
			t.Errorf("size %d, wrote %d", res.Size, len(signed))
		}
		pkg, sums, sigs, err := inspect(t, signed, p.certs)
		if err != nil || len(sigs) != 1 || !sigs[0].Verified() || (pkg.Ex != nil) != ext {
			t.Fatalf("ext %v: csv: %v %+v", ext, err, sigs)
		}
		if !bytes.Equal(sums[crypto.SHA256], res.Digest) {
			t.Errorf("signed digest %x, inspected %x", res.Digest, sums[crypto.SHA256])
		}
		ok, digests, outp := testmsi.Verify(t, p.files, signed)
		if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(res.Digest) {
			t.Fatalf("ext %v: osslsigncode (ok %v) %v, csv %x\n%s", ext, ok, digests, res.Digest, outp)
		}
		bad := flip(signed, bytes.Index(signed, dll)+3)
		if _, _, sigs, err := inspect(t, bad, p.certs); err != nil || sigs[0].Verified() {
			t.Errorf("changed: csv accepts it (%v)", err)
		}
		if ok, _, _ := testmsi.Verify(t, p.files, bad); ok {
			t.Errorf("changed: osslsigncode accepts it")
		}
		// Appended: nested in csv's signature, both verify.
		nester, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{Append: true})
		if err != nil {
			t.Fatal(err)
		}
		var twice bytes.Buffer
		if _, err := msi.Sign(t.Context(), bytes.NewReader(signed), int64(len(signed)), &twice, nester, msi.SignOptions{Extended: ext}); err != nil {
			t.Fatal(err)
		}
		_, _, sigs, err = inspect(t, twice.Bytes(), p.certs)
		if err != nil || len(sigs) != 2 || !sigs[0].Verified() || !sigs[1].Verified() {
			t.Fatalf("nested: %v %+v", err, sigs)
		}
		if ok, _, outp := testmsi.Verify(t, p.files, twice.Bytes()); !ok {
			t.Errorf("nested: osslsigncode refuses it\n%s", outp)
		}
		if !ext {
			// An extended signature nested in one without it would add
			// the pre-hash to the digest the outer signature covers:
			// refused.
			var bad1 bytes.Buffer
			if _, err := msi.Sign(t.Context(), bytes.NewReader(signed), int64(len(signed)), &bad1, nester, msi.SignOptions{Extended: true}); !errors.Is(err, msi.ErrExtendedAppend) {
				t.Errorf("extended nested in a plain signature: %v", err)
			}
			continue
		}
		// A nested signature without the extended one would break the
		// signature it nests in: refused.
		var bad2 bytes.Buffer
		if _, err := msi.Sign(t.Context(), bytes.NewReader(signed), int64(len(signed)), &bad2, nester, msi.SignOptions{}); !errors.Is(err, msi.ErrExtendedAppend) {
			t.Errorf("nested without extended: %v", err)
		}
	}
}
