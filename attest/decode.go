package attest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// The quote's two structures are decoded here into go-tpm's tpm2 types
// directly: tpm2.Unmarshal walks them by reflection and re-parses every
// struct tag on every call, which cost more than all the rest of a
// verification (see bench/attest). Structures this decoder does not cover
// (attestation types other than a quote, signature schemes other than
// RSASSA, RSAPSS and ECDSA) go through tpm2.Unmarshal. The decoder is
// strict: every length is checked against what remains, and trailing bytes
// are an error. FuzzDecode checks it against tpm2.Unmarshal and
// tpm2.Marshal.

// maxPCRSelections caps a TPML_PCR_SELECTION (a TPM has a handful of
// banks).
const maxPCRSelections = 16

var errShort = errors.New("truncated")

type tpmReader struct {
	b   []byte
	err error
}

func (r *tpmReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: %d bytes needed, %d left", errShort, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *tpmReader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *tpmReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *tpmReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *tpmReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// sized reads a TPM2B: a 16-bit size, then that many bytes.
func (r *tpmReader) sized() []byte { return r.take(int(r.u16())) }

func (r *tpmReader) end(what string) error {
	if r.err != nil {
		return fmt.Errorf("%s: %w", what, r.err)
	}
	if len(r.b) > 0 {
		return fmt.Errorf("%s: %d bytes follow the structure", what, len(r.b))
	}
	return nil
}

// decodeAttest decodes a TPMS_ATTEST.
func decodeAttest(b []byte) (*tpm2.TPMSAttest, error) {
	r := &tpmReader{b: b}
	a := &tpm2.TPMSAttest{Magic: tpm2.TPMGenerated(r.u32()), Type: tpm2.TPMST(r.u16())}
	if r.err == nil && a.Type != tpm2.TPMSTAttestQuote {
		return unmarshalAttest(b)
	}
	a.QualifiedSigner.Buffer = r.sized()
	a.ExtraData.Buffer = r.sized()
	a.ClockInfo.Clock, a.ClockInfo.ResetCount, a.ClockInfo.RestartCount = r.u64(), r.u32(), r.u32()
	switch safe := r.u8(); safe {
	case 0, 1:
		a.ClockInfo.Safe = safe == 1
	default:
		return nil, fmt.Errorf("TPMS_ATTEST: clockInfo.safe is %d", safe)
	}
	a.FirmwareVersion = r.u64()
	q := &tpm2.TPMSQuoteInfo{}
	n := r.u32()
	if n > maxPCRSelections {
		return nil, fmt.Errorf("TPMS_ATTEST: %d PCR selections (at most %d)", n, maxPCRSelections)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		s := tpm2.TPMSPCRSelection{Hash: tpm2.TPMIAlgHash(r.u16())}
		s.PCRSelect = r.take(int(r.u8()))
		q.PCRSelect.PCRSelections = append(q.PCRSelect.PCRSelections, s)
	}
	q.PCRDigest.Buffer = r.sized()
	if err := r.end("TPMS_ATTEST"); err != nil {
		return nil, err
	}
	a.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, q)
	return a, nil
}

func unmarshalAttest(b []byte) (*tpm2.TPMSAttest, error) {
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](b)
	if err != nil {
		return nil, fmt.Errorf("TPMS_ATTEST: %v", err)
	}
	if err := canonical("TPMS_ATTEST", tpm2.Marshal(a), b); err != nil {
		return nil, err
	}
	return a, nil
}

// canonical checks that a structure go-tpm decoded is exactly the input
// (tpm2.Unmarshal ignores what follows a structure).
func canonical(what string, re, b []byte) error {
	if !bytes.Equal(re, b) {
		return fmt.Errorf("%s: %d bytes follow the structure, or it is not canonical", what, len(b)-len(re))
	}
	return nil
}

// decodeSignature decodes a TPMT_SIGNATURE.
func decodeSignature(b []byte) (*tpm2.TPMTSignature, error) {
	r := &tpmReader{b: b}
	s := &tpm2.TPMTSignature{SigAlg: tpm2.TPMIAlgSigScheme(r.u16())}
	switch s.SigAlg {
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		rs := &tpm2.TPMSSignatureRSA{Hash: tpm2.TPMIAlgHash(r.u16())}
		rs.Sig.Buffer = r.sized()
		s.Signature = tpm2.NewTPMUSignature(s.SigAlg, rs)
	case tpm2.TPMAlgECDSA:
		es := &tpm2.TPMSSignatureECC{Hash: tpm2.TPMIAlgHash(r.u16())}
		es.SignatureR.Buffer = r.sized()
		es.SignatureS.Buffer = r.sized()
		s.Signature = tpm2.NewTPMUSignature(s.SigAlg, es)
	default:
		if r.err != nil {
			return nil, fmt.Errorf("TPMT_SIGNATURE: %w", r.err)
		}
		u, err := tpm2.Unmarshal[tpm2.TPMTSignature](b)
		if err != nil {
			return nil, fmt.Errorf("TPMT_SIGNATURE: %v", err)
		}
		if err := canonical("TPMT_SIGNATURE", tpm2.Marshal(u), b); err != nil {
			return nil, err
		}
		return u, nil
	}
	if err := r.end("TPMT_SIGNATURE"); err != nil {
		return nil, err
	}
	return s, nil
}

// objectAttributes are the defined bits of TPMA_OBJECT.
const objectAttributes = 1<<1 | 1<<2 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<10 | 1<<11 | 1<<16 | 1<<17 | 1<<18 | 1<<19

// decodePublic decodes an RSA or ECC TPMT_PUBLIC (others go through
// tpm2.Unmarshal). Reserved attribute bits are refused.
func decodePublic(b []byte) (*tpm2.TPMTPublic, error) {
	r := &tpmReader{b: b}
	p := &tpm2.TPMTPublic{Type: tpm2.TPMIAlgPublic(r.u16()), NameAlg: tpm2.TPMIAlgHash(r.u16())}
	if r.err == nil && p.Type != tpm2.TPMAlgRSA && p.Type != tpm2.TPMAlgECC {
		return unmarshalPublic(b)
	}
	a := r.u32()
	if a&^objectAttributes != 0 {
		return nil, fmt.Errorf("TPMT_PUBLIC: reserved object attributes 0x%08x set", a&^objectAttributes)
	}
	bit := func(n uint) bool { return a&(1<<n) != 0 }
	p.ObjectAttributes = tpm2.TPMAObject{FixedTPM: bit(1), STClear: bit(2), FixedParent: bit(4), SensitiveDataOrigin: bit(5),
		UserWithAuth: bit(6), AdminWithPolicy: bit(7), FirmwareLimited: bit(8), NoDA: bit(10), EncryptedDuplication: bit(11),
		Restricted: bit(16), Decrypt: bit(17), SignEncrypt: bit(18), X509Sign: bit(19)}
	p.AuthPolicy.Buffer = r.sized()
	sym := tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMIAlgSymObject(r.u16())}
	if sym.Algorithm != tpm2.TPMAlgNull {
		// An AK is a signing key: a symmetric definition belongs to a
		// restricted decryption key. Leave it to go-tpm.
		return unmarshalPublic(b)
	}
	scheme := tpm2.TPMAlgID(r.u16())
	var details tpm2.TPMUAsymScheme
	switch scheme {
	case tpm2.TPMAlgNull:
	case tpm2.TPMAlgRSASSA:
		details = tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMIAlgHash(r.u16())})
	case tpm2.TPMAlgRSAPSS:
		details = tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeRSAPSS{HashAlg: tpm2.TPMIAlgHash(r.u16())})
	case tpm2.TPMAlgECDSA:
		details = tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMIAlgHash(r.u16())})
	default:
		return nil, fmt.Errorf("TPMT_PUBLIC: signing scheme 0x%04x is not supported (want RSASSA, RSAPSS or ECDSA)", uint16(scheme))
	}
	if p.Type == tpm2.TPMAlgRSA {
		parms := &tpm2.TPMSRSAParms{Symmetric: sym, Scheme: tpm2.TPMTRSAScheme{Scheme: scheme, Details: details}}
		parms.KeyBits, parms.Exponent = tpm2.TPMKeyBits(r.u16()), r.u32()
		p.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, parms)
		p.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: r.sized()})
	} else {
		parms := &tpm2.TPMSECCParms{Symmetric: sym, Scheme: tpm2.TPMTECCScheme{Scheme: scheme, Details: details}, CurveID: tpm2.TPMECCCurve(r.u16())}
		if kdf := tpm2.TPMAlgID(r.u16()); kdf != tpm2.TPMAlgNull {
			return nil, fmt.Errorf("TPMT_PUBLIC: an ECC signing key with a KDF (0x%04x)", uint16(kdf))
		}
		parms.KDF = tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull}
		p.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, parms)
		pt := &tpm2.TPMSECCPoint{}
		pt.X.Buffer, pt.Y.Buffer = r.sized(), r.sized()
		p.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, pt)
	}
	if err := r.end("TPMT_PUBLIC"); err != nil {
		return nil, err
	}
	return p, nil
}

func unmarshalPublic(b []byte) (*tpm2.TPMTPublic, error) {
	u, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil, fmt.Errorf("TPMT_PUBLIC: %v", err)
	}
	if err := canonical("TPMT_PUBLIC", tpm2.Marshal(u), b); err != nil {
		return nil, err
	}
	return u, nil
}
