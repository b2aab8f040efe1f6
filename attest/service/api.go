package service

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/wire"
)

// The HTTP API is package wire's: its paths, bodies and helpers are
// named here too, so callers of the service need not import it. Every
// request and response body is JSON; []byte fields are standard base64
// (RFC 4648 section 4, padded), as encoding/json writes them. Paths are
// versioned: a change that breaks clients gets /v2.
const (
	// PathNonce mints a nonce: POST a NonceRequest, get a NonceResponse.
	PathNonce = wire.PathNonce
	// PathAttest judges evidence: POST an AttestRequest, get an
	// AttestResponse.
	PathAttest = wire.PathAttest
	// PathHealth answers 200 "ok" while the server takes requests, and 503
	// once it is shutting down.
	PathHealth = wire.PathHealth
)

// ResponseMediaType is the media type of an AttestResponse.
const ResponseMediaType = wire.ResponseMediaType

type (
	// NonceRequest asks for a nonce bound to the host's identity (see
	// [wire.NonceRequest]).
	NonceRequest = wire.NonceRequest
	// NonceResponse is a fresh nonce and what the host must quote with it.
	NonceResponse = wire.NonceResponse
	// PCRSelection is a bank and PCRs of it.
	PCRSelection = wire.PCRSelection
	// AttestRequest is a host's evidence.
	AttestRequest = wire.AttestRequest
	// QuoteJSON is one quote: the TPMS_ATTEST the TPM signed and its
	// TPMT_SIGNATURE.
	QuoteJSON = wire.QuoteJSON
	// Credential is the sealed post-attestation credential (see
	// [wire.Credential] and [Open]).
	Credential = wire.Credential
	// ErrorResponse is the body of an error on /v1/nonce (and of errors
	// that happen before a request reaches a handler).
	ErrorResponse = wire.ErrorResponse
)

// DecodeNonce returns the bytes NonceResponse.Nonce stands for: what a
// host puts in its quotes' qualifying data.
func DecodeNonce(s string) ([]byte, error) { return wire.DecodeNonce(s) }

// PCRsToJSON writes PCR values as AttestRequest.PCRs wants them.
func PCRsToJSON(p eventlog.PCRs) map[string]map[string]string { return wire.PCRsToJSON(p) }

// AttestResponse is the service's decision. A host reads it as a
// [wire.AttestResponse]: the same fields and JSON, with a Result that
// leaves the claims as JSON (TestResponseMatchesWire keeps the two in
// step).
type AttestResponse struct {
	MediaType string `json:"media_type"`
	NonceID   string `json:"nonce_id,omitempty"`
	// Verdict is "trusted" or "not trusted" (attest.VerdictTrusted,
	// attest.VerdictNotTrusted).
	Verdict string `json:"verdict"`
	Trusted bool   `json:"trusted"`
	// Error says why a request was not judged at all (malformed JSON, a
	// missing field, the server busy); Result is then absent.
	Error string `json:"error,omitempty"`
	// Result holds every check (the service's own first: nonce, ak, ek,
	// pcr-selection; then the verifier's and the policy's), the claims of
	// verified evidence, the policies that judged and the workarounds
	// used, as csv attest verify --format json writes them.
	Result *attest.Result `json:"result,omitempty"`
	// Credential is present only when Trusted.
	Credential *Credential `json:"credential,omitempty"`

	// Raw is the response as received, for callers that print or store
	// it verbatim (package client sets wire.AttestResponse.Raw; it is
	// here so that the two types keep the same fields).
	Raw json.RawMessage `json:"-"`

	// rawClaims are Result.Claims, encoded (by the service).
	rawClaims json.RawMessage
}

// caps on the parts of a request, beyond the body cap.
const (
	maxQuotes       = 8
	maxQuoteBytes   = 16 << 10
	maxKeyBytes     = 4 << 10  // a TPMT_PUBLIC
	maxCertBytes    = 16 << 10 // an EK or AK certificate
	maxNonceLen     = 128      // base64url of a nonce
	maxPCRBanks     = 5
	maxNameHexBytes = 2 + 2*(2+64)
)

// pcrsFromJSON reads AttestRequest.PCRs.
func pcrsFromJSON(m map[string]map[string]string) (eventlog.PCRs, error) {
	if m == nil {
		return nil, nil
	}
	if len(m) > maxPCRBanks {
		return nil, fmt.Errorf("pcrs: %d banks (at most %d)", len(m), maxPCRBanks)
	}
	out := eventlog.PCRs{}
	for bank, vals := range m {
		alg, err := eventlog.ParseHashAlg(bank)
		if err != nil || alg.Hash() == 0 {
			return nil, fmt.Errorf("pcrs: unknown bank %q", bank)
		}
		if len(vals) > eventlog.NumPCRs {
			return nil, fmt.Errorf("pcrs: %s: %d PCRs (a TPM has %d)", bank, len(vals), eventlog.NumPCRs)
		}
		for k, h := range vals {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= eventlog.NumPCRs || strconv.Itoa(i) != k {
				return nil, fmt.Errorf("pcrs: %s: %q is not a PCR index (0-%d)", bank, k, eventlog.NumPCRs-1)
			}
			v, err := hex.DecodeString(h)
			if err != nil || len(v) != alg.Size() {
				return nil, fmt.Errorf("pcrs: %s PCR %d: want %d bytes of hex", bank, i, alg.Size())
			}
			out.Set(alg, i, v)
		}
	}
	return out, nil
}

// parseSelections checks configured selections and returns them sorted,
// with their banks.
func parseSelections(sels []PCRSelection) ([]PCRSelection, []eventlog.HashAlg, error) {
	if len(sels) == 0 {
		return nil, nil, fmt.Errorf("service: no PCRs to quote")
	}
	var out []PCRSelection
	var algs []eventlog.HashAlg
	seen := map[eventlog.HashAlg]bool{}
	for _, s := range sels {
		alg, err := eventlog.ParseHashAlg(s.Bank)
		if err != nil || alg.Hash() == 0 {
			return nil, nil, fmt.Errorf("service: PCR selection: unknown bank %q", s.Bank)
		}
		if seen[alg] {
			return nil, nil, fmt.Errorf("service: PCR selection: bank %s given twice", s.Bank)
		}
		seen[alg] = true
		if len(s.PCRs) == 0 {
			return nil, nil, fmt.Errorf("service: PCR selection: no PCRs for bank %s", s.Bank)
		}
		pcrs := append([]int(nil), s.PCRs...)
		sort.Ints(pcrs)
		for i, p := range pcrs {
			if p < 0 || p >= eventlog.NumPCRs {
				return nil, nil, fmt.Errorf("service: PCR selection: %s PCR %d does not exist", s.Bank, p)
			}
			if i > 0 && pcrs[i-1] == p {
				return nil, nil, fmt.Errorf("service: PCR selection: %s PCR %d given twice", s.Bank, p)
			}
		}
		out = append(out, PCRSelection{Bank: alg.String(), PCRs: pcrs})
		algs = append(algs, alg)
	}
	return out, algs, nil
}

// DefaultPCRs are the PCRs quoted unless Config.PCRs says otherwise: the
// SHA-256 bank's PCRs 0-9 (firmware, Secure Boot, boot loader and what it
// measures) and 12-14 (Windows' boot configuration; shim's MOK lists).
func DefaultPCRs() []PCRSelection {
	return []PCRSelection{{Bank: "sha256", PCRs: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14}}}
}
