// Package wire is the attestation service's HTTP protocol: the paths, the
// request and response bodies, the nonce's text form, how an EK is named,
// and the sealed credential's format with [Open]. Package
// attest/service serves it and package attest/client speaks it; both
// import this package, so a host agent links neither the service nor the
// policy engine (attest, cipolicy, signing).
//
// Every request and response body is JSON; []byte fields are standard
// base64 (RFC 4648 section 4, padded), as encoding/json writes them.
// Paths are versioned: a change that breaks clients gets /v2.
//
// # Security
//
// The types here are data as sent: nothing in a decoded request or
// response has been checked. The service verifies evidence (package
// attest) before it believes any of it, and a host believes a credential
// only once [Open] has decrypted it with the secret its TPM released.
// [AttestResponse] is the host's view of the service's answer: the
// verdict and the checks, with the claims left as JSON.
package wire

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/codesignval/csv/attest/eventlog"
)

const (
	// PathNonce mints a nonce: POST a NonceRequest, get a NonceResponse.
	PathNonce = "/v1/nonce"
	// PathAttest judges evidence: POST an AttestRequest, get an
	// AttestResponse.
	PathAttest = "/v1/attest"
	// PathHealth answers 200 "ok" while the server takes requests, and 503
	// once it is shutting down.
	PathHealth = "/healthz"
)

// ResponseMediaType is the media type of an AttestResponse.
const ResponseMediaType = "application/vnd.codesignval.csv.attestation-response+json;version=1"

// Verdicts (attest.VerdictTrusted and attest.VerdictNotTrusted are
// these).
const (
	VerdictTrusted    = "trusted"
	VerdictNotTrusted = "not trusted"
)

// NonceRequest asks for a nonce bound to the host's identity: the nonce is
// valid only for evidence naming this AK and this EK, so a nonce seen on
// the wire is useless to another host.
type NonceRequest struct {
	// AKName is the TPM Name of the attestation key, in hex: its name
	// algorithm (2 bytes) and the digest of its TPMT_PUBLIC.
	AKName string `json:"ak_name"`
	// EKKeySHA256 is the SHA-256 of the endorsement key's public key as a
	// DER SubjectPublicKeyInfo, in hex (see [EKKeySHA256]).
	EKKeySHA256 string `json:"ek_key_sha256"`
}

// NonceResponse is a fresh nonce and what the host must quote with it.
type NonceResponse struct {
	// Nonce is the nonce, base64url without padding; the quotes' extraData
	// (qualifyingData) is its decoded bytes.
	Nonce string `json:"nonce"`
	// NonceID identifies the nonce in logs.
	NonceID string `json:"nonce_id"`
	// ExpiresAt is when the service stops accepting it.
	ExpiresAt time.Time `json:"expires_at"`
	// PCRSelections are the banks and PCRs to quote, one quote per bank.
	PCRSelections []PCRSelection `json:"pcr_selections"`
}

// PCRSelection is a bank and PCRs of it.
type PCRSelection struct {
	// Bank is sha1, sha256, sha384 or sha512.
	Bank string `json:"bank"`
	PCRs []int  `json:"pcrs"`
}

func (s PCRSelection) String() string { return fmt.Sprintf("%s PCRs %v", s.Bank, s.PCRs) }

// AttestRequest is a host's evidence.
type AttestRequest struct {
	// Nonce is NonceResponse.Nonce, as given.
	Nonce string `json:"nonce"`
	// EventLog is the raw TCG event log.
	EventLog []byte `json:"event_log"`
	// Quotes are one TPM2 quote per selected bank.
	Quotes []QuoteJSON `json:"quotes"`
	// PCRs, optional but recommended, are the PCR values read from the TPM
	// with the quotes: bank, then PCR index (decimal), then hex. Without
	// them every quoted PCR must be replayable from the log.
	PCRs map[string]map[string]string `json:"pcrs,omitempty"`
	// AKPublic is the attestation key's TPMT_PUBLIC (or TPM2B_PUBLIC): the
	// credential is made for its Name. Required.
	AKPublic []byte `json:"ak_public"`
	// AKCertificate, optional, is a DER certificate for the AK that must
	// chain to the service's AK roots.
	AKCertificate []byte `json:"ak_certificate,omitempty"`
	// EKPublic is the endorsement key's TPMT_PUBLIC (or TPM2B_PUBLIC), and
	// EKCertificate its DER certificate: give one or both (the public area
	// is needed for EKs made from other than the TCG's low-range templates).
	EKPublic      []byte `json:"ek_public,omitempty"`
	EKCertificate []byte `json:"ek_certificate,omitempty"`
}

// QuoteJSON is one quote: the TPMS_ATTEST the TPM signed and its
// TPMT_SIGNATURE.
type QuoteJSON struct {
	Attest    []byte `json:"attest"`
	Signature []byte `json:"signature"`
}

// AttestResponse is the service's decision as a host reads it. The
// service writes the same fields (attest/service.AttestResponse, whose
// Result is the full attest.Result); here Result keeps what a host acts
// on and leaves the claims and workarounds as JSON.
type AttestResponse struct {
	MediaType string `json:"media_type"`
	NonceID   string `json:"nonce_id,omitempty"`
	// Verdict is VerdictTrusted or VerdictNotTrusted.
	Verdict string `json:"verdict"`
	Trusted bool   `json:"trusted"`
	// Error says why a request was not judged at all (malformed JSON, a
	// missing field, the server busy); Result is then absent.
	Error string `json:"error,omitempty"`
	// Result holds every check (the service's own first: nonce, ak, ek,
	// pcr-selection; then the verifier's and the policy's), the claims of
	// verified evidence, the policies that judged and the workarounds
	// used, as csv attest verify --format json writes them.
	Result *Result `json:"result,omitempty"`
	// Credential is present only when Trusted.
	Credential *Credential `json:"credential,omitempty"`

	// Raw is the response as received, set by package client, for callers
	// that print or store it verbatim.
	Raw json.RawMessage `json:"-"`
}

// Result is an attest.Result as a host reads it: the same JSON, with
// Claims and Workarounds kept as they came (decode them, or the whole
// Result, into an attest.Result to use them).
type Result struct {
	MediaType   string          `json:"media_type"`
	Verdict     string          `json:"verdict"`
	Trusted     bool            `json:"trusted"`
	Policy      *PolicyRef      `json:"policy,omitempty"`
	CIPolicies  []PolicyRef     `json:"ci_policies,omitempty"`
	Checks      []Check         `json:"checks"`
	Claims      json.RawMessage `json:"claims"`
	Workarounds json.RawMessage `json:"workarounds"`
}

// PolicyRef identifies a policy that judged (attest.PolicyRef).
type PolicyRef struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

// Check is one check and its outcome (attest.Check).
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// ErrorResponse is the body of an error on /v1/nonce (and of errors that
// happen before a request reaches a handler).
type ErrorResponse struct {
	Error string `json:"error"`
}

// DecodeNonce returns the bytes NonceResponse.Nonce stands for: what a
// host puts in its quotes' qualifying data.
func DecodeNonce(s string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 || len(raw) > 64 {
		return nil, errors.New("service: the nonce is not 1 to 64 bytes of base64url")
	}
	return raw, nil
}

// EKKeySHA256 returns the SHA-256 of a public key's DER
// SubjectPublicKeyInfo: how the service names an EK (in allowlists, logs
// and nonce bindings) whether it came as a TPMT_PUBLIC or a certificate.
func EKKeySHA256(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(der), nil
}

// PCRsToJSON writes PCR values as AttestRequest.PCRs wants them.
func PCRsToJSON(p eventlog.PCRs) map[string]map[string]string {
	if p == nil {
		return nil
	}
	out := map[string]map[string]string{}
	for alg, bank := range p {
		m := map[string]string{}
		for i, v := range bank {
			if v != nil {
				m[strconv.Itoa(i)] = hex.EncodeToString(v)
			}
		}
		out[alg.String()] = m
	}
	return out
}
