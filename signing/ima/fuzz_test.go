package ima

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// FuzzParse feeds arbitrary values to Parse, and what it parses to Verify.
// Seeds: signatures evmctl ima_sign made (RSA and ECDSA, SHA-256 and
// SHA-512; when evmctl is installed), csv's own v2 and v3 signatures, the
// digest and EVM types, and cut and corrupted copies. Invariants: no panic
// (Verify recovers, so a recovered panic is a failure here); an error is a
// MalformedError with a nil value; a parsed value other than an EVM one
// encodes back to exactly its input; Verify verifies only with a keyring
// certificate whose key id is the value's.
func FuzzParse(f *testing.F) {
	p := testPKI(f)
	data := []byte("#!/bin/sh\nexit 0\n")
	var seeds [][]byte
	if bin, err := exec.LookPath("evmctl"); err == nil {
		dir := f.TempDir()
		path := filepath.Join(dir, "file")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			f.Fatal(err)
		}
		for i, k := range []*testca.Cert{p.rsa, p.ec} {
			key := filepath.Join(dir, "key.pem")
			if err := os.WriteFile(key, testca.KeyPEM(f, k.Key), 0o600); err != nil {
				f.Fatal(err)
			}
			algo := []string{"sha256", "sha512"}[i]
			if out, err := exec.Command(bin, "ima_sign", "--sigfile", "-a", algo, "--key", key, path).CombinedOutput(); err != nil {
				f.Fatalf("evmctl: %v\n%s", err, out)
			}
			sig, err := os.ReadFile(path + ".sig")
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, sig)
		}
	}
	for _, k := range []*testca.Cert{p.rsa, p.ec} {
		v2, err := Sign(digestOf(crypto.SHA256, data), crypto.SHA256, k.Key, k.Cert)
		if err != nil {
			f.Fatal(err)
		}
		v3, err := SignVerity(digestOf(crypto.SHA256, data), crypto.SHA256, k.Key, k.Cert)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, v2, v3)
	}
	seeds = append(seeds,
		append([]byte{0x04, 4}, digestOf(crypto.SHA256, data)...),
		append([]byte{0x01}, digestOf(crypto.SHA1, data)...),
		[]byte{0x02, 1, 2}, []byte{0x05, 2, 4})
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:min(len(s), hdrLen)])
		c := append([]byte(nil), s...)
		c[len(c)-1] ^= 0xff
		f.Add(c)
		f.Add(append(append([]byte(nil), s...), 0))
	}
	keyring := []*signing.Certificate{p.rsaCert, p.ecCert, p.noSKIDCrt}
	digests := map[int][]byte{}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		digests[h.Size()] = digestOf(h, data)
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := Parse(in)
		if err != nil {
			var me *signing.MalformedError
			if v != nil || !errors.As(err, &me) || me.Offset < -1 || me.Offset > int64(len(in)) {
				t.Fatalf("Parse = %v, %v", v, err)
			}
			return
		}
		if v.Type != TypeEVMHMAC && v.Type != TypeEVMPortableDigsig && !bytes.Equal(v.Marshal(), in) {
			t.Fatalf("Marshal = %x, input %x", v.Marshal(), in)
		}
		h, herr := v.HashAlgo.Hash()
		var digest []byte
		if herr == nil {
			digest = digests[h.Size()]
		}
		s := v.Verify(digest, keyring, p.cas)
		if errors.Is(s.Problem, signing.ErrInternal) {
			t.Fatalf("Verify panicked: %v", s.Problem)
		}
		if s.Verified() == (s.Problem != nil) {
			t.Fatalf("Verified = %v with Problem %v", s.Verified(), s.Problem)
		}
		if s.Verified() {
			if id, ok := KeyID(s.Signer()); !ok || id != v.KeyID || !v.IsSignature() {
				t.Fatalf("verified %s with %q", v.Describe(), s.Signer().CommonName())
			}
		}
	})
}
