package ima

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

type pki struct {
	ca        *testca.CA
	rsa, ec   *testca.Cert
	noSKID    *testca.Cert
	rsaCert   *signing.Certificate
	ecCert    *signing.Certificate
	noSKIDCrt *signing.Certificate
	cas       []*signing.Certificate
}

func testPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	p := &pki{ca: ca,
		rsa:    ca.Leaf(t, testca.LeafOptions{CommonName: "IMA RSA", SubjectKeyID: true}),
		ec:     ca.Leaf(t, testca.LeafOptions{CommonName: "IMA ECDSA", KeyType: testca.ECDSAP256, SubjectKeyID: true}),
		noSKID: ca.Leaf(t, testca.LeafOptions{CommonName: "IMA no SKID"}),
	}
	p.rsaCert = cert(t, p.rsa.Cert.Raw)
	p.ecCert = cert(t, p.ec.Cert.Raw)
	p.noSKIDCrt = cert(t, p.noSKID.Cert.Raw)
	p.cas = []*signing.Certificate{cert(t, ca.Intermediate.Cert.Raw), cert(t, ca.Root.Cert.Raw)}
	return p
}

func cert(t testing.TB, der []byte) *signing.Certificate {
	t.Helper()
	c, err := signing.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sha(data []byte) []byte { s := sha256.Sum256(data); return s[:] }

// TestSignVerify: what Sign makes verifies against the file's digest with
// the signer in the keyring, chains to the root, and names the key the
// kernel would look up; another file, another key or a changed signature
// byte do not verify.
func TestSignVerify(t *testing.T) {
	p := testPKI(t)
	file := []byte("#!/bin/sh\necho hello\n")
	for _, tc := range []struct {
		name string
		leaf *testca.Cert
		c    *signing.Certificate
		h    crypto.Hash
		kind string
	}{
		{"rsa-sha256", p.rsa, p.rsaCert, crypto.SHA256, "RSA"},
		{"rsa-sha512", p.rsa, p.rsaCert, crypto.SHA512, "RSA"},
		{"ecdsa-sha256", p.ec, p.ecCert, crypto.SHA256, "ECDSA"},
		{"ecdsa-sha384", p.ec, p.ecCert, crypto.SHA384, "ECDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.h.New()
			d.Write(file)
			digest := d.Sum(nil)
			raw, err := Sign(digest, tc.h, tc.leaf.Key, tc.leaf.Cert)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := KeyID(tc.c)
			if v.Type != TypeDigsig || v.Version != 2 || v.KeyID != id {
				t.Fatalf("value %s, want a v2 signature with key id %08x", v.Describe(), id)
			}
			keyring := []*signing.Certificate{p.rsaCert, p.ecCert}
			s := v.Verify(digest, keyring, p.cas)
			if !s.Verified() || s.Format != SignatureFormat || s.SignatureAlgorithm != tc.kind || s.DigestAlgorithm != tc.h {
				t.Fatalf("Verify: verified %v (%v), %s %v", s.Verified(), s.Problem, s.SignatureAlgorithm, s.DigestAlgorithm)
			}
			if len(s.Chains) != 1 || len(s.Chains[0]) != 3 || s.Signer().SHA256 != tc.c.SHA256 {
				t.Fatalf("chains %v, want leaf, issuing CA, root", s.Chains)
			}
			other := append([]byte(nil), digest...)
			other[0] ^= 1
			if s := v.Verify(other, keyring, nil); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
				t.Fatalf("another digest: verified %v, %v", s.Verified(), s.Problem)
			}
			bad := append([]byte(nil), raw...)
			bad[len(bad)-1] ^= 1
			bv, err := Parse(bad)
			if err != nil {
				t.Fatal(err)
			}
			if s := bv.Verify(digest, keyring, nil); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
				t.Fatalf("changed signature: verified %v, %v", s.Verified(), s.Problem)
			}
			if s := v.Verify(digest, []*signing.Certificate{p.noSKIDCrt}, p.cas); s.Verified() || !errors.Is(s.Problem, signing.ErrSignerNotFound) {
				t.Fatalf("keyring without the key: verified %v, %v", s.Verified(), s.Problem)
			}
		})
	}
}

// TestKeyIDCollision: a keyring certificate that carries the signer's key
// id but another key does not verify the signature, and does not keep the
// right certificate, listed after it, from verifying it.
func TestKeyIDCollision(t *testing.T) {
	p := testPKI(t)
	digest := sha([]byte("x"))
	raw, err := Sign(digest, crypto.SHA256, p.rsa.Key, p.rsa.Cert)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := Parse(raw)
	impostor := p.ca.Leaf(t, testca.LeafOptions{CommonName: "impostor"})
	impostor.Cert.SubjectKeyId = p.rsa.Cert.SubjectKeyId // what KeyID reads
	ic := cert(t, impostor.Cert.Raw)
	ic.SubjectKeyID = p.rsaCert.SubjectKeyID
	if s := v.Verify(digest, []*signing.Certificate{ic}, nil); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
		t.Fatalf("impostor alone: verified %v, %v", s.Verified(), s.Problem)
	}
	s := v.Verify(digest, []*signing.Certificate{ic, p.rsaCert}, nil)
	if !s.Verified() || s.Signer().SHA256 != p.rsaCert.SHA256 {
		t.Fatalf("impostor then signer: verified %v, %v", s.Verified(), s.Problem)
	}
}

// TestVerity: a version 3 signature signs the hash of ima_file_id over the
// fs-verity digest, not the digest itself.
func TestVerity(t *testing.T) {
	p := testPKI(t)
	verity := sha([]byte("an fs-verity digest stands here"))
	raw, err := SignVerity(verity, crypto.SHA256, p.ec.Key, p.ec.Cert)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Parse(raw)
	if err != nil || v.Type != TypeVerityDigsig || v.Version != 3 {
		t.Fatalf("Parse: %v, %+v", err, v)
	}
	keyring := []*signing.Certificate{p.ecCert}
	if s := v.Verify(verity, keyring, nil); !s.Verified() {
		t.Fatalf("Verify: %v", s.Problem)
	}
	// The structure, built here from the kernel's definition.
	id := sha(append([]byte{0x06, 4}, verity...))
	if s := v.Verify(id, keyring, nil); s.Verified() {
		t.Fatal("a v3 signature verified over the ima_file_id digest given as the fs-verity digest")
	}
	// The same signature presented as version 2 (type 0x03) signs
	// another digest.
	v2 := *v
	v2.Type, v2.Version = TypeDigsig, 2
	if s := v2.Verify(verity, keyring, nil); s.Verified() {
		t.Fatal("a v3 signature verified as v2")
	}
	got, err := FileIDDigest(crypto.SHA256, verity)
	if err != nil || !bytes.Equal(got, id) {
		t.Fatalf("FileIDDigest = %x, %v; want %x", got, err, id)
	}
}

func sigValue(typ Type, version, algo byte, keyid uint32, sig []byte) []byte {
	b := []byte{byte(typ), version, algo, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[3:], keyid)
	binary.BigEndian.PutUint16(b[7:], uint16(len(sig)))
	return append(b, sig...)
}

// TestParseHostile: every value the kernel would not read as what it
// claims is refused with a MalformedError at the offending field.
func TestParseHostile(t *testing.T) {
	sig := bytes.Repeat([]byte{0xaa}, 256)
	long := sigValue(TypeDigsig, 2, 4, 1, bytes.Repeat([]byte{1}, limits.MaxIMAValue))
	for _, tc := range []struct {
		name    string
		in      []byte
		off     int64
		wantErr error
	}{
		{"empty", nil, -1, nil},
		{"unknown type", []byte{0x07, 2, 4}, 0, nil},
		{"type zero", []byte{0x00}, 0, nil},
		{"no version", []byte{0x03}, 1, nil},
		{"header cut", sigValue(TypeDigsig, 2, 4, 1, sig)[:8], 8, nil},
		{"no signature", sigValue(TypeDigsig, 2, 4, 1, nil), 9, nil},
		{"sig_size too large", append(sigValue(TypeDigsig, 2, 4, 1, sig)[:9], sig[:255]...), 7, nil},
		{"sig_size too small", append(sigValue(TypeDigsig, 2, 4, 1, sig), 0), 7, nil},
		{"v3 as type 3", sigValue(TypeDigsig, 3, 4, 1, sig), 1, nil},
		{"v2 as verity", sigValue(TypeVerityDigsig, 2, 4, 1, sig), 1, nil},
		{"version 1", sigValue(TypeDigsig, 1, 4, 1, sig), 1, signing.ErrUnsupportedAlgorithm},
		{"hash algo past the last", sigValue(TypeDigsig, 2, 20, 1, sig), 2, nil},
		{"over the cap", long, -1, signing.ErrLimit},
		{"digest NG short", append([]byte{0x04, 4}, make([]byte, 31)...), 2, nil},
		{"digest NG long", append([]byte{0x04, 4}, make([]byte, 33)...), 2, nil},
		{"digest NG empty", []byte{0x04, 17}, 2, nil},
		{"digest NG no algo", []byte{0x04}, 1, nil},
		{"digest wrong size", append([]byte{0x01}, make([]byte, 32)...), 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Parse(tc.in)
			var me *signing.MalformedError
			if v != nil || !errors.As(err, &me) || me.Offset != tc.off {
				t.Fatalf("Parse = %v, %v; want a MalformedError at %d", v, err, tc.off)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v is not %v", err, tc.wantErr)
			}
		})
	}
}

// TestNotSignatures: digests and EVM values parse, say what they are, and
// never verify; a digest compares with the file's.
func TestNotSignatures(t *testing.T) {
	p := testPKI(t)
	keyring := []*signing.Certificate{p.rsaCert}
	file := sha([]byte("file"))
	for _, in := range [][]byte{
		append([]byte{0x04, 4}, file...),
		append([]byte{0x01}, make([]byte, 20)...),
		{0x02, 1, 2, 3},
		{0x05, 2, 4, 0, 0},
	} {
		v, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%x): %v", in, err)
		}
		if v.IsSignature() {
			t.Fatalf("%s is a signature", v.Describe())
		}
		if s := v.Verify(file, keyring, nil); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
			t.Fatalf("%s: verified %v, %v", v.Describe(), s.Verified(), s.Problem)
		}
	}
	v, _ := Parse(append([]byte{0x04, 4}, file...))
	if err := v.CheckDigest(file); err != nil {
		t.Fatal(err)
	}
	if err := v.CheckDigest(sha([]byte("other"))); !errors.Is(err, signing.ErrDigestMismatch) {
		t.Fatalf("another file: %v", err)
	}
}

// TestWeakAndUnknownAlgorithms: MD5 and algorithms csv does not compute
// never verify; SHA-1 verifies and says so (policy judges it).
func TestWeakAndUnknownAlgorithms(t *testing.T) {
	p := testPKI(t)
	id, _ := KeyID(p.rsaCert)
	keyring := []*signing.Certificate{p.rsaCert}
	for _, a := range []HashAlgo{HashMD5, 0, 3, 17, 18} {
		v, err := Parse(sigValue(TypeDigsig, 2, byte(a), id, bytes.Repeat([]byte{1}, 256)))
		if err != nil {
			t.Fatal(err)
		}
		if s := v.Verify(make([]byte, 16), keyring, nil); s.Verified() || !errors.Is(s.Problem, signing.ErrUnsupportedAlgorithm) {
			t.Fatalf("%v: verified %v, %v", a, s.Verified(), s.Problem)
		}
	}
	if _, err := Sign(make([]byte, 20), crypto.SHA1, p.rsa.Key, p.rsa.Cert); !errors.Is(err, signing.ErrUnsupportedAlgorithm) {
		t.Fatalf("Sign SHA-1: %v", err)
	}
	// A SHA-1 signature as older evmctl made it.
	d := crypto.SHA1.New()
	d.Write([]byte("old"))
	digest := d.Sum(nil)
	sig, err := p.rsa.Key.Sign(nil, digest, crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := Parse(sigValue(TypeDigsig, 2, byte(HashSHA1), id, sig))
	if s := v.Verify(digest, keyring, nil); !s.Verified() || s.DigestAlgorithm != crypto.SHA1 {
		t.Fatalf("SHA-1: verified %v (%v), %v", s.Verified(), s.Problem, s.DigestAlgorithm)
	}
}

// TestSignRefuses: Sign needs the certificate's own key and a subject key
// identifier to name it by.
func TestSignRefuses(t *testing.T) {
	p := testPKI(t)
	d := sha([]byte("f"))
	if _, err := Sign(d, crypto.SHA256, p.rsa.Key, p.noSKID.Cert); !errors.Is(err, signing.ErrSigner) {
		t.Fatalf("no SKID: %v", err)
	}
	if _, err := Sign(d, crypto.SHA256, p.ec.Key, p.rsa.Cert); !errors.Is(err, signing.ErrSigner) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := Sign(d[:20], crypto.SHA256, p.rsa.Key, p.rsa.Cert); !errors.Is(err, signing.ErrDigestNotComputed) {
		t.Fatalf("short digest: %v", err)
	}
}
