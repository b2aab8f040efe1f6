package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/signing"
)

// evidenceOf returns a real attestation's evidence; with pcrs, the quoted
// PCR values the source states.
func evidenceOf(a attesttest.Attestation, pcrs bool) *Evidence {
	ev := &Evidence{EventLog: a.Log}
	for _, q := range a.Quotes {
		ev.Quotes = append(ev.Quotes, Quote{Attest: q.Attest, Signature: q.Signature})
		if pcrs {
			if ev.PCRs == nil {
				ev.PCRs = eventlog.PCRs{}
			}
			for alg, bank := range q.PCRs {
				for p, v := range bank {
					if v != nil {
						ev.PCRs.Set(alg, p, bytes.Clone(v))
					}
				}
			}
		}
	}
	return ev
}

// optsOf returns the options that verify a real attestation: its AK (the
// TPMT_PUBLIC) and nonce, SHA-1 and empty nonces accepted where it needs
// them.
func optsOf(t testing.TB, a attesttest.Attestation) VerifyOptions {
	t.Helper()
	ak, err := ParseAK(a.AKPublic)
	if err != nil {
		t.Fatal(err)
	}
	return VerifyOptions{AK: ak, Nonce: a.Nonce, AllowSHA1Unsafe: a.SHA1Signed, AllowEmptyNonceUnsafe: len(a.Nonce) == 0}
}

func certs(t testing.TB, ders [][]byte) []*signing.Certificate {
	t.Helper()
	var out []*signing.Certificate
	for _, d := range ders {
		c, err := signing.ParseCertificate(attesttest.PEMOrDER(d))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// softAK is a software attestation key standing in for a TPM's: it makes
// TPMS_ATTEST quotes as a TPM would and signs them.
type softAK struct {
	signer crypto.Signer
	pub    tpm2.TPMTPublic
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func akAttributes() tpm2.TPMAObject {
	return tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true}
}

// newRSAAK returns an RSA AK whose TPMT_PUBLIC fixes scheme (RSASSA or
// RSAPSS) with SHA-256.
func newRSAAK(t testing.TB, scheme tpm2.TPMAlgID) *softAK {
	k := testRSAKey(t)
	var details tpm2.TPMUAsymScheme
	if scheme == tpm2.TPMAlgRSAPSS {
		details = tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAPSS, &tpm2.TPMSSigSchemeRSAPSS{HashAlg: tpm2.TPMAlgSHA256})
	} else {
		details = tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})
	}
	return &softAK{signer: k, pub: tpm2.TPMTPublic{
		Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: akAttributes(),
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTRSAScheme{Scheme: scheme, Details: details}, KeyBits: 2048}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.Bytes()}),
	}}
}

func newECCAK(t testing.TB) *softAK {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &softAK{signer: k, pub: tpm2.TPMTPublic{
		Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: akAttributes(),
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256, KDF: tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull}}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))},
			Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))}}),
	}}
}

func (s *softAK) ak(t testing.TB) *AK {
	t.Helper()
	ak, err := ParseAK(tpm2.Marshal(s.pub))
	if err != nil {
		t.Fatal(err)
	}
	return ak
}

// quoteSpec describes a quote to make; zero fields take TPM defaults.
type quoteSpec struct {
	bank   eventlog.HashAlg
	pcrs   []int
	values eventlog.PCRs // the PCR values the TPM holds
	nonce  []byte
	magic  tpm2.TPMGenerated
	typ    tpm2.TPMST // TPM_ST_ATTEST_QUOTE or _CERTIFY
	digest []byte     // overrides the computed PCR digest
}

// quote makes and signs a quote with SHA-256.
func (s *softAK) quote(t testing.TB, q quoteSpec) Quote {
	t.Helper()
	if q.magic == 0 {
		q.magic = tpm2.TPMGeneratedValue
	}
	if q.typ == 0 {
		q.typ = tpm2.TPMSTAttestQuote
	}
	d := q.digest
	if d == nil {
		h := crypto.SHA256.New()
		for _, p := range q.pcrs {
			h.Write(q.values.Get(q.bank, p))
		}
		d = h.Sum(nil)
	}
	var sel []uint
	for _, p := range q.pcrs {
		sel = append(sel, uint(p))
	}
	att := tpm2.TPMSAttest{
		Magic: q.magic, Type: tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: []byte{0, 0x0b, 1, 2, 3}},
		ExtraData:       tpm2.TPM2BData{Buffer: q.nonce},
		ClockInfo:       tpm2.TPMSClockInfo{Clock: 1234, ResetCount: 2, RestartCount: 0, Safe: true},
		FirmwareVersion: 42,
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMIAlgHash(q.bank), PCRSelect: tpm2.PCClientCompatible.PCRs(sel...)}}},
			PCRDigest: tpm2.TPM2BDigest{Buffer: d}}),
	}
	if q.typ == tpm2.TPMSTAttestCertify {
		att.Type = q.typ
		att.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{
			Name: tpm2.TPM2BName{Buffer: []byte{0, 0x0b, 9}}, QualifiedName: tpm2.TPM2BName{Buffer: []byte{0, 0x0b, 8}}})
	}
	raw := tpm2.Marshal(att)
	return Quote{Attest: raw, Signature: s.sign(t, raw)}
}

func (s *softAK) sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	dg := crypto.SHA256.New()
	dg.Write(msg)
	digest := dg.Sum(nil)
	var sig tpm2.TPMTSignature
	switch k := s.signer.(type) {
	case *rsa.PrivateKey:
		d, _ := s.pub.Parameters.RSADetail()
		if d.Scheme.Scheme == tpm2.TPMAlgRSAPSS {
			b, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			if err != nil {
				t.Fatal(err)
			}
			sig = tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSAPSS, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSAPSS,
				&tpm2.TPMSSignatureRSA{Hash: tpm2.TPMAlgSHA256, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: b}})}
		} else {
			b, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest)
			if err != nil {
				t.Fatal(err)
			}
			sig = tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA,
				&tpm2.TPMSSignatureRSA{Hash: tpm2.TPMAlgSHA256, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: b}})}
		}
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		sig = tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA,
			&tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: ss.Bytes()}})}
	}
	return tpm2.Marshal(sig)
}

var _ = big.NewInt
