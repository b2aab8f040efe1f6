package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
)

// AKSource says how an attestation key was given.
type AKSource string

// AK sources.
const (
	AKFromTPMTPublic  AKSource = "tpmt-public"
	AKFromPublicKey   AKSource = "public-key"
	AKFromCertificate AKSource = "certificate"
)

// AK is an attestation key: the key a TPM signs quotes with.
type AK struct {
	Source AKSource
	Public crypto.PublicKey
	// TPMTPublic is the key's TPM public area, when given as one.
	TPMTPublic *tpm2.TPMTPublic
	// Certificate is the AK certificate, when given as one; Verify checks
	// that it chains to a trusted root.
	Certificate *signing.Certificate
}

// ErrInvalidAK is wrapped by errors about an unusable attestation key.
var ErrInvalidAK = errors.New("attest: invalid attestation key")

// maxAKSize caps an AK file: a certificate with its PEM armour.
const maxAKSize = 64 << 10

// ParseAK reads an attestation key: a TPMT_PUBLIC (or TPM2B_PUBLIC, the same
// with a two-byte size), a PEM or DER public key, or an X.509 AK certificate
// (PEM or DER; it must then chain to a root given to Verify). A TPM key must
// be a restricted signing key fixed to its TPM, as an AK is: an
// unrestricted key could sign a forged TPMS_ATTEST.
func ParseAK(data []byte) (ak *AK, err error) {
	defer func() {
		if r := recover(); r != nil {
			ak, err = nil, fmt.Errorf("%w: internal error parsing it: %w", ErrInvalidAK, panicerr.New(r))
		}
	}()
	if len(data) > maxAKSize {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidAK, len(data), maxAKSize)
	}
	if blk, rest := pem.Decode(data); blk != nil {
		if more, _ := pem.Decode(rest); more != nil {
			return nil, fmt.Errorf("%w: several PEM blocks: give the AK alone (CA certificates go to the roots)", ErrInvalidAK)
		}
		switch blk.Type {
		case "CERTIFICATE":
			return akFromCertificate(data)
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: PEM public key: %v", ErrInvalidAK, err)
			}
			return akFromKey(pub)
		case "RSA PUBLIC KEY":
			pub, err := x509.ParsePKCS1PublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: PEM RSA public key: %v", ErrInvalidAK, err)
			}
			return akFromKey(pub)
		}
		return nil, fmt.Errorf("%w: PEM block %q is not a PUBLIC KEY or CERTIFICATE", ErrInvalidAK, blk.Type)
	}
	if len(data) > 0 && data[0] == 0x30 {
		if pub, err := x509.ParsePKIXPublicKey(data); err == nil {
			return akFromKey(pub)
		}
		if c, err := signing.ParseOneCertificate(data); err == nil {
			return akFromCertificateParsed(c)
		}
	}
	body := data
	if len(data) >= 2 && int(binary.BigEndian.Uint16(data)) == len(data)-2 {
		body = data[2:] // TPM2B_PUBLIC
	}
	pub, err := decodePublic(body)
	if err != nil {
		return nil, fmt.Errorf("%w: neither a TPMT_PUBLIC, a public key nor a certificate: %v", ErrInvalidAK, err)
	}
	return akFromTPMTPublic(pub)
}

func akFromTPMTPublic(pub *tpm2.TPMTPublic) (*AK, error) {
	a := pub.ObjectAttributes
	switch {
	case !a.Restricted || !a.SignEncrypt || a.Decrypt:
		return nil, fmt.Errorf("%w: the TPM key is not a restricted signing key (restricted=%v sign=%v decrypt=%v): it could sign a forged quote",
			ErrInvalidAK, a.Restricted, a.SignEncrypt, a.Decrypt)
	case !a.FixedTPM || !a.SensitiveDataOrigin:
		return nil, fmt.Errorf("%w: the TPM key is not fixed to its TPM and generated in it (fixedTPM=%v sensitiveDataOrigin=%v)",
			ErrInvalidAK, a.FixedTPM, a.SensitiveDataOrigin)
	}
	k, err := tpm2.Pub(*pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidAK, err)
	}
	ak, err := akFromKey(k)
	if err != nil {
		return nil, err
	}
	ak.Source, ak.TPMTPublic = AKFromTPMTPublic, pub
	return ak, nil
}

func akFromKey(pub crypto.PublicKey) (*AK, error) {
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	return &AK{Source: AKFromPublicKey, Public: pub}, nil
}

func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits (want at least 2048)", ErrInvalidAK, bitLen(k))
		}
		if k.E < 3 || k.E%2 == 0 {
			return fmt.Errorf("%w: RSA public exponent %d", ErrInvalidAK, k.E)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECC key on an unsupported curve", ErrInvalidAK)
		}
		if _, err := k.ECDH(); err != nil {
			return fmt.Errorf("%w: ECC point is not on its curve", ErrInvalidAK)
		}
	default:
		return fmt.Errorf("%w: unsupported key type %T (want RSA or ECC)", ErrInvalidAK, pub)
	}
	return nil
}

func bitLen(k *rsa.PublicKey) int {
	if k.N == nil {
		return 0
	}
	return k.N.BitLen()
}

// akFromCertificate reads an AK certificate file (PEM or DER) by the rule
// of signing.ParseCertificates.
func akFromCertificate(data []byte) (*AK, error) {
	c, err := signing.ParseOneCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidAK, err)
	}
	return akFromCertificateParsed(c)
}

func akFromCertificateParsed(c *signing.Certificate) (*AK, error) {
	if c.PublicKey == nil {
		return nil, fmt.Errorf("%w: certificate %q has a public key of an unsupported type", ErrInvalidAK, c.CommonName())
	}
	if err := checkKey(c.PublicKey); err != nil {
		return nil, fmt.Errorf("certificate %q: %w", c.CommonName(), err)
	}
	return &AK{Source: AKFromCertificate, Public: c.PublicKey, Certificate: c}, nil
}

// verifyChain checks that the AK certificate chains to one of roots through
// intermediates, every certificate of the chain valid at now. It returns the
// chain.
func (ak *AK) verifyChain(roots, intermediates []*signing.Certificate, now time.Time) ([]*signing.Certificate, error) {
	if len(roots) == 0 {
		return nil, errors.New("the AK is a certificate, but no trusted roots were given to check it against")
	}
	trusted := map[[32]byte]bool{}
	for _, r := range roots {
		trusted[r.SHA256] = true
	}
	candidates := append(append([]*signing.Certificate(nil), intermediates...), roots...)
	var why string
	for _, chain := range signing.BuildChains(ak.Certificate, candidates) {
		end := -1
		for i, c := range chain {
			if trusted[c.SHA256] {
				end = i
				break
			}
		}
		if end < 0 {
			why = fmt.Sprintf("the chain %s reaches no trusted root", chainNames(chain))
			continue
		}
		chain = chain[:end+1]
		bad := ""
		for _, c := range chain {
			if now.Before(c.NotBefore) || now.After(c.NotAfter) {
				bad = fmt.Sprintf("certificate %q is valid from %s to %s, not at %s", c.CommonName(),
					c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly), now.UTC().Format(time.RFC3339))
				break
			}
		}
		if bad != "" {
			why = bad
			continue
		}
		return chain, nil
	}
	if why == "" {
		why = "no chain could be built"
	}
	return nil, fmt.Errorf("AK certificate %q does not chain to a trusted root: %s", ak.Certificate.CommonName(), why)
}

func chainNames(chain []*signing.Certificate) string {
	var b bytes.Buffer
	for i, c := range chain {
		if i > 0 {
			b.WriteString(" <- ")
		}
		fmt.Fprintf(&b, "%q", c.CommonName())
	}
	return b.String()
}
