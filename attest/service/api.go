package service

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
)

// The HTTP API. Every request and response body is JSON; []byte fields are
// standard base64 (RFC 4648 section 4, padded), as encoding/json writes
// them. Paths are versioned: a change that breaks clients gets /v2.
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

// AttestResponse is the service's decision.
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

	// Raw is the response as received, set by package client, for callers
	// that print or store it verbatim.
	Raw json.RawMessage `json:"-"`

	// rawClaims are Result.Claims, encoded (by the service).
	rawClaims json.RawMessage
}

// Credential is the sealed post-attestation credential: a random 32-byte
// secret wrapped with TPM2_MakeCredential to the host's EK and its AK's
// Name, and the payload encrypted under that secret. Only the TPM that
// holds the EK, with the AK loaded, can run TPM2_ActivateCredential on
// IDObject and EncryptedSecret and recover the secret; [Open] then
// decrypts the payload.
type Credential struct {
	// Format is the payload's: "x509" (a DER certificate) or "token" (a
	// compact JWS).
	Format CredentialFormat `json:"format"`
	// IDObject is the TPM2B_ID_OBJECT's contents (credentialBlob of
	// TPM2_ActivateCredential); EncryptedSecret the
	// TPM2B_ENCRYPTED_SECRET's (secret).
	IDObject        []byte `json:"id_object"`
	EncryptedSecret []byte `json:"encrypted_secret"`
	// Ciphertext is a 12-byte nonce followed by AES-256-GCM of the payload
	// under the secret, with the additional data described at [Open].
	Ciphertext []byte `json:"ciphertext"`
	// ExpiresAt is the payload's end of validity.
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrorResponse is the body of an error on /v1/nonce (and of errors that
// happen before a request reaches a handler).
type ErrorResponse struct {
	Error string `json:"error"`
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
