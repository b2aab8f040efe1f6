package service

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/wire"
	"github.com/codesignval/csv/internal/panicerr"
)

// identity is the host's AK and EK as the request gives them.
type identity struct {
	akPublic *tpm2.TPMTPublic
	akName   []byte
	ak       *attest.AK // the AK Verify checks the quotes with
	akCert   *x509.Certificate

	ekPublic *tpm2.TPMTPublic
	ekKey    crypto.PublicKey
	ekKeySum [32]byte
	ekEnc    tpm2.LabeledEncapsulationKey
	ekCert   *x509.Certificate
}

// ekInfo is what the service derives from an EK public area.
type ekInfo struct {
	pub *tpm2.TPMTPublic
	key crypto.PublicKey
	sum [32]byte
	enc tpm2.LabeledEncapsulationKey
}

// ekCache remembers the EK public areas already parsed (a fleet attests
// again and again with the same EKs; decoding one by reflection cost more
// than a tenth of a verification). The entry is a pure function of the
// bytes, which key it by their SHA-256.
type ekCache struct {
	mu  sync.Mutex
	m   map[[32]byte]*ekInfo
	max int
}

func newEKCache(max int) *ekCache { return &ekCache{m: map[[32]byte]*ekInfo{}, max: max} }

func (c *ekCache) get(raw []byte) (*ekInfo, error) {
	k := sha256.Sum256(raw)
	c.mu.Lock()
	e := c.m[k]
	c.mu.Unlock()
	if e != nil {
		return e, nil
	}
	pub, err := decodeTPMTPublic(raw)
	if err != nil {
		return nil, err
	}
	if e, err = newEKInfo(pub); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = e
	c.mu.Unlock()
	return e, nil
}

func newEKInfo(pub *tpm2.TPMTPublic) (*ekInfo, error) {
	e := &ekInfo{pub: pub}
	enc, err := checkEKPublic(pub)
	if err != nil {
		return nil, err
	}
	e.enc = enc
	if e.key, err = tpm2.Pub(*pub); err != nil {
		return nil, err
	}
	if e.sum, err = EKKeySHA256(e.key); err != nil {
		return nil, err
	}
	return e, nil
}

// ErrBadRequest is wrapped by errors about requests that cannot be judged:
// malformed JSON, missing or malformed fields.
var ErrBadRequest = errors.New("service: bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// stripTPM2B removes a TPM2B_PUBLIC's size prefix.
func stripTPM2B(b []byte) []byte {
	if len(b) >= 2 && int(binary.BigEndian.Uint16(b)) == len(b)-2 {
		return b[2:]
	}
	return b
}

// decodeTPMTPublic decodes a TPMT_PUBLIC (or TPM2B_PUBLIC).
func decodeTPMTPublic(b []byte) (p *tpm2.TPMTPublic, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("internal error decoding it: %w", panicerr.New(r))
		}
	}()
	return tpm2.Unmarshal[tpm2.TPMTPublic](stripTPM2B(b))
}

// Name returns a TPM object's Name: its name algorithm and the digest of
// its TPMT_PUBLIC (TPM 2.0 Part 1, section 16).
func Name(pub *tpm2.TPMTPublic) ([]byte, error) {
	n, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil, err
	}
	return n.Buffer, nil
}

// nameOf computes the Name from the TPMT_PUBLIC's bytes as given: if they
// are not the canonical encoding, the Name is not the one the TPM computes
// and no TPM can activate the credential (fail safe).
func nameOf(alg tpm2.TPMIAlgHash, body []byte) ([]byte, error) {
	h, err := alg.Hash()
	if err != nil {
		return nil, err
	}
	d := h.New()
	d.Write(body)
	return d.Sum(binary.BigEndian.AppendUint16(nil, uint16(alg))), nil
}

// EKKeySHA256 returns the SHA-256 of a public key's DER
// SubjectPublicKeyInfo: how the service names an EK (in allowlists, logs
// and nonce bindings) whether it came as a TPMT_PUBLIC or a certificate.
func EKKeySHA256(pub crypto.PublicKey) ([32]byte, error) { return wire.EKKeySHA256(pub) }

// parseIdentity reads the request's AK and EK. It checks their form, not
// their trust: see (*Server).checkEK and the AK check of Verify.
func parseIdentity(req *AttestRequest, allowSHA1Name bool, eks *ekCache) (*identity, error) {
	id := &identity{}
	switch {
	case len(req.AKPublic) == 0:
		return nil, badRequest("ak_public is required (the AK's TPMT_PUBLIC: the credential is made for its Name)")
	case len(req.AKPublic) > maxKeyBytes:
		return nil, badRequest("ak_public: %d bytes (at most %d)", len(req.AKPublic), maxKeyBytes)
	case len(req.AKCertificate) > maxCertBytes, len(req.EKCertificate) > maxCertBytes:
		return nil, badRequest("a certificate over %d bytes", maxCertBytes)
	case len(req.EKPublic) > maxKeyBytes:
		return nil, badRequest("ek_public: %d bytes (at most %d)", len(req.EKPublic), maxKeyBytes)
	case len(req.EKPublic) == 0 && len(req.EKCertificate) == 0:
		return nil, badRequest("give ek_public or ek_certificate")
	}
	// ParseAK refuses keys that are not restricted signing keys fixed to
	// their TPM and generated in it. A key the TPM did not create cannot be
	// loaded with fixedTPM set, and a public-only object (TPM2_LoadExternal)
	// cannot satisfy ActivateCredential's ADMIN role: so only the TPM that
	// created the AK can activate a credential made for its Name.
	body := stripTPM2B(req.AKPublic)
	var err error
	if id.ak, err = attest.ParseAK(body); err != nil {
		return nil, badRequest("ak_public: %v", err)
	}
	if id.ak.TPMTPublic == nil {
		return nil, badRequest("ak_public: not a TPMT_PUBLIC")
	}
	id.akPublic = id.ak.TPMTPublic
	switch id.akPublic.NameAlg {
	case tpm2.TPMAlgSHA256, tpm2.TPMAlgSHA384, tpm2.TPMAlgSHA512:
	case tpm2.TPMAlgSHA1:
		if !allowSHA1Name {
			return nil, badRequest("ak_public: the AK's name algorithm is SHA-1 (AllowSHA1Unsafe accepts it)")
		}
	default:
		return nil, badRequest("ak_public: unsupported name algorithm 0x%04x", uint16(id.akPublic.NameAlg))
	}
	if id.akName, err = nameOf(id.akPublic.NameAlg, body); err != nil {
		return nil, badRequest("ak_public: %v", err)
	}
	if len(req.AKCertificate) > 0 {
		if id.akCert, err = x509.ParseCertificate(req.AKCertificate); err != nil {
			return nil, badRequest("ak_certificate: %v", err)
		}
	}
	if len(req.EKCertificate) > 0 {
		if id.ekCert, err = x509.ParseCertificate(req.EKCertificate); err != nil {
			return nil, badRequest("ek_certificate: %v", err)
		}
	}
	var ek *ekInfo
	if len(req.EKPublic) > 0 {
		ek, err = eks.get(stripTPM2B(req.EKPublic))
	} else {
		var pub *tpm2.TPMTPublic
		if pub, err = ekTemplateFor(id.ekCert.PublicKey); err != nil {
			return nil, badRequest("ek_certificate: %v", err)
		}
		ek, err = newEKInfo(pub)
	}
	if err != nil {
		return nil, badRequest("ek_public: %v", err)
	}
	id.ekPublic, id.ekKey, id.ekKeySum, id.ekEnc = ek.pub, ek.key, ek.sum, ek.enc
	if id.ekCert != nil {
		if !samePublicKey(id.ekCert.PublicKey, id.ekKey) {
			return nil, badRequest("ek_certificate certifies another key than ek_public")
		}
	}
	return id, nil
}

// checkEKPublic requires a restricted decryption key fixed to its TPM with
// a symmetric scheme MakeCredential can use (AES-CFB), and returns it as
// an encapsulation key.
func checkEKPublic(p *tpm2.TPMTPublic) (tpm2.LabeledEncapsulationKey, error) {
	a := p.ObjectAttributes
	if !a.Restricted || !a.Decrypt || a.SignEncrypt || !a.FixedTPM {
		return nil, fmt.Errorf("not a restricted decryption key fixed to its TPM (restricted=%v decrypt=%v sign=%v fixedTPM=%v)",
			a.Restricted, a.Decrypt, a.SignEncrypt, a.FixedTPM)
	}
	switch p.NameAlg {
	case tpm2.TPMAlgSHA256, tpm2.TPMAlgSHA384, tpm2.TPMAlgSHA512:
	default:
		return nil, fmt.Errorf("unsupported name algorithm 0x%04x", uint16(p.NameAlg))
	}
	k, err := tpm2.ImportEncapsulationKey(p)
	if err != nil {
		return nil, err
	}
	sym := k.SymmetricParameters()
	if sym.Algorithm != tpm2.TPMAlgAES {
		return nil, fmt.Errorf("symmetric algorithm 0x%04x is not AES", uint16(sym.Algorithm))
	}
	if m, err := sym.Mode.AES(); err != nil || *m != tpm2.TPMAlgCFB {
		return nil, errors.New("symmetric mode is not CFB")
	}
	if b, err := sym.KeyBits.AES(); err != nil || *b != 128 && *b != 256 {
		return nil, errors.New("symmetric key size is not 128 or 256 bits")
	}
	return k, nil
}

// ekTemplateFor returns the TCG low-range EK template (EK Credential
// Profile, templates L-1 and L-2) holding key.
func ekTemplateFor(key crypto.PublicKey) (*tpm2.TPMTPublic, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return nil, errors.New("an RSA EK of other than 2048 bits and exponent 65537: give ek_public")
		}
		t := tpm2.RSAEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})
		return &t, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("an ECC EK on another curve than P-256: give ek_public")
		}
		t := tpm2.ECCEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))},
			Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))},
		})
		return &t, nil
	}
	return nil, fmt.Errorf("unsupported EK key type %T", key)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// ekTrust decides whether an EK belongs to a genuine TPM the service
// trusts: a certificate that chains to a configured manufacturer root, or
// a key on the allowlist, or anything with TrustAnyEKUnsafe.
type ekTrust struct {
	roots, intermediates *x509.CertPool
	nroots               int
	allow                map[[32]byte]bool
	anyUnsafe            bool
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// oidEKCertificate is tcg-kp-EKCertificate (TCG EK Credential Profile
	// 3.2.16), the extended key usage of EK certificates.
	oidEKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 1}
)

// checkEKCertificateUse refuses a certificate that is not an EK
// certificate, whatever it chains to: a CA certificate; one whose key
// usage, when present, allows neither keyEncipherment (RSA EKs) nor
// keyAgreement (ECC EKs); one whose extended key usage, when present,
// lacks tcg-kp-EKCertificate. (swtpm_setup --create-ek-cert and TPM
// manufacturers write CA:FALSE, keyEncipherment or keyAgreement, and
// tcg-kp-EKCertificate.)
func checkEKCertificateUse(c *x509.Certificate) error {
	if c.IsCA {
		return errors.New("the EK certificate is a CA certificate (basicConstraints CA:TRUE)")
	}
	if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) == 0 {
		return errors.New("the EK certificate's key usage allows neither keyEncipherment nor keyAgreement")
	}
	if len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0 {
		if !slices.ContainsFunc(c.UnknownExtKeyUsage, oidEKCertificate.Equal) {
			return fmt.Errorf("the EK certificate's extended key usage lacks tcg-kp-EKCertificate (%s)", oidEKCertificate)
		}
	}
	return nil
}

// check returns a description of why the EK is trusted, or an error.
func (t *ekTrust) check(id *identity, now time.Time) (string, error) {
	var why []string
	if id.ekCert != nil {
		if t.nroots == 0 {
			why = append(why, "an EK certificate was given, but no EK roots are configured")
		} else if err := checkEKCertificateUse(id.ekCert); err != nil {
			why = append(why, err.Error())
		} else {
			c := *id.ekCert
			// EK certificates carry the TPM's manufacturer, model and
			// version as a directoryName in a critical subjectAltName,
			// which Go leaves unhandled (TCG EK Credential Profile 3.2.9).
			c.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(c.UnhandledCriticalExtensions),
				func(o asn1.ObjectIdentifier) bool { return o.Equal(oidSubjectAltName) })
			chains, err := c.Verify(x509.VerifyOptions{Roots: t.roots, Intermediates: t.intermediates, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			if err == nil {
				root := chains[0][len(chains[0])-1]
				return fmt.Sprintf("EK certificate (serial %s, issuer %q) chains to EK root %q", c.SerialNumber, c.Issuer.CommonName, root.Subject.CommonName), nil
			}
			why = append(why, "the EK certificate does not chain to an EK root: "+err.Error())
		}
	}
	if t.allow[id.ekKeySum] {
		return "EK key " + hex.EncodeToString(id.ekKeySum[:]) + " is on the EK allowlist", nil
	}
	if len(t.allow) > 0 {
		why = append(why, "the EK key is not on the EK allowlist")
	}
	if t.anyUnsafe {
		return ekTrustedAnyUnsafe, nil
	}
	if len(why) == 0 {
		why = append(why, "no EK certificate given and no allowlist configured")
	}
	return "", errors.New(strings.Join(why, "; "))
}

// checkAKCertificate checks that the AK certificate, if any, certifies the
// AK public area given (its chain is Verify's "ak" check).
func checkAKCertificate(id *identity) error {
	if id.akCert == nil {
		return nil
	}
	if !samePublicKey(id.akCert.PublicKey, id.ak.Public) {
		return errors.New("ak_certificate certifies another key than ak_public")
	}
	return nil
}
