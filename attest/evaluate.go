package attest

import (
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/wire"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/verifiedby"
	"github.com/codesignval/csv/signing"
)

// ResultMediaType is the media type of a JSON Result.
const ResultMediaType = "application/vnd.codesignval.csv.attestation-result+json;version=1"

// Verdicts, as the wire protocol names them (package attest/wire, which
// the host agent reads without linking this package).
const (
	VerdictTrusted    = wire.VerdictTrusted
	VerdictNotTrusted = wire.VerdictNotTrusted
)

// Result is the outcome of an attestation: the verdict, every check with
// why it passed or failed, the claims established from verified evidence,
// and the workarounds used.
type Result struct {
	MediaType string `json:"media_type"`
	Verdict   string `json:"verdict"`
	Trusted   bool   `json:"trusted"`
	// Policy is the attestation policy and CIPolicies the code integrity
	// policies that judged.
	Policy     *PolicyRef  `json:"policy,omitempty"`
	CIPolicies []PolicyRef `json:"ci_policies,omitempty"`
	Checks     []Check     `json:"checks"`
	// Claims is nil when the evidence did not verify.
	Claims      *Claims          `json:"claims"`
	Workarounds []WorkaroundUsed `json:"workarounds"`
}

// PolicyRef identifies a policy in a result.
type PolicyRef struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

// WorkaroundUsed is one workaround in a result.
type WorkaroundUsed struct {
	Name        eventlog.Workaround `json:"name"`
	Description string              `json:"description"`
	Bank        string              `json:"bank,omitempty"`
	PCR         *int                `json:"pcr,omitempty"`
	Events      []int               `json:"events,omitempty"`
	Detail      string              `json:"detail,omitempty"`
}

// Claims are what the verified evidence establishes, named in the spirit
// of Microsoft Azure Attestation's claims. A claim about Windows is null
// for a host whose log shows no Windows boot, and for one whose Windows
// boot configuration cannot be read (see BootState.WindowsProblem). A
// claim that cannot be established takes its unsafe value.
type Claims struct {
	SecureBootEnabled bool `json:"secureBootEnabled"`
	// BootDebuggingDisabled is true only when PCRs 7, 12 and 13 are quoted
	// and read and show no UEFI debug mode and no Windows boot debugging.
	BootDebuggingDisabled   bool  `json:"bootDebuggingDisabled"`
	KernelDebuggingDisabled *bool `json:"kernelDebuggingDisabled"`
	CodeIntegrityEnabled    *bool `json:"codeIntegrityEnabled"`
	TestSigningDisabled     *bool `json:"testSigningDisabled"`
	// DMAProtectionDisabled is true when the firmware measured "DMA
	// Protection Disabled" into PCR 7, and when PCR 7 is not quoted or
	// cannot be read strictly (it might say so).
	DMAProtectionDisabled bool     `json:"dmaProtectionDisabled"`
	KernelCmdlines        []string `json:"kernelCommandLines"`
	// PCRs are the quoted PCR values (JSON: bank -> PCR index -> hex).
	PCRs PCRClaims `json:"pcrs"`
	// UnloggedPCRs are quoted PCRs whose measurements the log does not show.
	UnloggedPCRs   []string         `json:"unloggedPcrs,omitempty"`
	BootComponents []ComponentClaim `json:"bootComponents"`
	// ActiveCIPolicies are the code integrity policies Windows measured
	// as loaded (null when Windows did not boot or its boot configuration
	// cannot be read).
	ActiveCIPolicies []CIPolicyClaim `json:"activeCiPolicies"`
	// Boot is the full boot state the claims come from.
	Boot *BootState `json:"-"`
}

// ComponentClaim is a boot component and the code integrity policy's
// verdict on it.
type ComponentClaim struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Type               string `json:"type"`
	PCR                int    `json:"pcr"`
	AuthenticodeSHA256 string `json:"authenticodeSha256,omitempty"`
	AuthenticodeSHA1   string `json:"authenticodeSha1,omitempty"`
	// Authorities are the Secure Boot authorities that may have admitted
	// it (see Evaluate).
	Authorities []string `json:"authorities"`
	Verdict     string   `json:"verdict"`
	Policy      string   `json:"policy,omitempty"`
	Rule        string   `json:"rule,omitempty"`
	Reason      string   `json:"reason"`
}

func newResult(checks []Check, workarounds []eventlog.Applied, p *Policy) *Result {
	r := &Result{MediaType: ResultMediaType, Checks: checks, Workarounds: []WorkaroundUsed{}}
	if p != nil {
		r.Policy = &PolicyRef{Name: p.Name, Source: p.Source, SHA256: hex.EncodeToString(p.SHA256[:])}
	}
	for _, a := range workarounds {
		w := WorkaroundUsed{Name: a.Workaround, Description: a.Workaround.Description(), Events: a.Events, Detail: a.Detail}
		if a.PCR >= 0 {
			pcr := a.PCR
			w.PCR = &pcr
		}
		if a.Alg != 0 {
			w.Bank = a.Alg.String()
		}
		r.Workarounds = append(r.Workarounds, w)
	}
	r.finish()
	return r
}

func (r *Result) finish() {
	r.Trusted = true
	for _, c := range r.Checks {
		if !c.Passed {
			r.Trusted = false
		}
	}
	r.Verdict = VerdictTrusted
	if !r.Trusted {
		r.Verdict = VerdictNotTrusted
	}
}

// NotVerifiedResult is the Result of evidence that failed verification:
// not trusted, with Verify's checks and no claims.
func NotVerifiedResult(err *VerificationError, p *Policy) *Result {
	return newResult(append([]Check(nil), err.Checks...), err.Workarounds, p)
}

// ErrNoCIPolicy is returned by Evaluate when the policy judges boot
// components and no code integrity policy was given.
var ErrNoCIPolicy = errors.New("attest: the attestation policy judges boot components, but no code integrity policy was given")

// Evaluate judges verified evidence with an attestation policy and, for
// the boot components, a code integrity policy set (nil if the policy
// ignores boot components). Checks, after Verify's, in order:
//
//  1. policy.secure-boot: Secure Boot is enabled, PCR 7 read strictly
//     (only the PCR 7 event types the specification allows, each variable
//     once and before the separator, every digest matching its data).
//  2. policy.pk, policy.kek: the variable holds exactly the given
//     certificates (compared by their DER bytes: dates are ignored); for a
//     kek: mapping, every certificate of contains and one of contains_any.
//  3. policy.db: db holds every certificate of contains, one of
//     contains_any and none of not_contains, and trusts none of
//     not_trusted (each absent from db or revoked by a certificate entry
//     of dbx).
//  4. policy.dbx: dbx holds every hash and certificate of each revocation
//     set.
//  5. policy.not-revoked (when Secure Boot is required): no Secure Boot
//     authority of the boot and no boot component is revoked by the
//     host's own dbx (a certificate or hash entry): firmware that honours
//     dbx never admits one, so such a boot did not enforce it.
//  6. policy.debugging: PCRs 7, 12 and 13 are covered and show no UEFI
//     debug mode and no Windows boot, kernel or hypervisor debugging (a
//     WBCL that cannot be read in full fails).
//  7. policy.code-integrity: Windows reported code integrity on and test
//     signing off (for "windows", only for a Windows boot: a host is not
//     Windows only if PCRs 12 and 13 are covered and not extended at all;
//     extended, they must hold a WBCL that can be read in full).
//  8. policy.ci-policies (when the policy lists ci_policies): Windows
//     measured each required code integrity policy (an SI policy event
//     in the quoted WBCL whose name is the policy's GUID or the name
//     given), and every such measurement is at min_version or above and,
//     when a digest is required, carries a SHA-256 digest equal to it
//     (see CIPolicyRequirement).
//  9. policy.boot-components: PCRs 2 and 4 are covered, and the code
//     integrity policy allows every boot component (see
//     BootState.Components: every measurement of PCRs 2 and 4 but
//     separators and known actions, whatever type the event claims), each
//     a cipolicy.Subject of scenario boot carrying its Authenticode
//     digests and the Secure Boot authority that admitted it.
//
// A requirement with a date (from:) applies only from that date, compared
// with the time the evidence was verified (Verified.Time); before it, the
// check's detail says what is not yet required and whether it is met.
//
// Which authority admitted which component is not proven: events of
// different PCRs can be reordered without changing any PCR. A component is
// therefore judged once with each authority that could have admitted it
// (every certificate authority of the boot; a hash authority only for the
// image with that hash), and allowed only if every judgement allows it.
// Likewise the event type in a component's ID is the host's claim: when
// the code integrity policy has path-scoped rules, a component is judged
// under the ID of each image load type (and the one it claims) and
// allowed only if every judgement allows it.
// Judging is linear in the log: a component is judged once per kind of
// certificate authority (authorities the code integrity policy judges
// alike, see cipolicy.Set.SingleCertificateKey, are judged once), and a
// boot with more than limits.MaxBootComponents components or
// limits.MaxBootAuthorities distinct authorities is not judged (the check
// fails, saying so).
//
// It returns ErrNoCIPolicy when boot components must be judged and ci is
// nil, and ctx's error (wrapped) when ctx is done before it finishes.
func Evaluate(ctx context.Context, v *Verified, p *Policy, ci *cipolicy.Set) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("attest: internal error while evaluating: %w", panicerr.New(r))
		}
	}()
	if p == nil {
		return nil, errors.New("attest: no attestation policy given")
	}
	if p.BootComponents == JudgeCIPolicy && ci == nil {
		return nil, ErrNoCIPolicy
	}
	bs := v.BootState()
	checks := v.Checks()
	add := func(name string, ok bool, detail string) {
		checks = append(checks, Check{Name: name, Passed: ok, Detail: detail})
	}
	// 1. Secure Boot.
	switch {
	case p.SecureBoot == Any:
		add("policy.secure-boot", true, fmt.Sprintf("not required (enabled: %v)", bs.SecureBoot.Enabled))
	case bs.SecureBoot.Problem != "":
		add("policy.secure-boot", false, "Secure Boot state unknown: "+bs.SecureBoot.Problem)
	case !bs.SecureBoot.Enabled:
		add("policy.secure-boot", false, "Secure Boot is disabled (the SecureBoot variable is 0)")
	default:
		add("policy.secure-boot", true, "Secure Boot is enabled")
	}
	// 2-4. The databases.
	if p.PK != nil {
		ok, d := exactly(bs.PK, p.PK, "PK")
		add("policy.pk", ok, d)
	}
	if p.KEK != nil {
		ok, d := exactly(bs.KEK, p.KEK, "KEK")
		add("policy.kek", ok, d)
	}
	if p.KEKContains != nil || p.KEKContainsAny != nil {
		ok, d := kekCheck(bs.KEK, p.KEKContains, p.KEKContainsAny, v.at)
		add("policy.kek", ok, d)
	}
	if p.DBContains != nil || p.DBNotContains != nil || p.DBContainsAny != nil || p.DBNotTrusted != nil {
		ok, d := dbCheck(bs.DB, bs.DBX, p, v.at)
		add("policy.db", ok, d)
	}
	if p.DBXIncludes != nil {
		ok, d := dbxCheck(bs.DBX, p.DBXIncludes, v.at)
		add("policy.dbx", ok, d)
	}
	if p.SecureBoot == Required {
		ok, d := notRevokedCheck(bs)
		add("policy.not-revoked", ok, d)
	}
	// 5. Debugging.
	if p.Debugging == Forbidden {
		ok, d := debugCheck(v, bs)
		add("policy.debugging", ok, d)
	}
	// 6. Code integrity.
	if p.CodeIntegrity != Ignore {
		ok, d := ciCheck(v, bs, p.CodeIntegrity)
		add("policy.code-integrity", ok, d)
	}
	// 7. The code integrity policies Windows booted with.
	if len(p.CIPolicies) > 0 {
		ok, d := ciPoliciesCheck(v, bs, p.CIPolicies)
		add("policy.ci-policies", ok, d)
	}
	// 8. Boot components.
	var comps []ComponentClaim
	if p.BootComponents == JudgeCIPolicy {
		var ok bool
		var d string
		if comps, ok, d, err = judgeComponents(ctx, v, bs, ci); err != nil {
			return nil, fmt.Errorf("attest: evaluation stopped: %w", err)
		}
		add("policy.boot-components", ok, d)
	} else {
		for _, c := range bs.Components {
			comps = append(comps, componentClaim(c, nil, "not judged"))
		}
	}
	r := newResult(checks, v.Workarounds(), p)
	if ci != nil {
		for _, cp := range ci.Policies() {
			r.CIPolicies = append(r.CIPolicies, PolicyRef{Name: cp.Ref(), Source: cp.Source, SHA256: cp.SHA256Hex()})
		}
	}
	r.Claims = claims(v, bs, comps)
	r.finish()
	return r, nil
}

func exactly(db *SignatureDB, refs []CertRef, name string) (bool, string) {
	if db == nil {
		return false, name + " was not measured (or PCR 7 could not be read strictly)"
	}
	var missing, extra []string
	for i := range refs {
		if !db.hasRef(&refs[i]) {
			missing = append(missing, refs[i].String())
		}
	}
	for i, fp := range db.CertSHA256 {
		if !slices.ContainsFunc(refs, func(r CertRef) bool { return r.SHA256 == fp }) {
			extra = append(extra, fmt.Sprintf("%q (SHA-256 %x)", db.name(i), fp))
		}
	}
	if n := len(db.SHA256) + len(db.Others); n > 0 {
		extra = append(extra, fmt.Sprintf("%d non-certificate entries", n))
	}
	switch {
	case len(missing) > 0 && len(extra) > 0:
		return false, fmt.Sprintf("%s lacks %s and holds %s", name, strings.Join(missing, ", "), strings.Join(extra, ", "))
	case len(missing) > 0:
		return false, fmt.Sprintf("%s lacks %s", name, strings.Join(missing, ", "))
	case len(extra) > 0:
		return false, fmt.Sprintf("%s holds %s, which the policy does not list", name, strings.Join(extra, ", "))
	}
	return true, fmt.Sprintf("%s holds exactly the %d certificates given", name, len(refs))
}

func (db *SignatureDB) hasRef(r *CertRef) bool { return db.hasSHA256Cert(r.SHA256) }

func dbCheck(db, dbx *SignatureDB, p *Policy, at time.Time) (bool, string) {
	if db == nil {
		return false, "db was not measured (or PCR 7 could not be read strictly)"
	}
	var bad, later []string
	// judge records a requirement that is not met: a failure, or, before
	// its date, a note.
	judge := func(r *CertRef, msg string) {
		if pending(r.From, at) {
			later = append(later, fmt.Sprintf("%s (required from %s)", msg, r.From.Format(time.DateOnly)))
			return
		}
		bad = append(bad, msg)
	}
	for i := range p.DBContains {
		if !db.hasRef(&p.DBContains[i]) {
			judge(&p.DBContains[i], "lacks "+p.DBContains[i].String())
		}
	}
	for i := range p.DBNotContains {
		if db.hasRef(&p.DBNotContains[i]) {
			judge(&p.DBNotContains[i], "holds "+p.DBNotContains[i].String())
		}
	}
	if len(p.DBContainsAny) > 0 && !slices.ContainsFunc(p.DBContainsAny, func(r CertRef) bool { return db.hasRef(&r) }) {
		bad = append(bad, "holds none of "+refNames(p.DBContainsAny))
	}
	for i := range p.DBNotTrusted {
		r := &p.DBNotTrusted[i]
		if db.hasRef(r) && (dbx == nil || !dbx.hasRef(r)) {
			judge(r, "trusts "+r.String()+" (in db, and no certificate entry of dbx revokes it)")
		}
	}
	if len(bad) > 0 {
		return false, "db " + strings.Join(bad, "; ")
	}
	d := fmt.Sprintf("db holds the %d certificates required and none of the %d forbidden", inForce(p.DBContains, at), inForce(p.DBNotContains, at))
	if len(p.DBContainsAny) > 0 {
		d += fmt.Sprintf(", one of %s", refNames(p.DBContainsAny))
	}
	if len(p.DBNotTrusted) > 0 {
		d += fmt.Sprintf(", and trusts none of the %d not trusted", inForce(p.DBNotTrusted, at))
	}
	if len(later) > 0 {
		d += "; not yet required: db " + strings.Join(later, "; ")
	}
	return true, d
}

func kekCheck(kek *SignatureDB, contains, anyOf []CertRef, at time.Time) (bool, string) {
	if kek == nil {
		return false, "KEK was not measured (or PCR 7 could not be read strictly)"
	}
	var bad, later []string
	for i := range contains {
		if r := &contains[i]; !kek.hasRef(r) {
			if pending(r.From, at) {
				later = append(later, fmt.Sprintf("lacks %s (required from %s)", r.String(), r.From.Format(time.DateOnly)))
			} else {
				bad = append(bad, "lacks "+r.String())
			}
		}
	}
	if len(anyOf) > 0 && !slices.ContainsFunc(anyOf, func(r CertRef) bool { return kek.hasRef(&r) }) {
		bad = append(bad, "holds none of "+refNames(anyOf))
	}
	if len(bad) > 0 {
		return false, "KEK " + strings.Join(bad, "; ")
	}
	d := fmt.Sprintf("KEK holds the %d certificates required", inForce(contains, at))
	if len(anyOf) > 0 {
		d += fmt.Sprintf(" and one of %s", refNames(anyOf))
	}
	if len(later) > 0 {
		d += "; not yet required: KEK " + strings.Join(later, "; ")
	}
	return true, d
}

// inForce counts the requirements that apply at t.
func inForce(refs []CertRef, t time.Time) int {
	n := 0
	for i := range refs {
		if !pending(refs[i].From, t) {
			n++
		}
	}
	return n
}

func refNames(refs []CertRef) string {
	names := make([]string, len(refs))
	for i := range refs {
		names[i] = refs[i].String()
	}
	return strings.Join(names, ", ")
}

// notRevokedCheck fails a boot that used what its own dbx revokes: a
// Secure Boot authority (a db certificate or hash entry) or a boot
// component's Authenticode SHA-256.
func notRevokedCheck(bs *BootState) (bool, string) {
	dbx := bs.DBX
	if dbx == nil {
		return true, "dbx was not measured (or PCR 7 could not be read strictly): nothing to compare (policy.secure-boot and policy.dbx judge that)"
	}
	hashes := make(map[string]bool, len(dbx.SHA256))
	for _, h := range dbx.SHA256 {
		hashes[string(h)] = true
	}
	certs := make(map[[32]byte]bool, len(dbx.CertSHA256))
	for _, fp := range dbx.CertSHA256 {
		certs[fp] = true
	}
	var bad []string
	for i := range bs.Authorities {
		a := &bs.Authorities[i]
		switch {
		case a.CertDER != nil && certs[sha256.Sum256(a.CertDER)]:
			bad = append(bad, fmt.Sprintf("authority %s (event %d) is a certificate dbx revokes", a.Name(), a.Event))
		case a.CertDER == nil && a.SHA256 != nil && hashes[string(a.SHA256)]:
			bad = append(bad, fmt.Sprintf("authority %s (event %d) is a hash dbx revokes", a.Name(), a.Event))
		}
	}
	for _, c := range bs.Components {
		if c.AuthenticodeSHA256 != nil && hashes[string(c.AuthenticodeSHA256)] {
			bad = append(bad, fmt.Sprintf("boot component %s (%s) has Authenticode SHA-256 %x, which dbx revokes", c.ID, c.Name, c.AuthenticodeSHA256))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 3 {
			bad = append(bad[:3], fmt.Sprintf("and %d more", len(bad)-3))
		}
		return false, "the boot used what its own dbx revokes (firmware that honours dbx refuses it): " + strings.Join(bad, "; ")
	}
	return true, fmt.Sprintf("no Secure Boot authority or boot component of the boot is revoked by its dbx (%d hashes, %d certificates)", len(dbx.SHA256), len(dbx.CertSHA256))
}

func dbxCheck(dbx *SignatureDB, sets []Revocation, at time.Time) (bool, string) {
	if dbx == nil {
		return false, "dbx was not measured (or PCR 7 could not be read strictly)"
	}
	// The host's dbx (up to 16,384 entries) is indexed once: looking each
	// revocation up in it would cost the policy's size times the host's.
	hashes := make(map[string]bool, len(dbx.SHA256))
	for _, h := range dbx.SHA256 {
		hashes[string(h)] = true
	}
	certs := make(map[[32]byte]bool, len(dbx.CertSHA256))
	for _, fp := range dbx.CertSHA256 {
		certs[fp] = true
	}
	var bad, later []string
	total := 0
	for _, s := range sets {
		missing := 0
		var first []byte
		for _, h := range s.SHA256 {
			if !hashes[string(h)] {
				if missing == 0 {
					first = h
				}
				missing++
			}
		}
		mc := 0
		for _, fp := range s.CertSHA256 {
			if !certs[fp] {
				mc++
			}
		}
		total += len(s.SHA256) + len(s.CertSHA256)
		if missing+mc > 0 {
			msg := fmt.Sprintf("%s: %d of %d hashes and %d of %d certificates missing", s.Name, missing, len(s.SHA256), mc, len(s.CertSHA256))
			if first != nil {
				msg += fmt.Sprintf(" (first missing hash %x)", first)
			}
			if pending(s.From, at) {
				later = append(later, fmt.Sprintf("%s (required from %s)", msg, s.From.Format(time.DateOnly)))
				continue
			}
			bad = append(bad, msg)
		}
	}
	if len(bad) > 0 {
		return false, fmt.Sprintf("dbx (%d hashes, %d certificates) lacks revocations: %s", len(dbx.SHA256), len(dbx.CertSHA256), strings.Join(bad, "; "))
	}
	if len(later) > 0 {
		return true, fmt.Sprintf("dbx holds the revocations required now; not yet required: %s", strings.Join(later, "; "))
	}
	return true, fmt.Sprintf("dbx holds all %d revocations required", total)
}

func uncovered(v *Verified, pcrs ...int) []int {
	var out []int
	for _, p := range pcrs {
		covered := false
		for _, a := range v.log.Algs {
			if v.matched.Verified(a, p) {
				covered = true
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

func debugCheck(v *Verified, bs *BootState) (bool, string) {
	if u := uncovered(v, 7, 12, 13); len(u) > 0 {
		return false, fmt.Sprintf("PCRs %s are not covered by a quote (or hold measurements the log does not show): debugging cannot be ruled out", pcrList(u))
	}
	if bs.SecureBoot.Problem != "" {
		return false, "PCR 7 could not be read strictly: " + bs.SecureBoot.Problem
	}
	if bs.WindowsProblem != "" {
		return false, "the Windows boot configuration could not be read: " + bs.WindowsProblem
	}
	var on []string
	if bs.UEFIDebugMode {
		on = append(on, "UEFI debug mode")
	}
	if w := bs.Windows; w != nil {
		for _, f := range []struct {
			on   bool
			name string
		}{{w.BootDebugging, "Windows boot debugging"}, {w.KernelDebugging, "Windows kernel debugging"}, {w.HypervisorDebugging, "Windows hypervisor debugging"}} {
			if f.on {
				on = append(on, f.name)
			}
		}
	}
	if len(on) > 0 {
		return false, strings.Join(on, ", ") + " enabled"
	}
	if bs.Windows != nil {
		return true, "no UEFI debug mode; Windows boot, kernel and hypervisor debugging off"
	}
	return true, "no UEFI debug mode; no Windows boot"
}

func ciCheck(v *Verified, bs *BootState, req string) (bool, string) {
	if bs.WindowsProblem != "" {
		return false, "the Windows boot configuration could not be read: " + bs.WindowsProblem
	}
	if bs.Windows == nil {
		if req == Required {
			return false, "no Windows boot configuration (WBCL) measured: code integrity unknown"
		}
		if u := uncovered(v, 12, 13); len(u) > 0 {
			return false, fmt.Sprintf("PCRs %s are not covered by a quote: cannot tell whether Windows booted", pcrList(u))
		}
		return true, "not a Windows boot (PCRs 12-13 are not extended)"
	}
	w := bs.Windows
	switch {
	case w.CodeIntegrity != On:
		return false, fmt.Sprintf("Windows code integrity is %s", w.CodeIntegrity)
	case w.TestSigning:
		return false, "Windows test signing is on"
	}
	return true, "Windows code integrity on, test signing off"
}

// judgeComponents builds a cipolicy.Subject per component and judges it.
// The work is linear in the log: each component is judged once per kind
// of certificate authority (see cipolicy.Set.SingleCertificateKey), not
// once per authority, and a boot over limits.MaxBootComponents or
// limits.MaxBootAuthorities is not judged. It stops when ctx is done.
func judgeComponents(ctx context.Context, v *Verified, bs *BootState, ci *cipolicy.Set) ([]ComponentClaim, bool, string, error) {
	notJudged := func() []ComponentClaim {
		out := make([]ComponentClaim, 0, len(bs.Components))
		for _, c := range bs.Components {
			out = append(out, componentClaim(c, nil, "not judged"))
		}
		return out
	}
	if u := uncovered(v, 2, 4); len(u) > 0 {
		return notJudged(), false, fmt.Sprintf("PCRs %s are not covered by a quote (or hold measurements the log does not show): the boot components are unknown", pcrList(u)), nil
	}
	// Without a strict PCR 7 the authorities are unknown (BootState has
	// none): components are then judged unsigned, by hash rules only.
	auths := bs.DistinctAuthorities()
	switch {
	case len(bs.Components) > limits.MaxBootComponents:
		return notJudged(), false, fmt.Sprintf("the log holds %d boot components, over the limit of %d: not judged (a real boot has a few tens)",
			len(bs.Components), limits.MaxBootComponents), nil
	case len(auths) > limits.MaxBootAuthorities:
		return notJudged(), false, fmt.Sprintf("PCR 7 names %d distinct Secure Boot authorities, over the limit of %d: the boot components were not judged (a real boot has a few)",
			len(auths), limits.MaxBootAuthorities), nil
	}
	j := newComponentJudge(auths, ci)
	blocked, judged := 0, 0
	var firstBad string
	out := make([]ComponentClaim, 0, len(bs.Components))
	for _, c := range bs.Components {
		if err := ctx.Err(); err != nil {
			return nil, false, "", err
		}
		d := j.judge(c)
		cc := componentClaim(c, nil, "")
		cc.Authorities = j.names(c)
		cc.Verdict, cc.Policy, cc.Rule, cc.Reason = string(d.Verdict), d.Policy, d.Rule, d.Reason
		if d.Verdict == cipolicy.Blocked && !d.Enforced {
			cc.Verdict = "blocked (audit)"
		}
		judged++
		if d.Fails() {
			blocked++
			if firstBad == "" {
				firstBad = fmt.Sprintf("%s (%s): %s", c.ID, c.Name, d.Reason)
			}
		}
		out = append(out, cc)
	}
	if blocked > 0 {
		return out, false, fmt.Sprintf("%d of %d boot components blocked by the code integrity policy; first: %s", blocked, judged, firstBad), nil
	}
	return out, true, fmt.Sprintf("the code integrity policy allows all %d boot components", judged), nil
}

// pathScoped reports whether a rule (or an exception) of the set is scoped
// to paths.
func pathScoped(ci *cipolicy.Set) bool {
	for _, p := range ci.Policies() {
		for i := range p.Rules {
			r := &p.Rules[i]
			if len(r.Paths) > 0 || slices.ContainsFunc(r.Except, func(x cipolicy.Rule) bool { return len(x.Paths) > 0 }) {
				return true
			}
		}
	}
	return false
}

// componentJudge judges boot components with the authorities of a boot.
// A component is judged with every certificate authority, and with the
// hash authority for its digest, if any (see Evaluate). Certificate
// authorities with the same cipolicy.Set.SingleCertificateKey are judged
// alike, so only the first of each key is judged: the decision that
// counts is the same, and names the same authority, as judging them all.
type componentJudge struct {
	ci     *cipolicy.Set
	scoped bool
	auths  []Authority
	// certNames are the names of the certificate authorities, in order;
	// nCerts their number.
	certNames []string
	nCerts    int
	// judged are the indexes (in auths) of the certificate authorities
	// to judge with: the first of each key. Made when a signer rule first
	// needs them (the certificates are parsed then).
	judged []int
	keyed  bool
	// hashes indexes the hash authorities by their SHA-256.
	hashes map[string]int
}

func newComponentJudge(auths []Authority, ci *cipolicy.Set) *componentJudge {
	j := &componentJudge{ci: ci, scoped: pathScoped(ci), auths: auths, certNames: []string{}, hashes: map[string]int{}}
	for i := range auths {
		a := &auths[i]
		if a.CertDER == nil {
			if a.SHA256 != nil {
				j.hashes[string(a.SHA256)] = i
			}
			continue
		}
		j.certNames = append(j.certNames, a.Name())
		j.nCerts++
	}
	return j
}

// certificateAuthorities returns the indexes of the certificate
// authorities to judge with: the first of each key (unreadable
// certificates are all judged alike: blocked, as malformed).
func (j *componentJudge) certificateAuthorities() []int {
	if j.keyed {
		return j.judged
	}
	j.keyed = true
	type class struct {
		unreadable bool
		key        string
	}
	seen := map[class]bool{}
	for i := range j.auths {
		a := &j.auths[i]
		if a.CertDER == nil {
			continue
		}
		var k class
		if c := a.Certificate(); c != nil {
			k.key = j.ci.SingleCertificateKey(c)
		} else {
			k.unreadable = true
		}
		if !seen[k] {
			seen[k] = true
			j.judged = append(j.judged, i)
		}
	}
	return j.judged
}

// hashAuthority returns the index of the hash authority of c's digest,
// or -1.
func (j *componentJudge) hashAuthority(c *Component) int {
	if c.AuthenticodeSHA256 == nil {
		return -1
	}
	if i, ok := j.hashes[string(c.AuthenticodeSHA256)]; ok {
		return i
	}
	return -1
}

// names returns the names of the authorities that could have admitted c,
// in order.
func (j *componentJudge) names(c Component) []string {
	h := j.hashAuthority(&c)
	if h < 0 {
		return slices.Clone(j.certNames)
	}
	out := make([]string, 0, j.nCerts+1)
	for i := range j.auths {
		if a := &j.auths[i]; a.CertDER != nil || i == h {
			out = append(out, a.Name())
		}
	}
	return out
}

// judge judges a component under its ID and, when the policy has
// path-scoped rules, under the ID of every image load type it could have
// been logged with (the type is the host's claim), and returns the
// decision that counts: the first blocking one (an enforced one before an
// audited one), else the one under its own ID. It stops at the first
// enforced block.
func (j *componentJudge) judge(c Component) cipolicy.Decision {
	d := j.judgeAs(&c, c.ID)
	if !j.scoped || c.position == 0 {
		return d
	}
	var block *cipolicy.Decision
	if d.Verdict != cipolicy.Allowed {
		block = &d
	}
	for _, t := range imageLoadTypes {
		if block != nil && block.Enforced {
			break // nothing can take its place
		}
		id := fmt.Sprintf("pcr%d/%s/%d", c.PCR, t, c.position)
		if id == c.ID {
			continue
		}
		dd := j.judgeAs(&c, id)
		if dd.Verdict != cipolicy.Allowed && (block == nil || (dd.Enforced && !block.Enforced)) {
			dd.Reason = fmt.Sprintf("judged as %s (the event type is the host's claim): %s", id, dd.Reason)
			block = &dd
		}
	}
	if block != nil {
		return *block
	}
	return d
}

// judgeAs judges a component under an ID once per authority that could
// have admitted it (one per key of the certificate authorities, and the
// hash authority of its digest), and returns the decision that counts:
// the first blocking one (an enforced one before an audited one), else the
// first allowing one. It stops at the first enforced block.
func (j *componentJudge) judgeAs(c *Component, id string) cipolicy.Decision {
	ci := j.ci
	base := cipolicy.Subject{Path: id, Format: cipolicy.FormatPE, Scenario: cipolicy.ScenarioBoot}
	base.Digests = cipolicy.Digests{cipolicy.AuthenticodeSHA256: c.AuthenticodeSHA256, cipolicy.AuthenticodeSHA1: c.AuthenticodeSHA1}
	need := ci.Needs(id, cipolicy.FormatPE, cipolicy.ScenarioBoot).Full() // judged at once, from the log
	switch {
	case need.Digests.Has(cipolicy.SHA256):
		base.Problem = errors.New("the code integrity policy compares flat file SHA-256 digests, which a boot log does not carry (scope such rules to formats or scenarios other than boot)")
	case need.Digests.Has(cipolicy.AuthenticodeSHA256) && c.AuthenticodeSHA256 == nil:
		base.Problem = fmt.Errorf("the policy compares Authenticode SHA-256 digests, but no verified SHA256 bank covers PCR %d", c.PCR)
	case need.Digests.Has(cipolicy.AuthenticodeSHA1) && c.AuthenticodeSHA1 == nil:
		base.Problem = fmt.Errorf("the policy compares Authenticode SHA-1 digests, but no verified SHA1 bank covers PCR %d", c.PCR)
	case need.Digests.Has(cipolicy.PageSHA256) || need.Digests.Has(cipolicy.PageSHA1):
		base.Problem = errors.New("the code integrity policy compares first-page hashes (page-hash rules), which a boot log does not carry (scope such rules to formats or scenarios other than boot)")
	case need.Attributes:
		base.Problem = errors.New("the code integrity policy reads file attributes (version resources), which a boot log does not carry")
	}
	h := j.hashAuthority(c)
	cands := j.nCerts
	if h >= 0 {
		cands++
	}
	if cands == 0 {
		return ci.Evaluate(base)
	}
	if !need.Signatures {
		// No signer rule applies: every authority gives the same
		// judgement, of a signed subject by its hashes.
		base.Signed = j.nCerts > 0
		return ci.Evaluate(base)
	}
	var allow, block *cipolicy.Decision
	judge := func(a *Authority) {
		s := base
		if c := a.Certificate(); c != nil {
			s.Signed = true
			s.Signatures = []*signing.Signature{verifiedby.Firmware(c, sigAlg(c))}
		} else if a.CertDER != nil {
			s.Problem = fmt.Errorf("the certificate of authority %s (event %d) cannot be read", a.Name(), a.Event)
		}
		d := ci.Evaluate(s)
		switch {
		case d.Verdict == cipolicy.Allowed:
			if allow == nil {
				allow = &d
			}
		case block == nil || (d.Enforced && !block.Enforced):
			dd := d
			if cands > 1 {
				dd.Reason = fmt.Sprintf("with authority %s: %s", a.Name(), d.Reason)
			}
			block = &dd
		}
	}
	// In the authorities' order (the hash authority among the
	// certificate authorities judged), until an enforced block: nothing
	// can take its place.
	for _, i := range j.certificateAuthorities() {
		if block != nil && block.Enforced {
			break
		}
		if h >= 0 && h < i {
			judge(&j.auths[h])
			h = -1
			if block != nil && block.Enforced {
				break
			}
		}
		judge(&j.auths[i])
	}
	if h >= 0 && (block == nil || !block.Enforced) {
		judge(&j.auths[h])
	}
	if block != nil {
		return *block
	}
	return *allow
}

// sigAlg is the key type of a boot component's signature: that of the
// authority's key. A key csv does not parse (an RSA encoding Go's x509
// refuses, RSA over 8192 bits) is RSA when its SubjectPublicKeyInfo says
// rsaEncryption; any other (DSA, an elliptic curve Go does not know) is
// "unknown", which no key type a policy accepts matches: judging it as RSA
// would let it meet a policy that accepts RSA keys only.
func sigAlg(c *signing.Certificate) string {
	if k := c.PublicKeyAlgorithm(); k != "unknown" {
		return k
	}
	spki := cryptobyte.String(c.RawSPKI)
	var body, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if spki.ReadASN1(&body, cbasn1.SEQUENCE) && body.ReadASN1(&alg, cbasn1.SEQUENCE) && alg.ReadASN1ObjectIdentifier(&oid) &&
		oid.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}) {
		return "RSA"
	}
	return "unknown"
}

func componentClaim(c Component, auths []Authority, verdict string) ComponentClaim {
	cc := ComponentClaim{ID: c.ID, Name: c.Name, Type: c.Type.String(), PCR: c.PCR, Verdict: verdict, Authorities: []string{}}
	if c.AuthenticodeSHA256 != nil {
		cc.AuthenticodeSHA256 = hex.EncodeToString(c.AuthenticodeSHA256)
	}
	if c.AuthenticodeSHA1 != nil {
		cc.AuthenticodeSHA1 = hex.EncodeToString(c.AuthenticodeSHA1)
	}
	for _, a := range auths {
		cc.Authorities = append(cc.Authorities, a.Name())
	}
	return cc
}

func claims(v *Verified, bs *BootState, comps []ComponentClaim) *Claims {
	// What PCR 7 (and, for debugging, PCRs 12-13) cannot tell counts as
	// the unsafe value.
	pcr7Read := len(uncovered(v, 7)) == 0 && bs.SecureBoot.Problem == ""
	cl := &Claims{
		SecureBootEnabled: bs.SecureBoot.Enabled,
		BootDebuggingDisabled: pcr7Read && len(uncovered(v, 12, 13)) == 0 && bs.WindowsProblem == "" && !bs.UEFIDebugMode &&
			(bs.Windows == nil || !bs.Windows.BootDebugging),
		DMAProtectionDisabled: bs.DMAProtectionDisabled || !pcr7Read,
		KernelCmdlines:        bs.KernelCmdlines,
		PCRs:                  PCRClaims{v.QuotedPCRs()},
		BootComponents:        comps,
		Boot:                  bs,
	}
	if cl.BootComponents == nil {
		cl.BootComponents = []ComponentClaim{}
	}
	if w := bs.Windows; w != nil {
		f := func(b bool) *bool { return &b }
		cl.KernelDebuggingDisabled = f(!w.KernelDebugging)
		cl.CodeIntegrityEnabled = f(w.CodeIntegrity == On)
		cl.TestSigningDisabled = f(!w.TestSigning)
		cl.ActiveCIPolicies = ciPolicyClaims(w)
	}
	for _, u := range v.Unlogged() {
		cl.UnloggedPCRs = append(cl.UnloggedPCRs, u.String())
	}
	return cl
}

// PCRClaims are quoted PCR values, as JSON bank -> PCR index -> hex.
type PCRClaims struct{ pcrs eventlog.PCRs }

// Banks returns the banks, weakest first.
func (p PCRClaims) Banks() []eventlog.HashAlg {
	var out []eventlog.HashAlg
	for _, a := range []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384, eventlog.SHA512, eventlog.SM3256} {
		if p.pcrs[a] != nil {
			out = append(out, a)
		}
	}
	return out
}

// Get returns a PCR's quoted value, or nil.
func (p PCRClaims) Get(a eventlog.HashAlg, pcr int) []byte { return p.pcrs.Get(a, pcr) }

// MarshalJSON writes bank -> PCR index -> hex.
func (p PCRClaims) MarshalJSON() ([]byte, error) {
	m := map[string]map[string]string{}
	for _, a := range p.Banks() {
		vals := map[string]string{}
		for i, v := range p.pcrs[a] {
			if v != nil {
				vals[strconv.Itoa(i)] = hex.EncodeToString(v)
			}
		}
		m[a.String()] = vals
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes, so that a client decoding a
// result (the attestation service's response) keeps the PCR values. Bank
// names, indexes and value lengths are checked.
func (p *PCRClaims) UnmarshalJSON(b []byte) error {
	var m map[string]map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("pcrs: %w", err)
	}
	out := eventlog.PCRs{}
	for bank, vals := range m {
		a, err := eventlog.ParseHashAlg(bank)
		if err != nil {
			return fmt.Errorf("pcrs: %w", err)
		}
		if out[a] == nil {
			out[a] = new(eventlog.Bank)
		}
		for k, h := range vals {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= eventlog.NumPCRs || strconv.Itoa(i) != k {
				return fmt.Errorf("pcrs: %s PCR %q does not exist", bank, k)
			}
			v, err := hex.DecodeString(h)
			if err != nil || len(v) != a.Size() {
				return fmt.Errorf("pcrs: %s PCR %d: %q is not %d bytes of hex", bank, i, h, a.Size())
			}
			out.Set(a, i, v)
		}
	}
	p.pcrs = out
	return nil
}
