package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// EAR (EAT Attestation Result, draft-ietf-rats-ear) is how csv states a
// Result for relying parties that speak the IETF RATS attestation-result
// format (Veraison, Confidential Containers): a JWT claims set with the
// EAT profile, the issue time, the verifier's identity and, per attester
// ("submodule"), an AR4SI trustworthiness vector (draft-ietf-rats-ar4si
// section 2.3) with the overall status and the appraisal policy.
//
// csv writes the claims and the JWS itself, with the standard library;
// github.com/veraison/ear, the library Veraison's verifiers and relying
// parties use, is the oracle of csv's tests (its Verify accepts what csv
// signs). The profile is the one that library implements and checks.
//
// One submodule, EARSubmodule, carries the host's measured boot: csv
// attests one platform, through its TPM. docs/attest.md ("EAR results")
// has the table of which check sets which claim; [NewEAR] implements it.
const (
	// EARProfile is the "eat_profile" of csv's EARs: the EAR profile of
	// github.com/veraison/ear (v1.1), which its parser requires.
	EARProfile = "tag:github.com,2023:veraison/ear"
	// EARSubmodule is the submodule (attester) of csv's EARs: the host's
	// measured boot, attested by its TPM.
	EARSubmodule = "csv-boot"
	// EARDeveloper is the "developer" of csv's "ear.verifier-id".
	EARDeveloper = "https://github.com/codesignval/csv"
)

// TrustClaim is an AR4SI trustworthiness claim value
// (draft-ietf-rats-ar4si section 2.3): -1 to 1 make no claim, 2 to 31
// affirm, 32 to 95 warn, 96 to 127 contraindicate, and the negative values
// (for private use) mirror them: -2 to -32 affirm, and so on.
type TrustClaim int8

// The claim values csv uses.
const (
	NoClaim TrustClaim = 0
	// CryptoValidationFailed (any claim): the evidence's signature, or
	// what it must carry, failed its check.
	CryptoValidationFailed TrustClaim = 99

	// Instance identity.
	TrustworthyInstance  TrustClaim = 2
	UnrecognizedInstance TrustClaim = 97

	// Configuration.
	ApprovedConfig      TrustClaim = 2
	UnsupportableConfig TrustClaim = 96

	// Executables.
	ApprovedBoot           TrustClaim = 3
	UnrecognizedRuntime    TrustClaim = 33
	ContraindicatedRuntime TrustClaim = 96

	// Hardware.
	GenuineHardware      TrustClaim = 2
	UnrecognizedHardware TrustClaim = 97
)

// Tier returns the claim's trust tier.
func (c TrustClaim) Tier() TrustTier {
	switch a := abs(int(c)); {
	case a <= 1:
		return TierNone
	case a <= 31, a == 32 && c < 0:
		return TierAffirming
	case a <= 95, a == 96 && c < 0:
		return TierWarning
	}
	return TierContraindicated
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// TrustTier is an EAR status: the tier of a claim, or of a whole
// appraisal.
type TrustTier int8

// Trust tiers (draft-ietf-rats-ar4si section 2.3.1), by their values.
const (
	TierNone            TrustTier = 0
	TierAffirming       TrustTier = 2
	TierWarning         TrustTier = 32
	TierContraindicated TrustTier = 96
)

// String returns the tier's name.
func (t TrustTier) String() string {
	switch t {
	case TierNone:
		return "none"
	case TierAffirming:
		return "affirming"
	case TierWarning:
		return "warning"
	case TierContraindicated:
		return "contraindicated"
	}
	return fmt.Sprintf("TrustTier(%d)", int8(t))
}

// rank orders the tiers from best (none: nothing said) to worst.
func (t TrustTier) rank() int {
	switch t {
	case TierNone:
		return 0
	case TierAffirming:
		return 1
	case TierWarning:
		return 2
	}
	return 3
}

// MarshalJSON writes the tier's name, as EAR's JSON serialization does.
func (t TrustTier) MarshalJSON() ([]byte, error) {
	switch t {
	case TierNone, TierAffirming, TierWarning, TierContraindicated:
		return json.Marshal(t.String())
	}
	return nil, fmt.Errorf("attest: %s is not a trust tier", t)
}

// UnmarshalJSON reads a tier's name (or value).
func (t *TrustTier) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int8
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("attest: ear.status %s is not a trust tier", b)
		}
		s = TrustTier(n).String()
	}
	for _, c := range []TrustTier{TierNone, TierAffirming, TierWarning, TierContraindicated} {
		if c.String() == s {
			*t = c
			return nil
		}
	}
	return fmt.Errorf("attest: ear.status %q is not a trust tier", s)
}

// TrustVector is the AR4SI trustworthiness vector (draft-ietf-rats-ar4si
// section 2.3), as EAR's JSON serialization names its claims. Zero is no
// claim.
type TrustVector struct {
	InstanceIdentity TrustClaim `json:"instance-identity,omitempty"`
	Configuration    TrustClaim `json:"configuration,omitempty"`
	Executables      TrustClaim `json:"executables,omitempty"`
	FileSystem       TrustClaim `json:"file-system,omitempty"`
	Hardware         TrustClaim `json:"hardware,omitempty"`
	RuntimeOpaque    TrustClaim `json:"runtime-opaque,omitempty"`
	StorageOpaque    TrustClaim `json:"storage-opaque,omitempty"`
	SourcedData      TrustClaim `json:"sourced-data,omitempty"`
}

func (v *TrustVector) claims() []TrustClaim {
	return []TrustClaim{v.InstanceIdentity, v.Configuration, v.Executables, v.FileSystem, v.Hardware,
		v.RuntimeOpaque, v.StorageOpaque, v.SourcedData}
}

// EARAppraisal is one submodule's appraisal.
type EARAppraisal struct {
	Status      TrustTier    `json:"ear.status"`
	TrustVector *TrustVector `json:"ear.trustworthiness-vector,omitempty"`
	// AppraisalPolicyID names the policies that judged (see
	// [EARPolicyID]).
	AppraisalPolicyID string `json:"ear.appraisal-policy-id,omitempty"`
}

// EARVerifierID is "ear.verifier-id" (draft-ietf-rats-ar4si section
// 2.2.2): the verifier's build and its developer.
type EARVerifierID struct {
	Build     string `json:"build"`
	Developer string `json:"developer"`
}

// EAR is an EAT attestation result's claims set. Issuer to ID are JWT
// registered claims, which the attestation service's EAR credentials
// carry (the command line's do not: they do not expire).
type EAR struct {
	Profile    string                   `json:"eat_profile"`
	IssuedAt   int64                    `json:"iat"`
	VerifierID EARVerifierID            `json:"ear.verifier-id"`
	Nonce      string                   `json:"eat_nonce,omitempty"`
	Submods    map[string]*EARAppraisal `json:"submods"`

	Issuer    string `json:"iss,omitempty"`
	Subject   string `json:"sub,omitempty"`
	NotBefore int64  `json:"nbf,omitempty"`
	Expires   int64  `json:"exp,omitempty"`
	ID        string `json:"jti,omitempty"`
}

// EAROptions configure NewEAR.
type EAROptions struct {
	// Build is the verifier's build, for "ear.verifier-id" (csv's name
	// and version, "csv 1.4.0"). Required.
	Build string
	// Nonce, if it is 6 to 64 bytes, becomes "eat_nonce" (base64url):
	// the relying party's challenge the quotes carried (EAT nonces are 8
	// to 64 bytes; EAR's JSON form is 8 to 88 characters).
	Nonce []byte
	// Now is the clock, for "iat" (default time.Now).
	Now func() time.Time
}

// earRow says which claim a check sets, and to what when it passes and
// when it fails.
type earRow struct {
	claim      func(*TrustVector) *TrustClaim
	pass, fail TrustClaim
}

func instanceIdentity(v *TrustVector) *TrustClaim { return &v.InstanceIdentity }
func configuration(v *TrustVector) *TrustClaim    { return &v.Configuration }
func executables(v *TrustVector) *TrustClaim      { return &v.Executables }
func hardware(v *TrustVector) *TrustClaim         { return &v.Hardware }

// earTable maps the checks of a Result (by name, "quote[N]." read as
// "quote.") to claims. docs/attest.md ("EAR results") shows it; keep the
// two alike. "ek", "nonce", "ak-certificate" and "pcr-selection" are the
// attestation service's checks (package attest/service).
var earTable = map[string]earRow{
	"ak":              {instanceIdentity, TrustworthyInstance, UnrecognizedInstance},
	"ak-certificate":  {instanceIdentity, TrustworthyInstance, UnrecognizedInstance},
	"quote.signature": {instanceIdentity, TrustworthyInstance, CryptoValidationFailed},
	"quote.attest":    {instanceIdentity, TrustworthyInstance, CryptoValidationFailed},
	"quote.nonce":     {instanceIdentity, TrustworthyInstance, CryptoValidationFailed},
	"nonce":           {instanceIdentity, TrustworthyInstance, CryptoValidationFailed},
	"ek":              {hardware, GenuineHardware, UnrecognizedHardware},
	// The log must replay to the quoted PCRs: without it nothing is known
	// of the boot's configuration or code.
	"quote.pcrs":    {configuration, ApprovedConfig, CryptoValidationFailed},
	"replay":        {configuration, ApprovedConfig, CryptoValidationFailed},
	"pcr-selection": {configuration, ApprovedConfig, UnsupportableConfig},
	// Secure Boot, its databases, debugging and Windows' code integrity
	// are the platform's configuration.
	"policy.secure-boot":    {configuration, ApprovedConfig, UnsupportableConfig},
	"policy.pk":             {configuration, ApprovedConfig, UnsupportableConfig},
	"policy.kek":            {configuration, ApprovedConfig, UnsupportableConfig},
	"policy.db":             {configuration, ApprovedConfig, UnsupportableConfig},
	"policy.dbx":            {configuration, ApprovedConfig, UnsupportableConfig},
	"policy.debugging":      {configuration, ApprovedConfig, UnsupportableConfig},
	"policy.code-integrity": {configuration, ApprovedConfig, UnsupportableConfig},
	// The boot components judged by the code integrity policy: approved
	// boot (3), since csv judges the boot, not what runs after it.
	"policy.boot-components": {executables, ApprovedBoot, ContraindicatedRuntime},
	// The code integrity policies Windows booted with (its SIPA policy
	// events, policy.ci-policies) are the platform's configuration.
	"policy.ci-policies": {configuration, ApprovedConfig, UnsupportableConfig},
	// A Secure Boot authority or boot component the host's own dbx
	// revokes ran: the boot's code is contraindicated. Passed, it
	// claims nothing: it does not say the boot's code is approved.
	"policy.not-revoked": {executables, NoClaim, ContraindicatedRuntime},
}

// quoteCheck matches the per-quote checks' names.
var quoteCheck = regexp.MustCompile(`^quote\[[0-9]+\]\.`)

// EARPolicyID names the policies of a Result, for
// "ear.appraisal-policy-id": "csv:attest/NAME@sha256:HEX", then
// ";ci/NAME@sha256:HEX" per code integrity policy, names percent-escaped
// (RFC 3986 path segments). Empty without an attestation policy.
func EARPolicyID(r *Result) string {
	if r.Policy == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "csv:attest/%s@sha256:%s", url.PathEscape(r.Policy.Name), r.Policy.SHA256)
	for _, p := range r.CIPolicies {
		fmt.Fprintf(&b, ";ci/%s@sha256:%s", url.PathEscape(p.Name), p.SHA256)
	}
	return b.String()
}

// NewEAR states a Result as an EAR, with one submodule (EARSubmodule)
// whose trustworthiness vector comes from the Result's checks (each check
// sets one claim: its pass value if it passed, its fail value if not; a
// claim several checks set takes the worst), and whose status is the
// worst tier of the vector, and contraindicated whenever the Result is
// not trusted (a failed check the table does not know cannot pass for a
// trusted host). Boot components the code integrity policy blocks only in
// audit mode make executables 33 (unrecognized, a warning). Checks not
// made set nothing: the claim is absent (zero), not affirming.
func NewEAR(r *Result, opts EAROptions) (*EAR, error) {
	if r == nil {
		return nil, errors.New("attest: no result to state as an EAR")
	}
	if opts.Build == "" {
		return nil, errors.New("attest: the EAR needs the verifier's build (EAROptions.Build)")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	tv := &TrustVector{}
	set := func(c *TrustClaim, v TrustClaim) {
		if v.Tier().rank() > c.Tier().rank() {
			*c = v
		}
	}
	for _, c := range r.Checks {
		row, ok := earTable[quoteCheck.ReplaceAllLiteralString(c.Name, "quote.")]
		if !ok {
			continue
		}
		v := row.pass
		if !c.Passed {
			v = row.fail
		}
		set(row.claim(tv), v)
	}
	if r.Claims != nil && tv.Executables.Tier() == TierAffirming {
		for _, bc := range r.Claims.BootComponents {
			if bc.Verdict == "blocked (audit)" {
				set(&tv.Executables, UnrecognizedRuntime)
			}
		}
	}
	status := TierAffirming
	if !r.Trusted {
		status = TierContraindicated
	}
	for _, c := range tv.claims() {
		if c.Tier().rank() > status.rank() {
			status = c.Tier()
		}
	}
	e := &EAR{
		Profile:    EARProfile,
		IssuedAt:   opts.Now().Unix(),
		VerifierID: EARVerifierID{Build: opts.Build, Developer: EARDeveloper},
		Submods:    map[string]*EARAppraisal{EARSubmodule: {Status: status, TrustVector: tv, AppraisalPolicyID: EARPolicyID(r)}},
	}
	if n := len(opts.Nonce); n >= 6 && n <= 64 {
		e.Nonce = base64.RawURLEncoding.EncodeToString(opts.Nonce)
	}
	return e, nil
}

// EARAlgorithm returns the JWS algorithm csv signs EARs with for a public
// key: ES256, ES384 or ES512 for ECDSA P-256, P-384 and P-521, PS256 for
// RSA of 2048 bits or more, EdDSA for Ed25519.
func EARAlgorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return "PS256", nil
		}
	case ed25519.PublicKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("attest: cannot sign an EAR with a %s key (want ECDSA P-256/384/521, RSA of 2048 bits or more, or Ed25519)", keyName(pub))
}

func keyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// Sign returns the EAR as a JWT (a compact JWS, RFC 7515 and 7519) signed
// with key, with the algorithm [EARAlgorithm] gives, and the header
// {"alg", "typ": "JWT"} and "kid" if kid is not empty.
func (e *EAR) Sign(key crypto.Signer, kid string) ([]byte, error) {
	alg, err := EARAlgorithm(key.Public())
	if err != nil {
		return nil, err
	}
	if len(e.Submods) == 0 {
		return nil, errors.New("attest: the EAR has no submodule")
	}
	hdr := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding
	msg := enc.AppendEncode(append(enc.AppendEncode(nil, h), '.'), body)
	var sig []byte
	switch alg {
	case "EdDSA":
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	case "PS256":
		sig, err = key.Sign(rand.Reader, digest(crypto.SHA256, msg), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		sig, err = signECDSA(key, alg, msg)
	}
	if err != nil {
		return nil, fmt.Errorf("attest: signing the EAR: %w", err)
	}
	return enc.AppendEncode(append(msg, '.'), sig), nil
}

func digest(h crypto.Hash, msg []byte) []byte {
	d := h.New()
	d.Write(msg)
	return d.Sum(nil)
}

// signECDSA signs msg and returns the JWS form of the signature: R and S,
// each as long as the curve's order (RFC 7518 section 3.4), not ASN.1.
func signECDSA(key crypto.Signer, alg string, msg []byte) ([]byte, error) {
	h, size := crypto.SHA256, 32
	switch alg {
	case "ES384":
		h, size = crypto.SHA384, 48
	case "ES512":
		h, size = crypto.SHA512, 66
	}
	der, err := key.Sign(rand.Reader, digest(h, msg), h)
	if err != nil {
		return nil, err
	}
	var r, s big.Int
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !in.Empty() || !seq.Empty() ||
		r.Sign() <= 0 || s.Sign() <= 0 || r.BitLen() > size*8 || s.BitLen() > size*8 {
		return nil, errors.New("the key returned a malformed ECDSA signature")
	}
	return append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...), nil
}
