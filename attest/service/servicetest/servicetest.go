// Package servicetest provides software stand-ins for what a host's TPM
// does in an attestation, for tests of package service and of its clients,
// and for load generation: an endorsement key and an attestation key whose
// private keys live in memory, quotes made and signed as a TPM makes them,
// and TPM2_ActivateCredential computed in software. It also writes
// synthetic UEFI Secure Boot event logs and mints throw-away CAs.
//
// # Security
//
// Nothing here is for production: a Host is exactly the "software TPM" a
// service must not trust (see service.Config.TrustAnyEKUnsafe). It exists
// so that the service's tests and load runs need no TPM.
package servicetest

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
)

// KeyType is a key algorithm.
type KeyType int

// Key types. ECC is ECC P-256; ECCP384 an EK like swtpm's high-range one
// (SHA-384 name, AES-256).
const (
	ECC KeyType = iota
	RSA
	ECCP384
)

// Host is a software host: an EK and an AK.
type Host struct {
	ekPub   tpm2.TPMTPublic
	ekRSA   *rsa.PrivateKey
	ekECDH  *ecdh.PrivateKey
	akPub   tpm2.TPMTPublic
	akKey   crypto.Signer
	akBytes []byte
	ekBytes []byte
	akName  []byte
	ekKey   [32]byte
	clock   atomic.Uint64
}

// NewHost makes a host with an EK and an AK of the given types (the AK is
// ECC or RSA).
func NewHost(ek, ak KeyType) (*Host, error) {
	h := &Host{}
	switch ek {
	case RSA:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		h.ekRSA = k
		h.ekPub = tpm2.RSAEKTemplate
		h.ekPub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})
	case ECC, ECCP384:
		curve, size := ecdh.P256(), 32
		if ek == ECCP384 {
			curve, size = ecdh.P384(), 48
		}
		k, err := curve.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		h.ekECDH = k
		pt := k.PublicKey().Bytes()[1:]
		h.ekPub = tpm2.ECCEKTemplate
		if ek == ECCP384 {
			h.ekPub.NameAlg = tpm2.TPMAlgSHA384
			h.ekPub.AuthPolicy = tpm2.TPM2BDigest{}
			h.ekPub.ObjectAttributes.UserWithAuth = true
			h.ekPub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgAES,
					KeyBits: tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(256)),
					Mode:    tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB)},
				Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull}, CurveID: tpm2.TPMECCNistP384,
				KDF: tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull}})
		}
		h.ekPub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: pt[:size]}, Y: tpm2.TPM2BECCParameter{Buffer: pt[size:]}})
	default:
		return nil, fmt.Errorf("servicetest: unknown EK type %d", ek)
	}
	attrs := tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true}
	switch ak {
	case RSA:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		h.akKey = k
		h.akPub = tpm2.TPMTPublic{Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSASSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})},
				KeyBits: 2048}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})}
	case ECC:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		h.akKey = k
		h.akPub = tpm2.TPMTPublic{Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
				CurveID: tpm2.TPMECCNistP256, KDF: tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull}}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
				X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))},
				Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))}})}
	default:
		return nil, fmt.Errorf("servicetest: unknown AK type %d", ak)
	}
	h.akBytes = tpm2.Marshal(h.akPub)
	h.ekBytes = tpm2.Marshal(h.ekPub)
	name, err := service.Name(&h.akPub)
	if err != nil {
		return nil, err
	}
	h.akName = name
	pub, err := tpm2.Pub(h.ekPub)
	if err != nil {
		return nil, err
	}
	if h.ekKey, err = service.EKKeySHA256(pub); err != nil {
		return nil, err
	}
	return h, nil
}

// AKPublic returns the AK's TPMT_PUBLIC.
func (h *Host) AKPublic() []byte { return append([]byte(nil), h.akBytes...) }

// AKName returns the AK's TPM Name.
func (h *Host) AKName() []byte { return append([]byte(nil), h.akName...) }

// EKPublic returns the EK's TPMT_PUBLIC.
func (h *Host) EKPublic() []byte { return append([]byte(nil), h.ekBytes...) }

// EKKeySHA256 returns what the service's EK allowlist holds for this EK.
func (h *Host) EKKeySHA256() [32]byte { return h.ekKey }

// EKPublicKey returns the EK's public key (to certify it).
func (h *Host) EKPublicKey() crypto.PublicKey {
	if h.ekRSA != nil {
		return &h.ekRSA.PublicKey
	}
	k, _ := tpm2.Pub(h.ekPub)
	return k
}

// NonceRequest returns the host's nonce request.
func (h *Host) NonceRequest() service.NonceRequest {
	return service.NonceRequest{AKName: hex.EncodeToString(h.akName), EKKeySHA256: hex.EncodeToString(h.ekKey[:])}
}

// Quote makes and signs a quote of pcrs of bank over values (the PCR
// values "the TPM holds") with qualifying data nonce: the TPMS_ATTEST and
// TPMT_SIGNATURE a TPM returns from TPM2_Quote with this AK.
func (h *Host) Quote(bank eventlog.HashAlg, pcrs []int, values eventlog.PCRs, nonce []byte) (service.QuoteJSON, error) {
	d := sha256.New()
	sel := make([]uint, len(pcrs))
	for i, p := range pcrs {
		v := values.Get(bank, p)
		if v == nil {
			return service.QuoteJSON{}, fmt.Errorf("servicetest: no value for %s PCR %d", bank, p)
		}
		d.Write(v)
		sel[i] = uint(p)
	}
	raw := marshalQuote(h.akName, nonce, h.clock.Add(1), bank, tpm2.PCClientCompatible.PCRs(sel...), d.Sum(nil))
	sig, err := h.sign(raw)
	if err != nil {
		return service.QuoteJSON{}, err
	}
	return service.QuoteJSON{Attest: raw, Signature: sig}, nil
}

func (h *Host) sign(msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	switch k := h.akKey.(type) {
	case *rsa.PrivateKey:
		b, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		if err != nil {
			return nil, err
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMAlgRSASSA))
		out = binary.BigEndian.AppendUint16(out, uint16(tpm2.TPMAlgSHA256))
		return appendSized(out, b), nil
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, err
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMAlgECDSA))
		out = binary.BigEndian.AppendUint16(out, uint16(tpm2.TPMAlgSHA256))
		out = appendSized(out, r.FillBytes(make([]byte, 32)))
		return appendSized(out, s.FillBytes(make([]byte, 32))), nil
	}
	return nil, errors.New("servicetest: unknown AK key")
}

func appendSized(b, v []byte) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(v))), v...)
}

// marshalQuote encodes the TPMS_ATTEST of a quote of one bank, as
// tpm2.Marshal does but without its reflection (a load generator's hosts
// make thousands a second).
func marshalQuote(signer, nonce []byte, clock uint64, bank eventlog.HashAlg, sel, digest []byte) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 128), uint32(tpm2.TPMGeneratedValue))
	b = binary.BigEndian.AppendUint16(b, uint16(tpm2.TPMSTAttestQuote))
	b = appendSized(b, signer)
	b = appendSized(b, nonce)
	b = binary.BigEndian.AppendUint64(b, clock)
	b = binary.BigEndian.AppendUint32(b, 1) // resetCount
	b = binary.BigEndian.AppendUint32(b, 0) // restartCount
	b = append(b, 1)                        // safe
	b = binary.BigEndian.AppendUint64(b, 0x20191023)
	b = binary.BigEndian.AppendUint32(b, 1) // one selection
	b = binary.BigEndian.AppendUint16(b, uint16(bank))
	b = append(b, byte(len(sel)))
	b = append(b, sel...)
	return appendSized(b, digest)
}

// Evidence quotes what the nonce response asks for over values and returns
// the submission, with the PCR values and the EK public area.
func (h *Host) Evidence(n *service.NonceResponse, log []byte, values eventlog.PCRs) (*service.AttestRequest, error) {
	nonce, err := DecodeNonce(n.Nonce)
	if err != nil {
		return nil, err
	}
	req := &service.AttestRequest{Nonce: n.Nonce, EventLog: log, AKPublic: h.AKPublic(), EKPublic: h.EKPublic()}
	sent := eventlog.PCRs{}
	for _, s := range n.PCRSelections {
		alg, err := eventlog.ParseHashAlg(s.Bank)
		if err != nil {
			return nil, err
		}
		q, err := h.Quote(alg, s.PCRs, values, nonce)
		if err != nil {
			return nil, err
		}
		req.Quotes = append(req.Quotes, q)
		for _, p := range s.PCRs {
			sent.Set(alg, p, values.Get(alg, p))
		}
	}
	req.PCRs = service.PCRsToJSON(sent)
	return req, nil
}

// ActivateCredential does in software what TPM2_ActivateCredential does in
// the TPM holding this host's EK, with its AK loaded: it recovers the
// secret from the credential (TPM 2.0 Part 1, "Credential Protection").
func (h *Host) ActivateCredential(idObject, encSecret []byte) ([]byte, error) {
	nameHash, err := h.ekPub.NameAlg.Hash()
	if err != nil {
		return nil, err
	}
	var seed []byte
	switch {
	case h.ekRSA != nil:
		seed, err = rsa.DecryptOAEP(nameHash.New(), nil, h.ekRSA, encSecret, []byte("IDENTITY\x00"))
		if err != nil {
			return nil, fmt.Errorf("servicetest: decrypting the seed: %w", err)
		}
	default:
		pt, err := tpm2.Unmarshal[tpm2.TPMSECCPoint](encSecret)
		if err != nil {
			return nil, fmt.Errorf("servicetest: the encrypted secret: %w", err)
		}
		size := len(h.ekECDH.PublicKey().Bytes()) / 2
		if len(pt.X.Buffer) != size || len(pt.Y.Buffer) != size {
			return nil, errors.New("servicetest: the ephemeral point has the wrong size")
		}
		eph, err := h.ekECDH.Curve().NewPublicKey(append(append([]byte{4}, pt.X.Buffer...), pt.Y.Buffer...))
		if err != nil {
			return nil, fmt.Errorf("servicetest: the ephemeral point: %w", err)
		}
		z, err := h.ekECDH.ECDH(eph)
		if err != nil {
			return nil, err
		}
		ekX := h.ekECDH.PublicKey().Bytes()[1 : 1+size]
		seed = tpm2.KDFe(nameHash, z, "IDENTITY", pt.X.Buffer, ekX, nameHash.Size()*8)
	}
	if len(idObject) < 2 {
		return nil, errors.New("servicetest: the ID object is truncated")
	}
	n := int(binary.BigEndian.Uint16(idObject))
	if len(idObject) < 2+n {
		return nil, errors.New("servicetest: the ID object is truncated")
	}
	integrity, encIdentity := idObject[2:2+n], idObject[2+n:]
	mac := hmac.New(nameHash.New, tpm2.KDFa(nameHash, seed, "INTEGRITY", nil, nil, nameHash.Size()*8))
	mac.Write(encIdentity)
	mac.Write(h.akName)
	if !hmac.Equal(mac.Sum(nil), integrity) {
		return nil, errors.New("servicetest: the credential's integrity check fails (TPM_RC_INTEGRITY): made for another EK or AK")
	}
	parms, err := h.symBits()
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(tpm2.KDFa(nameHash, seed, "STORAGE", h.akName, nil, parms))
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(encIdentity))
	cipher.NewCFBDecrypter(block, make([]byte, block.BlockSize())).XORKeyStream(plain, encIdentity) //nolint:staticcheck // TPM 2.0 mandates CFB
	if len(plain) < 2 || int(binary.BigEndian.Uint16(plain)) != len(plain)-2 {
		return nil, errors.New("servicetest: the decrypted credential is not a TPM2B_DIGEST")
	}
	return plain[2:], nil
}

func (h *Host) symBits() (int, error) {
	var sym tpm2.TPMTSymDefObject
	if h.ekRSA != nil {
		d, err := h.ekPub.Parameters.RSADetail()
		if err != nil {
			return 0, err
		}
		sym = d.Symmetric
	} else {
		d, err := h.ekPub.Parameters.ECCDetail()
		if err != nil {
			return 0, err
		}
		sym = d.Symmetric
	}
	bits, err := sym.KeyBits.AES()
	if err != nil {
		return 0, err
	}
	return int(*bits), nil
}

// Open activates a credential and decrypts its payload.
func (h *Host) Open(c *service.Credential) ([]byte, error) {
	secret, err := h.ActivateCredential(c.IDObject, c.EncryptedSecret)
	if err != nil {
		return nil, err
	}
	return service.Open(c, secret, h.akName)
}

// DecodeNonce returns the bytes a nonce response's nonce stands for (the
// quotes' qualifying data).
func DecodeNonce(s string) ([]byte, error) {
	return service.DecodeNonce(s)
}

// NewCA mints a self-signed ECDSA P-256 CA certificate valid from a year
// before now to ten years after.
func NewCA(name string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"csv tests"}},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, k, err
}

// CertifyEK issues an EK certificate for h's EK from ca, as a TPM
// manufacturer (or swtpm_setup --create-ek-cert) would: with the critical
// subjectAltName of TPM attributes Go leaves unhandled, keyEncipherment,
// and the extended key usage tcg-kp-EKCertificate.
func (h *Host) CertifyEK(ca *x509.Certificate, caKey crypto.Signer, now time.Time) (*x509.Certificate, error) {
	return h.CertifyEKWith(ca, caKey, now, nil)
}

// OIDEKCertificate is tcg-kp-EKCertificate, the extended key usage of EK
// certificates.
var OIDEKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 1}

// CertifyEKWith is CertifyEK with the certificate template changed by
// edit (if not nil) before it is signed.
func (h *Host) CertifyEKWith(ca *x509.Certificate, caKey crypto.Signer, now time.Time, edit func(*x509.Certificate)) (*x509.Certificate, error) {
	dn, err := asn1.Marshal(pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: "id:00001014"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 2}, Value: "servicetest"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 3}, Value: "id:00000001"},
	}}.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dn}})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{OIDEKCertificate},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: []int{2, 5, 29, 17}, Critical: true, Value: san}},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, h.EKPublicKey(), caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// VariableData is a UEFI_VARIABLE_DATA: what firmware measures for a
// variable (bootlog.VariableData).
func VariableData(vendor [16]byte, name string, data []byte) []byte {
	return bootlog.VariableData(vendor, name, data)
}

// App is a boot application: its Authenticode digests.
type App = bootlog.App

// BootOptions describe a synthetic UEFI boot.
type BootOptions = bootlog.Options

// SecureBootLog writes the event log of a UEFI Secure Boot as firmware
// logs it (bootlog.Write) and returns the Writer (whose PCRs are what a
// TPM extended with the same digests holds).
func SecureBootLog(o BootOptions) (*eventlog.Writer, error) { return bootlog.Write(o) }
