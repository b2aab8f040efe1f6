package modsig

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
)

// FuzzFind feeds arbitrary files to Find, and what it finds to Verify.
// Seeds: modules signed every way Sign can, and the shapes Find must refuse
// (data in an unsigned attribute, the certificate set, the CRLs).
// Invariants: no panic (Find and Verify recover, so a recovered panic is
// reported as a failure here), an error comes with a nil result, a result
// has 0 < SignedLen <= size and a non-empty PKCS7 that ends where the
// trailer starts, and Verify of a found signature never panics.
func FuzzFind(f *testing.F) {
	p := testPKI(f)
	elf32 := testbin.ELF(testbin.ELFOptions{Class32: true})
	f.Add(module)
	f.Add(elf32)
	f.Add([]byte(Magic))
	seeds := []struct {
		file []byte
		opts SignOptions
		ec   bool
	}{
		{module, SignOptions{}, false},
		{module, SignOptions{Hash: crypto.SHA512, UseKeyID: true}, false},
		{elf32, SignOptions{SignedAttributes: true}, false},
		{module, SignOptions{Hash: crypto.SHA384}, true},
		{elf32, SignOptions{UseKeyID: true, SignedAttributes: true}, true},
	}
	for _, s := range seeds {
		leaf := p.rsa
		switch {
		case s.ec && s.opts.UseKeyID:
			leaf = p.ecKeyID
		case s.ec:
			leaf = p.ec
		case s.opts.UseKeyID:
			leaf = p.rsaKeyID
		}
		f.Add(signModule(f, s.file, leaf, s.opts))
	}
	// Data no signature covers, where Find must refuse it: an unsigned
	// attribute, junk in the certificate set and in the CRLs.
	signed := signModule(f, module, p.rsa, SignOptions{})
	junk := element(cbasn1.SEQUENCE, element(cbasn1.OCTET_STRING, bytes.Repeat([]byte("junk"), 64)))
	f.Add(rewriteSignerInfos(f, signed, func(sis []byte) []byte {
		s := cryptobyte.String(sis)
		var si cryptobyte.String
		s.ReadASN1(&si, cbasn1.SEQUENCE)
		return element(cbasn1.SEQUENCE, si, element(tagImplicit1, element(cbasn1.SEQUENCE, []byte{6, 1, 0x2a}, element(cbasn1.SET, junk))))
	}))
	for _, field := range [][]byte{element(tagExplicit0, junk), element(tagImplicit1, junk)} {
		f.Add(rewriteSignedData(f, signed, func(fs [][]byte) [][]byte {
			return append(fs[:len(fs)-1:len(fs)-1], field, fs[len(fs)-1])
		}))
	}
	candidates := certs(f, p.rsa.Cert, p.ec.Cert, p.rsaKeyID.Cert, p.ecKeyID.Cert, p.ca.Intermediate.Cert, p.ca.Root.Cert)

	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		a, err := Find(bytes.NewReader(data), size)
		if errors.Is(err, signing.ErrInternal) {
			t.Fatalf("Find panicked: %v", err)
		}
		if err != nil {
			if a != nil {
				t.Fatalf("Find returned a result with error %v", err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset >= size {
				t.Fatalf("Find error %v is not a FormatError with an offset in the file", err)
			}
			return
		}
		if a == nil {
			return
		}
		if a.SignedLen <= 0 || a.SignedLen > size || len(a.PKCS7) == 0 ||
			a.SignedLen+int64(len(a.PKCS7))+int64(trailerLen) != size ||
			!bytes.Equal(a.PKCS7, data[a.SignedLen:size-int64(trailerLen)]) {
			t.Fatalf("inconsistent result: SignedLen %d, %d-byte PKCS7, size %d", a.SignedLen, len(a.PKCS7), size)
		}
		if !a.DigestAlgorithm.Available() {
			t.Fatalf("DigestAlgorithm %v is not available", a.DigestAlgorithm)
		}
		h := a.DigestAlgorithm.New()
		h.Write(data[:a.SignedLen])
		s := a.Verify(h.Sum(nil), candidates)
		if errors.Is(s.Problem, signing.ErrInternal) {
			t.Fatalf("Verify panicked: %v", s.Problem)
		}
		if s.Verified() != (s.Problem == nil) {
			t.Fatalf("Verified = %v with Problem %v", s.Verified(), s.Problem)
		}
		if s.Verified() && !isCandidate(s.Signer(), append(candidates, s.Certificates...)) {
			t.Fatal("verified with a signer that is neither a candidate nor embedded")
		}
	})
}

func isCandidate(c *signing.Certificate, pool []*signing.Certificate) bool {
	for _, p := range pool {
		if c != nil && p.SHA256 == c.SHA256 {
			return true
		}
	}
	return false
}
