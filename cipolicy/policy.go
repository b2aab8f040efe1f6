// Package cipolicy is the code integrity policy engine: the policy model,
// loading it from the project's YAML format, linting it, and judging a
// [Subject] (the facts about one piece of code) with [Set.Evaluate].
//
// The semantics follow Windows App Control (WDAC) code integrity policies:
//
//   - Rules allow or deny. A deny rule that matches always wins; otherwise any
//     matching allow rule admits the subject; a subject that matches nothing is
//     blocked. A subject that could not be read or parsed is blocked.
//   - Hash rules match the flat SHA256 of a file, or for PE files the
//     Authenticode image hash (SHA256 or SHA1).
//   - A rule may be limited to path globs (matched against the subject's
//     slash-separated path relative to the validated root, with ** for any
//     number of directories) and to scenarios.
//   - A policy enforces or only audits. Several policies combine as WDAC
//     does: every base policy must allow a subject, and a supplemental policy
//     adds allow rules to its base.
//
// # Security
//
// The package trusts nothing it is given: policy files are parsed with size
// and depth caps and strict decoding (unknown fields, malformed hashes and
// duplicate rule ids are errors). It does not open files, parse binaries or
// verify signatures: a Subject's digests and signatures are facts established
// by the caller (package csv, package signing), and Evaluate trusts them.
package cipolicy

import (
	"crypto"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/codesignval/csv/signing"
)

// Action is what a rule does when it matches.
type Action string

// Actions.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
)

// Mode says whether a policy's blocks are enforced.
type Mode string

// Modes.
const (
	// Enforce blocks what the policy does not allow.
	Enforce Mode = "enforce"
	// Audit reports what would be blocked and blocks nothing.
	Audit Mode = "audit"
)

// PolicyType distinguishes base and supplemental policies.
type PolicyType string

// Policy types.
const (
	Base         PolicyType = "base"
	Supplemental PolicyType = "supplemental"
	// AppIDTagging is a WDAC AppID tagging policy: it tags processes for
	// other features and allows or blocks nothing, so a Set judges nothing
	// with it.
	AppIDTagging PolicyType = "appid-tagging"
)

// Scenario is the context code runs in. The names follow WDAC's signing
// scenarios (user mode 12, kernel mode 131) plus boot, for boot components
// judged by the attestation verifier.
type Scenario string

// Scenarios.
const (
	ScenarioUser   Scenario = "user"
	ScenarioKernel Scenario = "kernel"
	ScenarioBoot   Scenario = "boot"
	// ScenarioBuild, in a rule's scope only, stands for user and kernel: the
	// scenarios of a build's output.
	ScenarioBuild Scenario = "build"
)

// ParseScenario parses a scenario name.
func ParseScenario(s string) (Scenario, error) {
	switch sc := Scenario(s); sc {
	case ScenarioUser, ScenarioKernel, ScenarioBoot:
		return sc, nil
	}
	return "", fmt.Errorf("cipolicy: unknown scenario %q (want user, kernel or boot)", s)
}

// HashMatch is the matcher of a hash rule.
type HashMatch struct {
	Algorithm HashAlgorithm
	Value     []byte
}

// String returns "algorithm:hex".
func (h HashMatch) String() string { return string(h.Algorithm) + ":" + hex.EncodeToString(h.Value) }

// Rule is one allow or deny rule. Exactly one matcher (Hash, Signer, File)
// is set, or Unsupported says why the rule cannot be judged.
type Rule struct {
	ID     string
	Action Action
	Hash   *HashMatch
	Signer *SignerMatch
	File   *FileAttrMatch
	// All matches every file in the rule's scope (WDAC's FileName="*"
	// rules, which pair a deny list with "allow everything else").
	All bool
	// Unsupported, if set, says why the rule cannot be judged from a file
	// (a WDAC FilePath rule, say). Such a rule never matches; lint lists it.
	Unsupported string
	// Except lists matchers that exempt a subject from the rule (WDAC
	// ExceptDenyRule on an allowed signer, ExceptAllowRule on a denied one):
	// the rule does not apply to a subject one matches. Each has one matcher
	// and no action. The YAML format writes them on allow rules only.
	Except    []Rule
	Paths     []string   // path globs; empty means any path
	Scenarios []Scenario // empty means any scenario
	// Formats limits the rule to files of these formats; empty means every
	// format the matcher applies to. A sha256 rule written for an ELF file
	// says formats [elf], so that PE files need not pay for a flat SHA256.
	Formats     []Format
	Description string
	// Line is where the rule starts in its policy file (0 if unknown).
	Line int
	// Comment is written above the rule as a YAML comment (not read back).
	Comment string
}

// Kind names the rule's matcher.
func (r *Rule) Kind() string {
	switch {
	case r.Unsupported != "":
		return "unsupported"
	case r.Hash != nil:
		return "hash"
	case r.Signer != nil:
		return "signer"
	case r.File != nil:
		return "file"
	case r.All:
		return "all"
	}
	return "unknown"
}

// Describe says what the rule matches, for messages.
func (r *Rule) Describe() string {
	switch {
	case r.Unsupported != "":
		return "unsupported rule: " + r.Unsupported
	case r.Hash != nil:
		return r.Hash.Algorithm.Label() + " " + hex.EncodeToString(r.Hash.Value)
	case r.Signer != nil:
		s := fmt.Sprintf("signer %s at level %s", r.Signer.Cert.String(), r.Signer.Level)
		if r.Signer.Publisher != "" {
			s += fmt.Sprintf(", publisher %q", r.Signer.Publisher)
		}
		if len(r.Signer.SignatureFormats) > 0 {
			s += ", " + strings.Join(r.Signer.SignatureFormats, " or ") + " signatures only"
		}
		return s
	case r.File != nil:
		return "file " + r.File.String()
	case r.All:
		return "every file"
	}
	return "nothing"
}

// Policy is one code integrity policy.
type Policy struct {
	// ID identifies the policy; supplemental policies name their base by it.
	ID      string
	Name    string
	Version string
	// Description is free text for people.
	Description string
	Type        PolicyType
	// BaseID is the ID of the base policy a supplemental policy extends.
	BaseID string
	Mode   Mode
	Rules  []Rule
	// Source is where the policy was loaded from (a file name).
	Source string
	// SHA256 is the SHA-256 of the policy file's bytes, for reports.
	SHA256 [32]byte
	// Format is the file format the policy was read from: "yaml",
	// "sipolicy" (WDAC XML) or "ipe" (Linux IPE).
	Format string
	// WDACCompatible makes signer rules judge as Windows does: ECDSA
	// signatures never match, and certificate expiry is ignored unless the
	// signing certificate carries the Lifetime Signing EKU. Policies read
	// from SiPolicy XML always are.
	WDACCompatible bool
	// DigestAlgorithms, if set, are the digest algorithms the hosts accept:
	// a signature over another digest never matches an allow signer rule,
	// and an allow hash rule comparing another digest never matches (deny
	// rules match whatever the algorithm). Empty accepts any.
	DigestAlgorithms []DigestAlgorithm
	// KeyTypes, if set, are the signing key types the hosts accept: a
	// signature by another never matches an allow signer rule. Empty
	// accepts any, except that under WDACCompatible only RSA signatures
	// match (see AcceptedKeyTypes).
	KeyTypes []KeyType
	// TimestampAuthorities are the timestamp authorities whose verified
	// timestamps set the time at which signer rules check certificate
	// validity (otherwise it is checked now).
	TimestampAuthorities []CertRef
	// Options are WDAC policy options (informational, except
	// "Enabled:Audit Mode", which sets Mode).
	Options []string
	// IPE, if set, is the Linux IPE policy the policy was read from
	// (Format "ipe"): the policy is then judged as the kernel judges it,
	// its rules in file order, the first that matches deciding, and
	// Rules is empty.
	IPE *IPEPolicy
	// Notes are what a loader read but does not judge (a WDAC deny rule in
	// a supplemental policy, which Windows ignores; signers no scenario
	// uses), for lint.
	Notes []Note
}

// Note is something a loader read and set aside, with where it was.
type Note struct {
	Line    int
	Rule    string
	Message string
}

// Inert returns the rules that never match because nothing in a file can
// judge them (Unsupported rules, signers with a WDAC OEM ID): a SiPolicy
// deny rule of that kind blocks nothing here.
func (p *Policy) Inert() []*Rule {
	var out []*Rule
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Unsupported != "" || (r.Signer != nil && r.Signer.OEMID != "") {
			out = append(out, r)
		}
	}
	return out
}

// DigestAlgorithm names a digest algorithm a host may accept.
type DigestAlgorithm string

// Digest algorithms.
const (
	DigestSHA1   DigestAlgorithm = "sha1"
	DigestSHA256 DigestAlgorithm = "sha256"
	DigestSHA384 DigestAlgorithm = "sha384"
	DigestSHA512 DigestAlgorithm = "sha512"
)

// DigestAlgorithms lists every digest algorithm, in a fixed order.
var DigestAlgorithms = []DigestAlgorithm{DigestSHA1, DigestSHA256, DigestSHA384, DigestSHA512}

// digestOf names the algorithm of a crypto.Hash ("" if it has no name
// here, which no restriction accepts).
func digestOf(h crypto.Hash) DigestAlgorithm {
	switch h {
	case crypto.SHA1:
		return DigestSHA1
	case crypto.SHA256:
		return DigestSHA256
	case crypto.SHA384:
		return DigestSHA384
	case crypto.SHA512:
		return DigestSHA512
	}
	return ""
}

// KeyType names a signing key type a host may accept.
type KeyType string

// Key types.
const (
	KeyRSA     KeyType = "rsa"
	KeyECDSA   KeyType = "ecdsa"
	KeyEd25519 KeyType = "ed25519"
)

// KeyTypes lists every key type, in a fixed order.
var KeyTypes = []KeyType{KeyRSA, KeyECDSA, KeyEd25519}

// keyTypeOf names the key type of a signature algorithm as package signing
// reports it ("RSA", "RSA-PSS", "ECDSA", "Ed25519"); "" if unknown.
func keyTypeOf(alg string) KeyType {
	switch alg {
	case "RSA", "RSA-PSS":
		return KeyRSA
	case "ECDSA":
		return KeyECDSA
	case "Ed25519":
		return KeyEd25519
	}
	return ""
}

// AcceptedDigests returns the digest algorithms the policy accepts, in the
// fixed order: DigestAlgorithms, or every one.
func (p *Policy) AcceptedDigests() []DigestAlgorithm {
	if len(p.DigestAlgorithms) == 0 {
		return DigestAlgorithms
	}
	var out []DigestAlgorithm
	for _, d := range DigestAlgorithms {
		if slices.Contains(p.DigestAlgorithms, d) {
			out = append(out, d)
		}
	}
	return out
}

// AcceptedKeyTypes returns the key types whose signatures can match the
// policy's allow signer rules, in the fixed order: KeyTypes (or every
// one), and under WDACCompatible RSA only, as Windows' signer rules take
// no ECDSA signatures (and Authenticode on Windows has no Ed25519).
func (p *Policy) AcceptedKeyTypes() []KeyType {
	var out []KeyType
	for _, k := range KeyTypes {
		if (len(p.KeyTypes) == 0 || slices.Contains(p.KeyTypes, k)) && (!p.WDACCompatible || k == KeyRSA) {
			out = append(out, k)
		}
	}
	return out
}

// refusesSignature says why a verified signature cannot match the
// policy's allow signer rules (its key type or digest algorithm is not
// accepted), or "". Boot components carry no digest algorithm of their
// own (the measurement's bank says it): only their key type is judged.
func (p *Policy) refusesSignature(sig *signing.Signature, sc Scenario) string {
	kt := keyTypeOf(sig.SignatureAlgorithm)
	if !slices.Contains(p.AcceptedKeyTypes(), kt) {
		switch {
		case p.WDACCompatible && kt == KeyECDSA:
			return "ECDSA signatures never match a signer rule under WDAC compatibility (as on Windows)"
		case p.WDACCompatible && kt != KeyRSA:
			return fmt.Sprintf("%s signatures never match a signer rule under WDAC compatibility (Windows' signer rules take RSA signatures)", signatureLabel(sig.SignatureAlgorithm))
		}
		return fmt.Sprintf("%s signature: the policy accepts key types %s", signatureLabel(sig.SignatureAlgorithm), joinNames(p.AcceptedKeyTypes()))
	}
	if len(p.DigestAlgorithms) == 0 || (sig.DigestAlgorithm == 0 && sc == ScenarioBoot) {
		return ""
	}
	refused := func(h crypto.Hash) string {
		if slices.Contains(p.DigestAlgorithms, digestOf(h)) {
			return ""
		}
		return refusedName(h)
	}
	if name := refused(sig.DigestAlgorithm); name != "" {
		return fmt.Sprintf("signature over a %s digest: the policy accepts digest algorithms %s", name, joinNames(p.AcceptedDigests()))
	}
	// The signer's own digests (of the content, of the signed
	// attributes): a collision in one forges the signature too.
	for _, h := range sig.SignerDigests {
		if name := refused(h); name != "" {
			return fmt.Sprintf("signature over a %s digest, whose signer digests with %s: the policy accepts digest algorithms %s",
				refusedName(sig.DigestAlgorithm), name, joinNames(p.AcceptedDigests()))
		}
	}
	return ""
}

// refusedName names a digest algorithm for messages.
func refusedName(h crypto.Hash) string {
	if d := digestOf(h); d != "" {
		return string(d)
	}
	return "unknown (" + h.String() + ")"
}

func signatureLabel(alg string) string {
	if alg == "" {
		return "unknown-algorithm"
	}
	return alg
}

func joinNames[T ~string](xs []T) string {
	if len(xs) == 0 {
		return "none"
	}
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = string(x)
	}
	return strings.Join(ss, ", ")
}

// WDAC options csv acts on.
const (
	OptionAuditMode         = "Enabled:Audit Mode"
	OptionUMCI              = "Enabled:UMCI"
	OptionAllowSupplemental = "Enabled:Allow Supplemental Policies"
	// OptionDisabledScriptEnforcement: Windows does not judge scripts
	// (PowerShell, and those of the Windows Script Host) under the policy.
	OptionDisabledScriptEnforcement = "Disabled:Script Enforcement"
)

// HasOption reports whether the policy sets a WDAC option (compared as
// Windows compares them: case and surrounding space aside).
func (p *Policy) HasOption(name string) bool {
	return slices.ContainsFunc(p.Options, func(o string) bool { return strings.EqualFold(strings.TrimSpace(o), name) })
}

// Certificates returns the certificates the policy's signer rules name in
// full, which signature verification may use to complete chains.
func (p *Policy) Certificates() []*signing.Certificate {
	var out []*signing.Certificate
	for i := range p.Rules {
		if s := p.Rules[i].Signer; s != nil && s.Cert.Certificate != nil {
			out = append(out, s.Cert.Certificate)
		}
	}
	for _, r := range p.TimestampAuthorities {
		if r.Certificate != nil {
			out = append(out, r.Certificate)
		}
	}
	return out
}

// Ref identifies a policy in reports: its name, or its ID if it has none.
func (p *Policy) Ref() string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// SHA256Hex returns the policy file's SHA-256 in hex.
func (p *Policy) SHA256Hex() string { return hex.EncodeToString(p.SHA256[:]) }
