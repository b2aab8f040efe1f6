package cipolicy

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/timestamp"
)

// CertLevel says where in a signature's chain a signer rule's certificate
// must be.
type CertLevel string

// Certificate levels.
const (
	// LevelLeaf: the signing certificate itself.
	LevelLeaf CertLevel = "leaf"
	// LevelIssuer: the signing certificate's issuing CA (WDAC's PCA level).
	LevelIssuer CertLevel = "issuer"
	// LevelRoot: the top of the chain.
	LevelRoot CertLevel = "root"
	// LevelAny: anywhere in the chain (WDAC CertRoot semantics).
	LevelAny CertLevel = "any"
)

// CertRef identifies a certificate: by the hash of its TBSCertificate (as
// WDAC's CertRoot values do), or by the certificate itself.
type CertRef struct {
	// TBSHash is compared with signing.Certificate.TBSHash, the hash with
	// the certificate's own signature digest; its length tells the digest.
	TBSHash []byte
	// Certificate, if set, matches a chain certificate with the same
	// TBSCertificate (the same certificate, whatever re-encoding of its
	// signature). TBSHash is then that certificate's.
	Certificate *signing.Certificate
	// WellKnown is a WDAC well-known root ID (such as "06", Microsoft
	// Product Root 2010) and WellKnownName that root's subject common name.
	// It matches only a self-signed certificate with that name that the
	// operator supplied as trusted (SetOptions.TrustedRoots): a certificate
	// carried by the signature itself proves nothing.
	WellKnown     string
	WellKnownName string
}

// Matches reports whether c is the referenced certificate. trusted says
// whether the operator supplied c (only well-known references need it).
func (r *CertRef) Matches(c *signing.Certificate, trusted func(*signing.Certificate) bool) bool {
	switch {
	case r.Certificate != nil:
		return bytes.Equal(r.Certificate.RawTBS, c.RawTBS)
	case r.WellKnown != "":
		return r.WellKnownName != "" && c.CommonName() == r.WellKnownName && trusted != nil && trusted(c) && c.SelfSigned()
	}
	return len(r.TBSHash) > 0 && bytes.Equal(r.TBSHash, c.TBSHash)
}

// String describes the reference.
func (r *CertRef) String() string {
	switch {
	case r.Certificate != nil:
		return fmt.Sprintf("%q (TBS %X)", r.Certificate.CommonName(), r.Certificate.TBSHash)
	case r.WellKnown != "":
		return fmt.Sprintf("well-known root %s (%q)", r.WellKnown, r.WellKnownName)
	}
	return fmt.Sprintf("TBS %X", r.TBSHash)
}

// SignerMatch is the matcher of a signer rule: a verified signature whose
// chain holds the certificate at the level, and whose leaf satisfies every
// constraint that is set.
type SignerMatch struct {
	Cert  CertRef
	Level CertLevel
	// Publisher is the leaf's subject common name (WDAC CertPublisher).
	Publisher string
	// IssuerName is the leaf's issuer common name (WDAC CertIssuer).
	IssuerName string
	// EKUs are OIDs the leaf must list (WDAC CertEKU).
	EKUs []string
	// OEMID is WDAC's CertOemID. It cannot be judged from a file, so a rule
	// that sets it never matches (lint says so).
	OEMID string
	// Files, if set, limits the signer to files with one of these
	// attributes (WDAC FileAttribRef).
	Files []FileAttrMatch
	// SignatureFormats, if set, limits the rule to signatures of these
	// formats (signing.Signature.Format: SignatureFormatNames): a rule
	// with [ima] admits a file only by its IMA signature, so that a
	// policy can require what a Linux host appraising the file checks.
	SignatureFormats []string
}

// SignatureFormatNames are the signature formats a signer rule may name in
// signature_formats.
var SignatureFormatNames = []string{"authenticode", "modsig", "ima", "fsverity", "dmverity"}

// Version is a four-part file version, as Windows version resources and
// WDAC rules write it.
type Version [4]uint16

// ParseVersion reads "a.b.c.d" (missing parts are 0).
func ParseVersion(s string) (Version, error) {
	var v Version
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return v, fmt.Errorf("version %q: want up to four dot-separated numbers", s)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return v, fmt.Errorf("version %q: %q is not a number from 0 to 65535", s, p)
		}
		v[i] = uint16(n)
	}
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d.%d", v[0], v[1], v[2], v[3]) }

// Compare returns -1, 0 or 1.
func (v Version) Compare(w Version) int { return slices.Compare(v[:], w[:]) }

// FileNameField names the version resource string a FileAttrMatch compares.
type FileNameField string

// File name fields (WDAC's SpecificFileNameLevel).
const (
	OriginalFileName FileNameField = "original_file_name"
	InternalName     FileNameField = "internal_name"
	FileDescription  FileNameField = "file_description"
	ProductName      FileNameField = "product_name"
)

// FileAttrMatch matches a PE file by its version resource (WDAC FileAttrib,
// and Allow or Deny rules with FileName): the name field equals Name (case
// insensitively) and the file version lies within the bounds that are set.
type FileAttrMatch struct {
	Field      FileNameField // default OriginalFileName
	Name       string
	MinVersion *Version
	MaxVersion *Version
}

// FileAttributes are the strings and version of a PE file's version
// resource.
type FileAttributes struct {
	OriginalFileName string
	InternalName     string
	FileDescription  string
	ProductName      string
	// FileVersion is VS_FIXEDFILEINFO's file version; nil when the resource
	// has none, and the version is then unknown.
	FileVersion *Version
	// Alternatives are the other readings of the file's version resources
	// that differ from this one: other string tables, languages or resource
	// names, and keys written twice or in other letter case. Which one
	// Windows reads is not established, so a deny rule matches if any
	// reading matches, and an allow rule only if every one does.
	Alternatives []FileAttributes `json:",omitempty"`
}

// NewFileAttributes returns a file's attributes from every reading of its
// version resources, the preferred one first: the others that differ from
// it become its Alternatives. It returns nil for no readings.
func NewFileAttributes(readings []FileAttributes) *FileAttributes {
	if len(readings) == 0 {
		return nil
	}
	a := readings[0]
	a.Alternatives = nil
	seen := []FileAttributes{a}
	for _, r := range readings[1:] {
		r.Alternatives = nil
		if !slices.ContainsFunc(seen, func(s FileAttributes) bool { return sameReading(&s, &r) }) {
			seen = append(seen, r)
			a.Alternatives = append(a.Alternatives, r)
		}
	}
	return &a
}

func sameReading(a, b *FileAttributes) bool {
	sameV := (a.FileVersion == nil) == (b.FileVersion == nil) && (a.FileVersion == nil || *a.FileVersion == *b.FileVersion)
	return sameV && a.OriginalFileName == b.OriginalFileName && a.InternalName == b.InternalName &&
		a.FileDescription == b.FileDescription && a.ProductName == b.ProductName
}

// readings returns a's readings: itself, then its Alternatives. A nil a (no
// version resource) is one reading with no strings and an unknown version.
func (a *FileAttributes) readings() []*FileAttributes {
	if a == nil {
		return []*FileAttributes{{}}
	}
	out := []*FileAttributes{a}
	for i := range a.Alternatives {
		out = append(out, &a.Alternatives[i])
	}
	return out
}

func (a *FileAttributes) field(f FileNameField) string {
	switch f {
	case InternalName:
		return a.InternalName
	case FileDescription:
		return a.FileDescription
	case ProductName:
		return a.ProductName
	}
	return a.OriginalFileName
}

// Matches reports whether a file's attributes match as an allow rule's
// must: every reading of the file's version resources matches, with a
// known version where the rule bounds it.
func (m *FileAttrMatch) Matches(a *FileAttributes) bool {
	ok, _ := m.Match(a, false)
	return ok
}

// Match reports whether a file's attributes match, and says why when the
// readings of the file's version resources made the difference. A deny
// rule (deny true, and exceptions to allow rules) must match at least as
// much as Windows, so it matches when any reading matches, an unknown
// version (no VS_FIXEDFILEINFO) counting as within any bound. An allow
// rule must match at most as much, so it matches only when every reading
// matches with a known version.
func (m *FileAttrMatch) Match(a *FileAttributes, deny bool) (bool, string) {
	if m.Name == "" && m.MinVersion == nil && m.MaxVersion == nil {
		return false, ""
	}
	rs := a.readings()
	matched, unknown := -1, false
	for i, r := range rs {
		ok, unk := m.matchReading(r, deny)
		if ok && (deny || !unk) {
			if matched < 0 {
				matched, unknown = i, unk
			}
			continue
		}
		if !deny {
			switch {
			case ok && unk:
				return false, fmt.Sprintf("the file has no VS_FIXEDFILEINFO, so its version is unknown and cannot be shown to lie within %s", m.bounds())
			case i > 0 || matched >= 0:
				return false, fmt.Sprintf("the file's version resources disagree: %s; an allow rule must hold for every reading, since which one Windows reads is not established", describeReadings(rs, m.Field))
			}
			return false, ""
		}
	}
	switch {
	case matched < 0:
		return false, ""
	case unknown:
		return true, fmt.Sprintf("the file has no VS_FIXEDFILEINFO: its version is unknown, so a deny rule bounded by %s applies", m.bounds())
	case matched > 0:
		return true, fmt.Sprintf("by another reading of the file's version resources (%s)", describeReadings(rs, m.Field))
	}
	return true, ""
}

// matchReading reports whether one reading matches, and whether only
// because its version is unknown.
func (m *FileAttrMatch) matchReading(r *FileAttributes, deny bool) (ok, unknown bool) {
	if m.Name != "" && !sameName(r.field(m.Field), m.Name, deny) {
		return false, false
	}
	if m.MinVersion == nil && m.MaxVersion == nil {
		return true, false
	}
	if r.FileVersion == nil {
		return true, true
	}
	if m.MinVersion != nil && r.FileVersion.Compare(*m.MinVersion) < 0 {
		return false, false
	}
	if m.MaxVersion != nil && r.FileVersion.Compare(*m.MaxVersion) > 0 {
		return false, false
	}
	return true, false
}

// sameName compares a file's name with a rule's, ignoring case. How
// Windows folds case here is not established: by its upper-case table
// (RtlUpcaseUnicodeChar, which maps U+0131 "ı" to "I", where Unicode case
// folding does not), or by ASCII letters alone (a C-locale _wcsicmp). So a
// deny rule (deny true) matches names equal under any of Unicode simple
// case folding, simple upper case and simple lower case, and an allow rule
// only names equal but for the case of ASCII letters, which every one of
// them folds: "\u212Aernel.exe" (with a Kelvin sign) is not "kernel.exe" to
// an allow rule, and "evıl.exe" is "evil.exe" to a deny rule.
func sameName(name, rule string, deny bool) bool {
	if deny {
		return strings.EqualFold(name, rule) || strings.ToUpper(name) == strings.ToUpper(rule) || strings.ToLower(name) == strings.ToLower(rule)
	}
	return asciiLower(name) == asciiLower(rule)
}

// asciiLower lower-cases the ASCII letters of s and leaves every other
// byte as it is (invalid UTF-8 included).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (m *FileAttrMatch) bounds() string {
	switch {
	case m.MinVersion != nil && m.MaxVersion != nil:
		return "versions " + m.MinVersion.String() + " to " + m.MaxVersion.String()
	case m.MinVersion != nil:
		return "version >= " + m.MinVersion.String()
	case m.MaxVersion != nil:
		return "version <= " + m.MaxVersion.String()
	}
	return "no version"
}

// describeReadings lists what each reading says of a field, and its
// version, quoted (the strings come from the file).
func describeReadings(rs []*FileAttributes, f FileNameField) string {
	if f == "" {
		f = OriginalFileName
	}
	const show = 4
	var parts []string
	for i, r := range rs {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(rs)-show))
			break
		}
		v := "no version"
		if r.FileVersion != nil {
			v = "version " + r.FileVersion.String()
		}
		parts = append(parts, fmt.Sprintf("%s %q, %s", f, r.field(f), v))
	}
	return strings.Join(parts, "; ")
}

func (m *FileAttrMatch) String() string {
	f := m.Field
	if f == "" {
		f = OriginalFileName
	}
	s := fmt.Sprintf("%s %q", f, m.Name)
	if m.MinVersion != nil {
		s += " version >= " + m.MinVersion.String()
	}
	if m.MaxVersion != nil {
		s += " version <= " + m.MaxVersion.String()
	}
	return s
}

// hostChecks reports whether the host that runs files of format f checks
// their signatures of format sf, for allow rules that name no
// signature_formats: a file's own signatures (Authenticode, an appended
// signature) always; the Linux ones that travel beside it (security.ima,
// an fs-verity signature) only for ELF files, and a dm-verity root hash
// signature only for an image. A Windows host never reads security.ima:
// an unsigned PE with an IMA signature in a sidecar must not be allowed
// by a rule meant for Authenticode.
func hostChecks(f Format, sf string) bool {
	switch sf {
	case "ima", "fsverity":
		return f == FormatELF
	case "dmverity":
		return f == FormatImage
	}
	return true
}

// signerOutcome is what matching one signer rule against a subject found.
type signerOutcome struct {
	sig   int // index into Subject.Signatures
	chain []*signing.Certificate
	cert  *signing.Certificate // the certificate the rule names
}

// matchSigner returns the first verified signature and chain of s that
// satisfy the rule, or why none does.
func matchSigner(r *compiledRule, s *Subject, now time.Time, trusted func(*signing.Certificate) bool) (*signerOutcome, string) {
	m := r.Signer
	if m.OEMID != "" {
		return nil, "rule sets an OEM ID, which cannot be judged from a file"
	}
	if len(m.Files) > 0 {
		ok, why := false, "file attributes do not match"
		for i := range m.Files {
			o, w := m.Files[i].Match(s.Attributes, r.broad)
			if o {
				ok = true
				break
			}
			if w != "" {
				why = "file attributes do not match: " + w
			}
		}
		if !ok {
			return nil, why
		}
	}
	// A deny rule matches more, never less: certificate dates, the ECDSA
	// exclusion and the code signing usage only ever restrict what an
	// allow rule admits (an expired or misused leaked key still signed).
	// So does an allow rule's exception, which takes files away from the
	// allow (r.broad): a leaked signer excepted from an allow is excepted
	// wherever its signature sits and whatever its dates.
	deny := r.broad
	why, ignoredWhy := "", ""
	for i, sig := range s.Signatures {
		if !sig.Verified() {
			continue
		}
		if len(m.SignatureFormats) > 0 && !slices.Contains(m.SignatureFormats, sig.Format) {
			if why == "" {
				why = fmt.Sprintf("signature %d is %s, and the rule counts only %s signatures", i, sig.Format, strings.Join(m.SignatureFormats, ", "))
			}
			continue
		}
		if len(m.SignatureFormats) == 0 && !deny && !hostChecks(s.Format, sig.Format) {
			if why == "" {
				why = fmt.Sprintf("signature %d is %s, which no host running %s files checks (a rule counts it only with signature_formats naming it)", i, sig.Format, s.Format.Label())
			}
			continue
		}
		if !deny {
			// Key types and digests the hosts do not accept (WDAC
			// compatibility: RSA only).
			if bad := r.policy.refusesSignature(sig, s.Scenario); bad != "" {
				why = bad
				continue
			}
		}
		reached := false
		for _, chain := range sig.Chains {
			cert := certAtLevel(m, chain, trusted)
			if cert == nil {
				continue
			}
			reached = true
			leaf := chain[0]
			if m.Publisher != "" {
				if bad := nameMismatch("publisher", commonNames(leaf.Subject), m.Publisher, deny); bad != "" {
					why = bad
					continue
				}
			}
			if m.IssuerName != "" {
				if bad := nameMismatch("issuer", commonNames(leaf.Issuer), m.IssuerName, deny); bad != "" {
					why = bad
					continue
				}
			}
			if missing := missingEKU(leaf, m.EKUs); missing != "" {
				why = fmt.Sprintf("signing certificate lacks EKU %s", missing)
				continue
			}
			if deny {
				return &signerOutcome{sig: i, chain: chain, cert: cert}, ""
			}
			if host, ignored := ignoredIn(s.Scenario, sig); ignored != "" {
				// Allow rules match at most what the host counts.
				ignoredWhy = fmt.Sprintf("signature %d by %q matches, but does not count in scenario %s (%s): %s", i, leaf.CommonName(), s.Scenario, host, ignored)
				break
			}
			if s.Scenario != ScenarioBoot && !codeSigningLeaf(leaf) {
				// Firmware checks no usage; Windows and OpenSSL do.
				why = fmt.Sprintf("signing certificate %q is not for code signing (its EKUs: %s)", leaf.CommonName(), strings.Join(leaf.EKUs, ", "))
				continue
			}
			if bad := validity(r.policy, s, sig, chain, now); bad != "" {
				why = bad
				continue
			}
			return &signerOutcome{sig: i, chain: chain, cert: cert}, ""
		}
		if !reached && why == "" {
			// Say why no chain got as far as the rule's certificate, when
			// something stopped it short of a root (a non-CA issuer).
			why = chainGap(m, i, sig)
		}
	}
	if ignoredWhy != "" {
		// The most telling reason: a trusted signature that sits where
		// the host does not look.
		return nil, ignoredWhy
	}
	return nil, why
}

// oidCommonName is id-at-commonName.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// commonNames returns every common name of a distinguished name, in order
// (pkix.Name's CommonName is only the last).
func commonNames(n pkix.Name) []string {
	var out []string
	for _, a := range n.Names {
		if a.Type.Equal(oidCommonName) {
			s, _ := a.Value.(string)
			out = append(out, s)
		}
	}
	if len(out) == 0 && n.CommonName != "" {
		out = append(out, n.CommonName) // a name built in memory
	}
	return out
}

// nameMismatch says why a certificate's common names (of its subject or
// issuer) do not satisfy a publisher or issuer constraint, or "". Which
// common name Windows reads when there are several (crypto/x509 keeps the
// last, CertGetNameString may take the first), and whether it ignores
// case, is not established: a deny rule (deny true) matches if any common
// name equals want ignoring case (as file names compare for deny rules),
// an allow rule only a certificate with one common name, exactly want.
func nameMismatch(what string, cns []string, want string, deny bool) string {
	if deny {
		if slices.ContainsFunc(cns, func(cn string) bool { return sameName(cn, want, true) }) {
			return ""
		}
		return fmt.Sprintf("%s %s is not %q", what, quoteNames(cns), want)
	}
	switch {
	case len(cns) > 1:
		return fmt.Sprintf("%s has %d common names %s: which one Windows reads is not established, so an allow rule's %s %q cannot match it", what, len(cns), quoteNames(cns), what, want)
	case len(cns) == 1 && cns[0] == want:
		return ""
	}
	return fmt.Sprintf("%s %s is not %q", what, quoteNames(cns), want)
}

func quoteNames(cns []string) string {
	if len(cns) == 0 {
		return `""`
	}
	q := make([]string, len(cns))
	for i, cn := range cns {
		q[i] = strconv.Quote(cn)
	}
	return strings.Join(q, ", ")
}

// ignoredIn returns a host whose view of signatures scenario sc judges by,
// and why it does not count sig ("" if every such host counts it): Windows
// for user and kernel, UEFI firmware for boot, and both for any other
// scenario (fail closed: a signature either host ignores does not count).
func ignoredIn(sc Scenario, sig *signing.Signature) (signing.Host, string) {
	hosts := []signing.Host{signing.HostWindows, signing.HostUEFI}
	switch sc {
	case ScenarioUser, ScenarioKernel:
		hosts = hosts[:1]
	case ScenarioBoot:
		hosts = hosts[1:]
	}
	for _, h := range hosts {
		if why := sig.IgnoredBy[h]; why != "" {
			return h, why
		}
	}
	return "", ""
}

// chainGap says why the chains of signature i end short of a root, from
// the certificates it carries and the one the rule names ("" when they end
// at roots).
func chainGap(m *SignerMatch, i int, sig *signing.Signature) string {
	candidates := sig.Certificates
	if m.Cert.Certificate != nil {
		candidates = append(candidates[:len(candidates):len(candidates)], m.Cert.Certificate)
	}
	for _, chain := range sig.Chains {
		if gap := signing.ChainEnd(chain, candidates); gap != "" {
			return fmt.Sprintf("signature %d: %s", i, gap)
		}
	}
	return ""
}

func certAtLevel(m *SignerMatch, chain []*signing.Certificate, trusted func(*signing.Certificate) bool) *signing.Certificate {
	switch m.Level {
	case LevelLeaf:
		if m.Cert.Matches(chain[0], trusted) {
			return chain[0]
		}
	case LevelIssuer:
		if len(chain) > 1 && m.Cert.Matches(chain[1], trusted) {
			return chain[1]
		}
	case LevelRoot:
		if top := chain[len(chain)-1]; len(chain) > 1 && m.Cert.Matches(top, trusted) {
			return top
		}
	default:
		for _, c := range chain {
			if m.Cert.Matches(c, trusted) {
				return c
			}
		}
	}
	return nil
}

// codeSigningLeaf reports whether a signing certificate may sign code: it
// has no EKU extension, or lists code signing or any usage.
func codeSigningLeaf(leaf *signing.Certificate) bool {
	return leaf.EKUs == nil || leaf.HasEKU(signing.OIDCodeSigning.String()) || leaf.HasEKU(signing.OIDAnyEKU.String())
}

func missingEKU(leaf *signing.Certificate, ekus []string) string {
	for _, e := range ekus {
		if !leaf.HasEKU(e) {
			return e
		}
	}
	return ""
}

// validity checks the certificates' validity periods:
//
//   - For boot components, not at all: UEFI firmware ignores certificate
//     dates, so a verifier judging what it booted must too.
//   - Under WDAC compatibility, as Windows does: expiry is ignored, except
//     that a leaf with the Lifetime Signing EKU must be valid now.
//   - Otherwise every certificate of the chain must be valid at the signing
//     time: the time of a verified timestamp from a timestamp authority the
//     policy trusts, or else now.
func validity(p *Policy, s *Subject, sig *signing.Signature, chain []*signing.Certificate, now time.Time) string {
	if s.Scenario == ScenarioBoot {
		return ""
	}
	lifetime := chain[0].HasEKU(signing.OIDLifetimeSigning.String())
	if p.WDACCompatible {
		if lifetime && (now.Before(chain[0].NotBefore) || now.After(chain[0].NotAfter)) {
			return fmt.Sprintf("signing certificate %q carries the Lifetime Signing EKU and is not valid now", chain[0].CommonName())
		}
		return ""
	}
	at, what := now, "now"
	if ts := sig.Timestamp; ts != nil {
		if why := timestampUnused(p, ts, lifetime, now); why == "" {
			at, what = ts.Time, "at the timestamp, "+ts.Time.UTC().Format(time.RFC3339)
		} else {
			what = "now (the signature's timestamp was ignored: " + why + ")"
		}
	}
	for _, c := range chain {
		if at.Before(c.NotBefore) || at.After(c.NotAfter) {
			return fmt.Sprintf("certificate %q (valid %s to %s) is not valid %s",
				c.CommonName(), c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly), what)
		}
	}
	return ""
}

// timestampUnused says why a signature's timestamp does not set the time
// its chain is judged at, or "" when it does.
func timestampUnused(p *Policy, ts *signing.Timestamp, lifetime bool, now time.Time) string {
	switch {
	case !ts.Verified() && ts.Problem != nil:
		return fmt.Sprintf("it does not verify: %v", ts.Problem)
	case !ts.Verified():
		return "it does not verify"
	case lifetime:
		return "the signing certificate carries the Lifetime Signing EKU, so its signatures expire with it"
	case ts.Time.After(now):
		return fmt.Sprintf("it states a time in the future, %s", ts.Time.UTC().Format(time.RFC3339))
	case len(p.TimestampAuthorities) == 0:
		return "the policy names no timestamp_authorities"
	case trustedTimestamp(p, ts):
		return ""
	}
	// Say what is wrong with the chain that came closest.
	why := "its TSA is not among the policy's timestamp_authorities"
	for _, chain := range ts.Chains {
		if len(chain) == 0 {
			continue
		}
		listed := slices.ContainsFunc(chain, func(c *signing.Certificate) bool {
			return slices.ContainsFunc(p.TimestampAuthorities, func(r CertRef) bool { return r.Matches(c, nil) })
		})
		if !listed {
			continue
		}
		if !chain[0].HasEKU(signing.OIDTimeStamping.String()) {
			return fmt.Sprintf("its signer %q is not a timestamping certificate (no timeStamping EKU)", chain[0].CommonName())
		}
		for _, c := range chain {
			if ts.Time.Before(c.NotBefore) || ts.Time.After(c.NotAfter) {
				why = fmt.Sprintf("certificate %q of its TSA was not valid at the time it states, %s", c.CommonName(), ts.Time.UTC().Format(time.RFC3339))
			}
		}
	}
	return why
}

// trustedTimestamp reports whether a verified timestamp comes from a
// timestamp authority the policy trusts: one of its chains (built with CA
// checks) starts at a time-stamping certificate (the timeStamping EKU
// alone, critical: timestamp.CheckCertificate, the rule every
// timestamp path uses), holds one of the policy's timestamp authorities,
// and every certificate of it was valid at the time it states.
func trustedTimestamp(p *Policy, ts *signing.Timestamp) bool {
	for _, chain := range ts.Chains {
		if len(chain) == 0 || timestamp.CheckCertificate(chain[0]) != nil {
			continue
		}
		valid, listed := true, false
		for _, c := range chain {
			if ts.Time.Before(c.NotBefore) || ts.Time.After(c.NotAfter) {
				valid = false
			}
			for i := range p.TimestampAuthorities {
				if p.TimestampAuthorities[i].Matches(c, nil) {
					listed = true
				}
			}
		}
		if valid && listed {
			return true
		}
	}
	return false
}
