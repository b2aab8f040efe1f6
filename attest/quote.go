package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
)

// Quote is one TPM2 quote: the TPMS_ATTEST structure the TPM signed, and
// its TPMT_SIGNATURE.
type Quote struct {
	Attest    []byte
	Signature []byte
}

// maxQuoteSize caps a TPMS_ATTEST or TPMT_SIGNATURE (a TPM command buffer
// is at most a few kilobytes).
const maxQuoteSize = 16 << 10

// Selection is the PCRs a quote covers in one bank.
type Selection struct {
	Alg  eventlog.HashAlg
	PCRs []int
}

func (s Selection) String() string { return fmt.Sprintf("%s PCRs %s", s.Alg, pcrList(s.PCRs)) }

// QuoteInfo is what a verified quote says.
type QuoteInfo struct {
	Selections []Selection
	// SignatureScheme is RSASSA, RSAPSS or ECDSA; Hash the signing hash,
	// which the PCR digest is also computed with.
	SignatureScheme string
	Hash            eventlog.HashAlg
	// ClockInfo and FirmwareVersion are as the TPM reported them.
	Clock           uint64
	ResetCount      uint32
	RestartCount    uint32
	Safe            bool
	FirmwareVersion uint64
}

// parsedQuote is a quote whose structures decoded.
type parsedQuote struct {
	// attest is nil when magic is not TPM_GENERATED_VALUE.
	attest *tpm2.TPMSAttest
	magic  uint32
	info   *tpm2.TPMSQuoteInfo
	sig    *tpm2.TPMTSignature
	scheme string
	hash   eventlog.HashAlg
}

// parseQuote decodes a quote's TPMS_ATTEST and TPMT_SIGNATURE. A failure
// means the input is not a quote at all.
func parseQuote(q Quote) (p *parsedQuote, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("internal error decoding it: %w", panicerr.New(r))
		}
	}()
	if len(q.Attest) > maxQuoteSize || len(q.Signature) > maxQuoteSize {
		return nil, fmt.Errorf("over the limit of %d bytes", maxQuoteSize)
	}
	p = &parsedQuote{}
	if p.sig, err = decodeSignature(q.Signature); err != nil {
		return nil, err
	}
	if len(q.Attest) < 6 {
		return nil, fmt.Errorf("TPMS_ATTEST: %d bytes", len(q.Attest))
	}
	if m := binary.BigEndian.Uint32(q.Attest); m != uint32(tpm2.TPMGeneratedValue) {
		// The structure check reports it.
		p.magic = m
		return p, nil
	}
	if p.attest, err = decodeAttest(q.Attest); err != nil {
		return nil, err
	}
	return p, nil
}

// hashOf maps a TPM hash algorithm to the bank type.
func hashOf(a tpm2.TPMIAlgHash) (eventlog.HashAlg, error) {
	h := eventlog.HashAlg(a)
	if h.Hash() == 0 {
		return 0, fmt.Errorf("hash algorithm 0x%04x is not supported", uint16(a))
	}
	return h, nil
}

// checkSignature verifies the quote's signature with the AK.
func (p *parsedQuote) checkSignature(attest []byte, ak *AK, allowSHA1 bool) error {
	var digestAlg tpm2.TPMIAlgHash
	var sigBytes []byte
	switch p.sig.SigAlg {
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		var s *tpm2.TPMSSignatureRSA
		var err error
		if p.sig.SigAlg == tpm2.TPMAlgRSASSA {
			p.scheme = "RSASSA"
			s, err = p.sig.Signature.RSASSA()
		} else {
			p.scheme = "RSAPSS"
			s, err = p.sig.Signature.RSAPSS()
		}
		if err != nil {
			return err
		}
		if _, ok := ak.Public.(*rsa.PublicKey); !ok {
			return fmt.Errorf("an %s signature, but the AK is not an RSA key", p.scheme)
		}
		digestAlg, sigBytes = s.Hash, s.Sig.Buffer
	case tpm2.TPMAlgECDSA:
		p.scheme = "ECDSA"
		s, err := p.sig.Signature.ECDSA()
		if err != nil {
			return err
		}
		if _, ok := ak.Public.(*ecdsa.PublicKey); !ok {
			return fmt.Errorf("an ECDSA signature, but the AK is not an ECC key")
		}
		digestAlg = s.Hash
		sigBytes = asn1Signature(s.SignatureR.Buffer, s.SignatureS.Buffer)
	default:
		return fmt.Errorf("signature scheme 0x%04x is not supported (want RSASSA, RSAPSS or ECDSA)", uint16(p.sig.SigAlg))
	}
	h, err := hashOf(digestAlg)
	if err != nil {
		return err
	}
	if h == eventlog.SHA1 && !allowSHA1 {
		return fmt.Errorf("the quote is signed with SHA-1, which is refused (AllowSHA1Unsafe accepts it)")
	}
	p.hash = h
	if ak.TPMTPublic != nil {
		if err := schemeAllowed(ak.TPMTPublic, p.sig.SigAlg, digestAlg); err != nil {
			return err
		}
	}
	kind := map[string]string{"RSASSA": "RSA", "RSAPSS": "RSA-PSS", "ECDSA": "ECDSA"}[p.scheme]
	if err := signing.CheckDigestSignature(ak.Public, kind, h.Hash(), attest, sigBytes); err != nil {
		return fmt.Errorf("%s-%s signature does not verify with the AK", p.scheme, h)
	}
	return nil
}

// schemeAllowed refuses a signature the AK's own scheme excludes: a TPM
// key with a fixed scheme signs with that scheme only.
func schemeAllowed(pub *tpm2.TPMTPublic, alg tpm2.TPMIAlgSigScheme, h tpm2.TPMIAlgHash) error {
	var scheme tpm2.TPMIAlgSigScheme
	var hash tpm2.TPMIAlgHash
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		d, err := pub.Parameters.RSADetail()
		if err != nil {
			return err
		}
		scheme = tpm2.TPMIAlgSigScheme(d.Scheme.Scheme)
		switch scheme {
		case tpm2.TPMAlgRSASSA:
			s, err := d.Scheme.Details.RSASSA()
			if err == nil {
				hash = s.HashAlg
			}
		case tpm2.TPMAlgRSAPSS:
			s, err := d.Scheme.Details.RSAPSS()
			if err == nil {
				hash = s.HashAlg
			}
		}
	case tpm2.TPMAlgECC:
		d, err := pub.Parameters.ECCDetail()
		if err != nil {
			return err
		}
		scheme = tpm2.TPMIAlgSigScheme(d.Scheme.Scheme)
		if scheme == tpm2.TPMAlgECDSA {
			if s, err := d.Scheme.Details.ECDSA(); err == nil {
				hash = s.HashAlg
			}
		}
	}
	if scheme == tpm2.TPMAlgNull || scheme == 0 {
		return nil
	}
	if scheme != alg || (hash != 0 && hash != h) {
		return fmt.Errorf("the signature's scheme (0x%04x, hash 0x%04x) is not the AK's (0x%04x, hash 0x%04x)", uint16(alg), uint16(h), uint16(scheme), uint16(hash))
	}
	return nil
}

func asn1Signature(r, s []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(r))
		b.AddASN1BigInt(new(big.Int).SetBytes(s))
	})
	return b.BytesOrPanic()
}

// checkStructure checks that the TPM made the structure and that it is a
// quote.
func (p *parsedQuote) checkStructure() error {
	if p.attest == nil {
		return fmt.Errorf("magic 0x%08x is not TPM_GENERATED_VALUE: the TPM did not make this structure", p.magic)
	}
	if p.attest.Type != tpm2.TPMSTAttestQuote {
		return fmt.Errorf("attestation type 0x%04x is not TPM_ST_ATTEST_QUOTE", uint16(p.attest.Type))
	}
	info, err := p.attest.Attested.Quote()
	if err != nil {
		return err
	}
	p.info = info
	return nil
}

func (p *parsedQuote) checkNonce(nonce []byte) error {
	got := p.attest.ExtraData.Buffer
	if len(got) != len(nonce) || subtle.ConstantTimeCompare(got, nonce) != 1 {
		return fmt.Errorf("extraData %x is not the nonce %x: the quote was made for another request", got, nonce)
	}
	return nil
}

// selections decodes the quoted PCR selection.
func (p *parsedQuote) selections() ([]Selection, error) {
	var out []Selection
	seen := map[eventlog.HashAlg]bool{}
	for _, s := range p.info.PCRSelect.PCRSelections {
		alg, err := hashOf(s.Hash)
		if err != nil {
			return nil, fmt.Errorf("PCR selection: %v", err)
		}
		if seen[alg] {
			return nil, fmt.Errorf("PCR selection lists the %s bank twice", alg)
		}
		seen[alg] = true
		sel := Selection{Alg: alg}
		for i, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) == 0 {
					continue
				}
				pcr := i*8 + bit
				if pcr >= eventlog.NumPCRs {
					return nil, fmt.Errorf("PCR selection includes PCR %d, which a PC Client TPM does not have", pcr)
				}
				sel.PCRs = append(sel.PCRs, pcr)
			}
		}
		out = append(out, sel)
	}
	return out, nil
}

// maxCombinations caps the workaround combinations tried against one
// quote's PCR digest (at most a few are ever possible: see
// eventlog.Replay.Candidates).
const maxCombinations = 256

// matchDigest finds the PCR values that give the quoted PCR digest: the
// values given (PCRs read from the TPM, if the evidence carries them), or
// else the replay's candidates. It returns them as the values the replay
// must then be matched with.
func (p *parsedQuote) matchDigest(sels []Selection, given eventlog.PCRs, r *eventlog.Replay) (eventlog.PCRs, error) {
	h := p.hash.Hash().New()
	want := p.info.PCRDigest.Buffer
	out := eventlog.PCRs{}
	if given != nil {
		for _, s := range sels {
			for _, pcr := range s.PCRs {
				v := given.Get(s.Alg, pcr)
				if v == nil {
					return nil, fmt.Errorf("the quote covers %s PCR %d, whose value the evidence does not give", s.Alg, pcr)
				}
				h.Write(v)
				out.Set(s.Alg, pcr, v)
			}
		}
		if !bytes.Equal(h.Sum(nil), want) {
			return nil, fmt.Errorf("the PCR values given do not hash to the quoted PCR digest %x", want)
		}
		return out, nil
	}
	type slot struct {
		alg   eventlog.HashAlg
		pcr   int
		cands []eventlog.Candidate
	}
	var slots []slot
	combos := 1
	for _, s := range sels {
		for _, pcr := range s.PCRs {
			c := r.Candidates(s.Alg, pcr)
			if len(c) == 0 {
				_, why := r.Value(s.Alg, pcr)
				return nil, fmt.Errorf("the quote covers %s PCR %d, which the log cannot replay: %s", s.Alg, pcr, why)
			}
			slots = append(slots, slot{s.Alg, pcr, c})
			combos *= len(c)
			if combos > maxCombinations {
				return nil, fmt.Errorf("more than %d combinations of workarounds to try", maxCombinations)
			}
		}
	}
	idx := make([]int, len(slots))
	for n := 0; n < combos; n++ {
		h.Reset()
		for i, s := range slots {
			h.Write(s.cands[idx[i]].Value)
		}
		if bytes.Equal(h.Sum(nil), want) {
			for i, s := range slots {
				out.Set(s.alg, s.pcr, s.cands[idx[i]].Value)
			}
			return out, nil
		}
		for i := range idx { // next combination
			idx[i]++
			if idx[i] < len(slots[i].cands) {
				break
			}
			idx[i] = 0
		}
	}
	return nil, fmt.Errorf("the replayed log does not hash to the quoted PCR digest %x (a PCR the quote covers is measured by events the log does not hold, or the log was altered; give the PCR values read from the TPM to tell which)", want)
}

func (p *parsedQuote) quoteInfo(sels []Selection) QuoteInfo {
	return QuoteInfo{
		Selections: sels, SignatureScheme: p.scheme, Hash: p.hash,
		Clock: p.attest.ClockInfo.Clock, ResetCount: p.attest.ClockInfo.ResetCount, RestartCount: p.attest.ClockInfo.RestartCount,
		Safe: bool(p.attest.ClockInfo.Safe), FirmwareVersion: p.attest.FirmwareVersion,
	}
}
