package modsig_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

// Sign a module like sign-file, then find and verify the signature the way
// the validator does: read the trailer, hash the signed prefix in one pass,
// verify against the policy's certificates.
func Example() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "Build Module Signing"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)

	// Sign.
	ko := testbin.ELF(testbin.ELFOptions{})
	digest := sha256.Sum256(ko)
	trailer, err := modsig.Sign(digest[:], cert, key, modsig.SignOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	signed := append(ko, trailer...)

	// Find and verify.
	r := bytes.NewReader(signed)
	a, err := modsig.Find(r, r.Size())
	if err != nil || a == nil {
		fmt.Println("no signature:", err)
		return
	}
	h := a.DigestAlgorithm.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, a.SignedLen)); err != nil {
		fmt.Println(err)
		return
	}
	policyCert, _ := signing.ParseCertificate(cert.Raw)
	sig := a.Verify(h.Sum(nil), []*signing.Certificate{policyCert})
	fmt.Println("signed bytes:", a.SignedLen == int64(len(ko)), a.DigestAlgorithm == crypto.SHA256)
	fmt.Println("verified:", sig.Verified(), sig.SignatureAlgorithm, sig.Signer().CommonName())
	// Output:
	// signed bytes: true true
	// verified: true ECDSA Build Module Signing
}
