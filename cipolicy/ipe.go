package cipolicy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// This file reads, judges with and writes IPE policies: the text policies
// of Linux's Integrity Policy Enforcement LSM (Linux 6.12,
// Documentation/admin-guide/LSM/ipe.rst).
//
// The grammar, as security/ipe/policy_parser.c reads it:
//
//   - Lines end at "\n" or "\r"; "#" starts a comment to the end of the
//     line; trailing white space is dropped; tokens are separated by
//     spaces and tabs. There is no line continuation: a backslash is an
//     ordinary byte, so a rule split over two lines is two (bad) lines.
//   - The first line that is not empty is the header, exactly
//     "policy_name=NAME policy_version=MAJOR.MINOR.REV" (each part a
//     decimal 16-bit number).
//   - Every other line is "DEFAULT action=A", "DEFAULT op=OP action=A" or a
//     rule "op=OP [PROPERTY]... action=A": op first, action last, each
//     DEFAULT at most once, and a DEFAULT for every op unless there is a
//     global one.
//
// csv is stricter than the kernel where the kernel reads what the writer
// cannot have meant: a NUL byte (the kernel stops reading there, silently
// dropping the rules after it) and a digest property whose algorithm csv
// does not know or whose hex has the wrong length for it (the kernel takes
// any name and such a rule never matches) are refused.

// IPEOp is an IPE operation: what the host is doing with the file.
type IPEOp string

// IPE operations, in the kernel's order.
const (
	IPEExecute        IPEOp = "EXECUTE"
	IPEFirmware       IPEOp = "FIRMWARE"
	IPEKModule        IPEOp = "KMODULE"
	IPEKexecImage     IPEOp = "KEXEC_IMAGE"
	IPEKexecInitramfs IPEOp = "KEXEC_INITRAMFS"
	IPEPolicyOp       IPEOp = "POLICY"
	IPEX509Cert       IPEOp = "X509_CERT"
)

// IPEOps lists the operations in the kernel's order.
var IPEOps = []IPEOp{IPEExecute, IPEFirmware, IPEKModule, IPEKexecImage, IPEKexecInitramfs, IPEPolicyOp, IPEX509Cert}

// ParseIPEOp parses an operation name as a policy writes it (EXECUTE).
func ParseIPEOp(s string) (IPEOp, error) {
	if op := IPEOp(s); slices.Contains(IPEOps, op) {
		return op, nil
	}
	return "", fmt.Errorf("cipolicy: unknown IPE operation %q (want %s)", s, orList(IPEOps))
}

// IPE property names.
const (
	IPEBootVerified      = "boot_verified"
	IPEDMVerityRootHash  = "dmverity_roothash"
	IPEDMVeritySignature = "dmverity_signature"
	IPEFSVerityDigest    = "fsverity_digest"
	IPEFSVeritySignature = "fsverity_signature"
)

// Signature formats (signing.Signature.Format) the IPE signature
// properties count.
const (
	SignatureFSVerity = "fsverity"
	SignatureDMVerity = "dmverity"
)

// Errors of IPE policy text, each wrapped by the Problem that reports it
// (and so by the LoadError: errors.Is finds them).
var (
	// ErrIPEHeader: the first line is not "policy_name=... policy_version=...".
	ErrIPEHeader = errors.New("cipolicy: bad IPE policy header")
	// ErrIPEVersion: policy_version is not MAJOR.MINOR.REV of 16-bit numbers.
	ErrIPEVersion = errors.New("cipolicy: bad IPE policy version")
	// ErrIPEToken: a token that is no operation, property or action the
	// kernel knows (or one in the wrong place: op first, action last).
	ErrIPEToken = errors.New("cipolicy: unknown or misplaced IPE token")
	// ErrIPEValue: a property's value is not one it takes.
	ErrIPEValue = errors.New("cipolicy: bad IPE property value")
	// ErrIPEDefault: a DEFAULT given twice, with properties, or missing.
	ErrIPEDefault = errors.New("cipolicy: bad IPE DEFAULT")
	// ErrIPEText: bytes the kernel would not read as meant (a NUL) or a
	// line or file over a cap.
	ErrIPEText = errors.New("cipolicy: bad IPE policy text")
	// ErrIPEBootVerified: the policy reads boot_verified, which depends on
	// how the host booted, and the run did not say (IPEOptions).
	ErrIPEBootVerified = errors.New("cipolicy: the IPE policy reads boot_verified, which the run must be told")
)

// IPEPolicy is an IPE policy as written: its header, defaults and rules.
// A Policy with IPE set is judged in rule order, first match wins (see
// [Set.Evaluate]), not as WDAC policies are.
type IPEPolicy struct {
	Name    string
	Version [3]uint16
	// Default is the global DEFAULT action ("" if none); DefaultLine its
	// line.
	Default     Action
	DefaultLine int
	// OpDefaults are the DEFAULT op=OP actions, with their lines.
	OpDefaults map[IPEOp]IPEDefault
	// Rules are the rules in file order.
	Rules []IPERule
}

// IPEDefault is a DEFAULT op=OP line.
type IPEDefault struct {
	Action Action
	Line   int
}

// IPERule is one IPE rule: every property must hold for it to match.
type IPERule struct {
	Op     IPEOp
	Props  []IPEProperty
	Action Action
	// Line is the rule's line in the file, Text the rule as written
	// (without comment and surrounding space).
	Line int
	Text string
	// Comment is written above the rule by MarshalIPE, a "#" line per
	// line of it (not read back).
	Comment string
}

// IPEProperty is one property of a rule.
type IPEProperty struct {
	// Name is the property (IPEBootVerified, ...), Value its value as
	// written.
	Name  string
	Value string
	// Bool is the value of a TRUE/FALSE property.
	Bool bool
	// Hash is what a digest property compares: a hash rule on
	// FSVeritySHA256 or DMVeritySHA256. Nil for other properties and for
	// a digest csv does not compute (Unjudged).
	Hash *HashMatch
	// Unjudged says why csv cannot judge the property (a digest of an
	// algorithm it does not compute): "" if it can.
	Unjudged string
}

// VersionString is the policy version as the header writes it.
func (p *IPEPolicy) VersionString() string {
	return fmt.Sprintf("%d.%d.%d", p.Version[0], p.Version[1], p.Version[2])
}

// ReadsBootVerified returns the line of the first rule that reads
// boot_verified, or 0.
func (p *IPEPolicy) ReadsBootVerified() int {
	for i := range p.Rules {
		for _, pr := range p.Rules[i].Props {
			if pr.Name == IPEBootVerified {
				return p.Rules[i].Line
			}
		}
	}
	return 0
}

// isIPE reports whether text is an IPE policy: its first line that is
// neither empty nor a comment starts with a key of the header, DEFAULT or
// op= (which neither a YAML policy, a mapping of lower-case keys and
// colons, nor SiPolicy XML can), so that an IPE policy with its header
// missing or misspelt is refused as IPE, saying so.
func isIPE(text []byte) bool {
	for len(text) > 0 {
		line := text
		if i := bytes.IndexAny(text, "\n\r"); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimLeft(line, " \t")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		for _, p := range []string{"policy_name=", "policy_version=", "DEFAULT ", "DEFAULT\t", "op="} {
			if bytes.HasPrefix(line, []byte(p)) {
				return true
			}
		}
		return false
	}
	return false
}

// ipeDigestAlgs are the digest algorithms IPE policies name that csv knows:
// their hex length, and the algorithm csv computes for each property
// ("" where it computes none: such a property is carried, Unjudged).
var ipeDigestAlgs = map[string]struct {
	size     int
	fsverity HashAlgorithm
	dmverity HashAlgorithm
}{
	"sha256": {32, FSVeritySHA256, DMVeritySHA256},
	"sha512": {64, "", ""},
	"sha1":   {20, "", ""},
	"sha384": {48, "", ""},
}

const maxIPEProblems = 100

// ParseIPE reads an IPE policy. source names it in messages. Errors are a
// *LoadError listing every problem (up to 100), each naming its line and
// the column and token at fault, and wrapping one of the ErrIPE errors.
func ParseIPE(data []byte, source string) (*Policy, error) {
	le := &LoadError{Source: source}
	bad := func(line, col int, kind error, format string, args ...any) {
		if len(le.Problems) < maxIPEProblems {
			msg := fmt.Sprintf(format, args...)
			if col > 0 {
				msg = fmt.Sprintf("column %d: %s", col, msg)
			}
			le.Problems = append(le.Problems, Problem{Line: line, Message: msg, Err: kind})
		}
	}
	if len(data) > limits.MaxPolicyFile {
		bad(0, 0, ErrIPEText, "policy is %d bytes, over the limit of %d", len(data), limits.MaxPolicyFile)
		return nil, le
	}
	ip := &IPEPolicy{OpDefaults: map[IPEOp]IPEDefault{}}
	header := false
	lineNo := 0
	for rest := data; len(rest) > 0 && len(le.Problems) < maxIPEProblems; {
		raw := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		lineNo++
		if lineNo > limits.MaxIPELines {
			bad(lineNo, 0, ErrIPEText, "policy has more than %d lines", limits.MaxIPELines)
			break
		}
		if len(raw) > limits.MaxIPELine {
			bad(lineNo, 0, ErrIPEText, "line is %d bytes, over the limit of %d", len(raw), limits.MaxIPELine)
			continue
		}
		if i := bytes.IndexByte(raw, 0); i >= 0 {
			bad(lineNo, i+1, ErrIPEText, "NUL byte: the kernel stops reading the policy there and ignores every rule after it")
			continue
		}
		// A carriage return ends a line too (the kernel splits at
		// either); it keeps the line number of its newline-ended line.
		col := 0
		for _, seg := range bytes.Split(raw, []byte("\r")) {
			segCol := col
			col += len(seg) + 1
			if i := bytes.IndexByte(seg, '#'); i >= 0 {
				seg = seg[:i]
			}
			seg = trimKernelSpace(seg)
			toks := ipeTokens(seg, segCol)
			if len(toks) == 0 {
				continue
			}
			text := string(bytes.TrimLeft(seg, " \t"))
			if !header {
				header = true
				parseIPEHeader(ip, toks, lineNo, bad)
				continue
			}
			parseIPELine(ip, toks, lineNo, text, bad)
		}
	}
	if len(le.Problems) == 0 {
		switch {
		case !header:
			bad(0, 0, ErrIPEHeader, "no header: an IPE policy starts with policy_name=NAME policy_version=MAJOR.MINOR.REV")
		case ip.Default == "":
			var missing []string
			for _, op := range IPEOps {
				if _, ok := ip.OpDefaults[op]; !ok {
					missing = append(missing, string(op))
				}
			}
			if len(missing) > 0 {
				bad(0, 0, ErrIPEDefault, "no DEFAULT action=ALLOW|DENY, and no DEFAULT op=OP for %s: the kernel refuses a policy that does not say what happens to every operation", strings.Join(missing, ", "))
			}
		}
	}
	if len(ip.Rules) > limits.MaxPolicyRules {
		bad(0, 0, ErrIPEText, "policy has %d rules, over the limit of %d", len(ip.Rules), limits.MaxPolicyRules)
	}
	if len(le.Problems) > 0 {
		return nil, le
	}
	mode := Enforce
	p := &Policy{ID: ip.Name, Name: ip.Name, Version: ip.VersionString(), Type: Base, Mode: mode, Format: "ipe", IPE: ip}
	return p, nil
}

// trimKernelSpace drops trailing white space as the kernel's isspace
// knows it: space, \t, \n, \v, \f, \r and Latin-1's no-break space
// (0xa0), byte by byte (a policy is not read as UTF-8).
func trimKernelSpace(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
			b = b[:len(b)-1]
			continue
		}
		break
	}
	return b
}

type ipeToken struct {
	text string
	col  int // 1-based
}

// ipeTokens splits a line at spaces and tabs, keeping each token's column.
func ipeTokens(line []byte, col0 int) []ipeToken {
	var out []ipeToken
	start := -1
	for i := 0; i <= len(line); i++ {
		if i == len(line) || line[i] == ' ' || line[i] == '\t' {
			if start >= 0 {
				out = append(out, ipeToken{string(line[start:i]), col0 + start + 1})
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return out
}

type ipeReport func(line, col int, kind error, format string, args ...any)

func parseIPEHeader(ip *IPEPolicy, toks []ipeToken, line int, bad ipeReport) {
	keys := []string{"policy_name=", "policy_version="}
	for i, t := range toks {
		if i >= len(keys) {
			bad(line, t.col, ErrIPEHeader, "%q: the header holds policy_name= and policy_version= only", t.text)
			return
		}
		v, ok := strings.CutPrefix(t.text, keys[i])
		if !ok {
			bad(line, t.col, ErrIPEHeader, "%q: want %s... here (the header is policy_name=NAME policy_version=MAJOR.MINOR.REV, in that order)", t.text, keys[i])
			return
		}
		if v == "" {
			bad(line, t.col, ErrIPEHeader, "%q: empty value", t.text)
			return
		}
		if i == 0 {
			ip.Name = v
			continue
		}
		parts := strings.Split(v, ".")
		if len(parts) != 3 {
			bad(line, t.col, ErrIPEVersion, "%q: want MAJOR.MINOR.REV (three numbers)", t.text)
			return
		}
		for j, s := range parts {
			// As the kernel's kstrtou16: decimal, an optional "+".
			n, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 16)
			if err != nil || s == "" || strings.HasPrefix(s, "++") || strings.HasPrefix(s, "+-") {
				bad(line, t.col, ErrIPEVersion, "%q: %q is not a number from 0 to 65535", t.text, s)
				return
			}
			ip.Version[j] = uint16(n)
		}
	}
	if len(toks) < len(keys) {
		bad(line, 0, ErrIPEHeader, "the header needs policy_name=NAME policy_version=MAJOR.MINOR.REV")
	}
}

func parseIPEAction(t ipeToken, line int, bad ipeReport) Action {
	switch t.text {
	case "action=ALLOW":
		return Allow
	case "action=DENY":
		return Deny
	}
	if strings.HasPrefix(t.text, "action=") {
		bad(line, t.col, ErrIPEValue, "%q: want action=ALLOW or action=DENY", t.text)
	} else {
		bad(line, t.col, ErrIPEToken, "%q: a line ends with action=ALLOW or action=DENY", t.text)
	}
	return ""
}

func parseIPELine(ip *IPEPolicy, toks []ipeToken, line int, text string, bad ipeReport) {
	last := toks[len(toks)-1]
	body := toks[:len(toks)-1]
	isDefault := toks[0].text == "DEFAULT"
	if isDefault {
		body = body[min(1, len(body)):]
		if len(toks) == 1 {
			bad(line, last.col, ErrIPEToken, "DEFAULT without action=ALLOW|DENY")
			return
		}
	}
	var op IPEOp
	var props []IPEProperty
	ok := true
	for i, t := range body {
		if i == 0 {
			name, found := strings.CutPrefix(t.text, "op=")
			if !found {
				bad(line, t.col, ErrIPEToken, "%q: a rule starts with op=OP (%s)", t.text, orList(IPEOps))
				return
			}
			o, err := ParseIPEOp(name)
			if err != nil {
				bad(line, t.col, ErrIPEToken, "%q: unknown operation (want %s)", t.text, orList(IPEOps))
				return
			}
			op = o
			continue
		}
		if len(props) >= limits.MaxIPERuleProperties {
			bad(line, t.col, ErrIPEText, "a rule has more than %d properties", limits.MaxIPERuleProperties)
			return
		}
		pr, good := parseIPEProperty(t, line, bad)
		ok = ok && good
		props = append(props, pr)
	}
	action := parseIPEAction(last, line, bad)
	if action == "" || !ok {
		return
	}
	if isDefault {
		switch {
		case len(props) > 0:
			bad(line, body[1].col, ErrIPEDefault, "%q: a DEFAULT takes no properties", body[1].text)
		case op == "" && ip.Default != "":
			bad(line, toks[0].col, ErrIPEDefault, "second global DEFAULT (the first is on line %d)", ip.DefaultLine)
		case op == "":
			ip.Default, ip.DefaultLine = action, line
		default:
			if d, dup := ip.OpDefaults[op]; dup {
				bad(line, toks[0].col, ErrIPEDefault, "second DEFAULT op=%s (the first is on line %d)", op, d.Line)
				return
			}
			ip.OpDefaults[op] = IPEDefault{Action: action, Line: line}
		}
		return
	}
	if op == "" {
		bad(line, last.col, ErrIPEToken, "%q: a rule starts with op=OP", last.text)
		return
	}
	ip.Rules = append(ip.Rules, IPERule{Op: op, Props: props, Action: action, Line: line, Text: text})
}

func parseIPEProperty(t ipeToken, line int, bad ipeReport) (IPEProperty, bool) {
	name, value, found := strings.Cut(t.text, "=")
	pr := IPEProperty{Name: name, Value: value}
	switch {
	case !found:
	case name == IPEBootVerified || name == IPEDMVeritySignature || name == IPEFSVeritySignature:
		switch value {
		case "TRUE":
			pr.Bool = true
		case "FALSE":
		default:
			bad(line, t.col, ErrIPEValue, "%q: %s takes TRUE or FALSE", t.text, name)
			return pr, false
		}
		return pr, true
	case name == IPEDMVerityRootHash || name == IPEFSVerityDigest:
		alg, hx, ok := strings.Cut(value, ":")
		info, known := ipeDigestAlgs[alg]
		switch {
		case !ok:
			bad(line, t.col, ErrIPEValue, "%q: want %s=ALGORITHM:HEX (the kernel refuses a digest without its algorithm)", t.text, name)
			return pr, false
		case !known:
			bad(line, t.col, ErrIPEValue, "%q: unknown digest algorithm %q (csv knows sha256, sha1, sha384 and sha512; the kernel would never match this rule)", t.text, alg)
			return pr, false
		}
		v, err := hex.DecodeString(hx)
		if err != nil || len(v) != info.size {
			bad(line, t.col, ErrIPEValue, "%q: want %d hex digits of a %s digest", t.text, 2*info.size, alg)
			return pr, false
		}
		a := info.fsverity
		what := "fs-verity file digests"
		if name == IPEDMVerityRootHash {
			a, what = info.dmverity, "dm-verity root hashes"
		}
		if a == "" {
			pr.Unjudged = fmt.Sprintf("csv computes %s with sha256 only, not %s", what, alg)
		} else {
			pr.Hash = &HashMatch{Algorithm: a, Value: v}
		}
		return pr, true
	}
	bad(line, t.col, ErrIPEToken, "%q: unknown property (want %s=TRUE|FALSE, %s=ALG:HEX, %s=TRUE|FALSE, %s=ALG:HEX or %s=TRUE|FALSE, then action=)",
		t.text, IPEBootVerified, IPEDMVerityRootHash, IPEDMVeritySignature, IPEFSVerityDigest, IPEFSVeritySignature)
	return pr, false
}

// IPEOptions are what judging with IPE policies needs to know of the host
// that csv cannot read from a file.
type IPEOptions struct {
	// BootVerified is what IPE's boot_verified property is for the files
	// judged: whether the host reads them from the initial superblock (the
	// initramfs the boot loader verified). Nil: not known, and a set with
	// an IPE policy that reads boot_verified is refused (NewSet).
	BootVerified *bool
	// Op, if set, judges every subject under this operation; otherwise
	// kernel modules (ELF files named *.ko, carrying a module signature,
	// relocatable (ET_REL: the kernel executes none) or judged in the
	// kernel scenario) under KMODULE and every other file
	// under EXECUTE.
	Op IPEOp
}

// ipeGroup judges subjects with an IPE policy.
type ipeGroup struct {
	p *IPEPolicy
	// byOp indexes the rules of each op: rules whose first judged digest
	// property is a given digest (only a subject with that digest can
	// match them), and the others, each list in rule order.
	byOp map[IPEOp]*ipeIndex
}

type ipeIndex struct {
	byDigest map[hashKey][]int
	others   []int
	// denyByAlg lists the indexed DENY rules by the algorithm of their
	// index: a subject whose format lacks that digest must consider them
	// (csv cannot tell they do not match, see ipeUnjudged).
	denyByAlg map[HashAlgorithm][]int
}

func newIPEGroup(p *IPEPolicy) *ipeGroup {
	g := &ipeGroup{p: p, byOp: map[IPEOp]*ipeIndex{}}
	for i := range p.Rules {
		r := &p.Rules[i]
		x := g.byOp[r.Op]
		if x == nil {
			x = &ipeIndex{byDigest: map[hashKey][]int{}, denyByAlg: map[HashAlgorithm][]int{}}
			g.byOp[r.Op] = x
		}
		j := slices.IndexFunc(r.Props, func(pr IPEProperty) bool { return pr.Hash != nil })
		if j < 0 {
			x.others = append(x.others, i)
			continue
		}
		k := hashKey{r.Props[j].Hash.Algorithm, string(r.Props[j].Hash.Value)}
		x.byDigest[k] = append(x.byDigest[k], i)
		if r.Action == Deny {
			x.denyByAlg[k.alg] = append(x.denyByAlg[k.alg], i)
		}
	}
	return g
}

// needs is what judging a subject of format f with the policy requires:
// every digest a rule compares that files of f have, and the signatures
// if a rule reads a signature property. Nothing is deferred: a rule
// earlier in the file decides before a later one whatever its kind.
func (g *ipeGroup) needs(f Format) ruleNeeds {
	var n Needs
	for i := range g.p.Rules {
		for _, pr := range g.p.Rules[i].Props {
			switch {
			case pr.Hash != nil && pr.Hash.Algorithm.AppliesTo(f):
				n.Digests = n.Digests.With(pr.Hash.Algorithm)
			case pr.Name == IPEFSVeritySignature || pr.Name == IPEDMVeritySignature:
				n.Signatures = true
			}
		}
	}
	return ruleNeeds{all: n, fixed: n.Digests, otherSigs: n.Signatures}
}

// ipeOp is the operation a subject is judged under.
func ipeOp(s *Subject, opts IPEOptions) IPEOp {
	if opts.Op != "" {
		return opts.Op
	}
	if s.Format == FormatELF && (s.Scenario == ScenarioKernel || s.Relocatable || strings.HasSuffix(s.Path, ".ko") ||
		slices.ContainsFunc(s.Signatures, func(sig *signing.Signature) bool { return sig.Format == "modsig" })) {
		return IPEKModule
	}
	return IPEExecute
}

// ipeMatch is the outcome of one property or rule: no, yes, or unknown
// (a property csv cannot judge).
type ipeMatch int

const (
	ipeNo ipeMatch = iota
	ipeYes
	ipeUnknown
)

// property judges one property for s; sig is the index of the signature a
// TRUE signature property matched (-1 otherwise).
func (g *ipeGroup) property(pr *IPEProperty, s *Subject, opts IPEOptions, trusted func(*signing.Certificate) bool) (m ipeMatch, sig int) {
	yes := func(b bool) ipeMatch {
		if b {
			return ipeYes
		}
		return ipeNo
	}
	switch pr.Name {
	case IPEBootVerified:
		// NewSet refuses a set that reads it without the option.
		return yes(opts.BootVerified != nil && *opts.BootVerified == pr.Bool), -1
	case IPEFSVerityDigest, IPEDMVerityRootHash:
		if pr.Unjudged != "" {
			return ipeUnknown, -1
		}
		if !pr.Hash.Algorithm.AppliesTo(s.Format) {
			if pr.Name == IPEDMVerityRootHash {
				// A loose file is on no dm-verity device.
				return ipeNo, -1
			}
			// csv computes no fs-verity digest for files of this format
			// (or, for an image, of the files in it), which the host
			// may: see ipeUnjudged.
			return ipeUnknown, -1
		}
		v := s.Digests.Get(pr.Hash.Algorithm)
		return yes(v != nil && bytes.Equal(v, pr.Hash.Value)), -1
	case IPEFSVeritySignature, IPEDMVeritySignature:
		format := SignatureFSVerity
		if pr.Name == IPEDMVeritySignature {
			format = SignatureDMVerity
		}
		i := trustedSignature(s, format, trusted)
		return yes((i >= 0) == pr.Bool), i
	}
	return ipeUnknown, -1
}

// trustedSignature returns the index of the first verified signature of the
// format whose chain holds a certificate the run trusts (--certs, the
// keyring the kernel checks such signatures against), or -1.
func trustedSignature(s *Subject, format string, trusted func(*signing.Certificate) bool) int {
	for i, sig := range s.Signatures {
		if sig.Format != format || !sig.Verified() {
			continue
		}
		for _, chain := range sig.Chains {
			for _, c := range chain {
				if trusted != nil && trusted(c) {
					return i
				}
			}
		}
	}
	return -1
}

// evaluate judges s as the kernel does: the rules of its operation in file
// order, the first whose properties all hold deciding; then the
// operation's DEFAULT, then the global one. A rule with a property csv
// cannot judge (and none that fails) is skipped if it allows (the file
// is not admitted by it) and blocks the file if it denies (fail closed).
func (g *ipeGroup) evaluate(s *Subject, d Decision, opts IPEOptions, trusted func(*signing.Certificate) bool) Decision {
	op := ipeOp(s, opts)
	// The kernel reads a module, firmware, kexec image or policy file as
	// it is stored: of a compressed one (x.ko.xz), csv judges the content,
	// whose fs-verity digest and signature are not the stored file's.
	stored := s.Decompressed && op != IPEExecute
	var notes []string
	decide := func(r *IPERule, sig int, hash bool) Decision {
		d.Rule = fmt.Sprintf("line %d", r.Line)
		what := fmt.Sprintf("IPE rule at line %d %q (op %s)", r.Line, r.Text, op)
		if r.Action == Deny {
			d.Kind, d.Reason = KindDenied, "denied by "+what
			d.Signature = sig
			return d
		}
		d.Verdict, d.Signature = Allowed, sig
		switch {
		case hash:
			d.Kind = KindAllowedByHash
		case sig >= 0:
			d.Kind = KindAllowedBySigner
		default:
			d.Kind = KindAllowedByRule
		}
		d.Reason = "allowed by " + what
		return d
	}
	if x := g.byOp[op]; x != nil {
		var cands []int
		for _, a := range HashAlgorithms {
			if v := s.Digests.Get(a); v != nil {
				cands = append(cands, x.byDigest[hashKey{a, string(v)}]...)
			}
		}
		cands = append(cands, x.others...)
		for a, rules := range x.denyByAlg {
			// A root hash rule never matches a loose file (property).
			if !a.AppliesTo(s.Format) && a != DMVeritySHA256 || stored && a == FSVeritySHA256 {
				cands = append(cands, rules...)
			}
		}
		slices.Sort(cands)
		cands = slices.Compact(cands)
		for _, i := range cands {
			r := &g.p.Rules[i]
			m, sig, hash := ipeYes, -1, false
			var why string
			for j := range r.Props {
				pr := &r.Props[j]
				pm, psig := g.property(pr, s, opts, trusted)
				storedWhy := ""
				if stored && (pr.Name == IPEFSVerityDigest || pr.Name == IPEFSVeritySignature) {
					pm, psig = ipeUnknown, -1
					storedWhy = fmt.Sprintf("under op %s the kernel reads the compressed file as it is stored, and its %s is not that of the decompressed content csv judges", op, pr.Name)
				}
				if pm == ipeNo {
					m = ipeNo
					break
				}
				if pm == ipeUnknown {
					m, why = ipeUnknown, ipeUnjudged(pr, s.Format)
					if storedWhy != "" {
						why = storedWhy
					}
				}
				if psig >= 0 && pr.Bool {
					sig = psig
				}
				hash = hash || pr.Hash != nil
			}
			switch {
			case m == ipeYes:
				return decide(r, sig, hash)
			case m == ipeUnknown && r.Action == Deny:
				d.Rule, d.Kind = fmt.Sprintf("line %d", r.Line), KindDenied
				d.Reason = fmt.Sprintf("blocked: csv cannot tell whether IPE rule at line %d %q (op %s) matches, and it denies (%s)", r.Line, r.Text, op, why)
				return d
			case m == ipeUnknown:
				notes = append(notes, fmt.Sprintf("IPE rule at line %d cannot be judged (%s)", r.Line, why))
			}
		}
	}
	action, line, which := g.p.Default, g.p.DefaultLine, "DEFAULT action="
	if od, ok := g.p.OpDefaults[op]; ok {
		action, line, which = od.Action, od.Line, "DEFAULT op="+string(op)+" action="
	}
	d.Rule = fmt.Sprintf("line %d", line)
	what := fmt.Sprintf("no IPE rule for op %s matches; %s%s (line %d)", op, which, ipeActionName(action), line)
	const maxNotes = 3
	if len(notes) > maxNotes {
		notes = append(notes[:maxNotes:maxNotes], fmt.Sprintf("and %d more", len(notes)-maxNotes))
	}
	if len(notes) > 0 {
		what += "; " + strings.Join(notes, "; ")
	}
	if action == Allow {
		d.Verdict, d.Kind, d.Reason = Allowed, KindAllowedByDefault, "allowed: "+what
		return d
	}
	d.Kind = KindNotAllowed
	if !s.Signed {
		d.Kind = KindUnsigned
	}
	var facts []string
	s.Digests.Each(func(a HashAlgorithm, v []byte) { facts = append(facts, fmt.Sprintf("%s %x", a.Label(), v)) })
	d.Reason = "blocked: " + what
	if len(facts) > 0 {
		d.Reason += "; " + strings.Join(facts, "; ")
	}
	return d
}

// ipeUnjudged says why csv cannot judge a property for files of format f.
func ipeUnjudged(pr *IPEProperty, f Format) string {
	if pr.Unjudged != "" {
		return pr.Unjudged
	}
	return fmt.Sprintf("csv computes the %s of %s files only, not of %s files", pr.Hash.Algorithm.Label(), pr.Hash.Algorithm.only(), f.Label())
}

func ipeActionName(a Action) string { return strings.ToUpper(string(a)) }

// MarshalIPE writes an IPE policy: p's own IPE text form when p was read
// from one (the header, the defaults, then the rules in order; comments are
// not kept), otherwise p's allow hash rules on fs-verity digests and
// dm-verity root hashes as op=EXECUTE rules (op=KMODULE for a rule of the
// kernel scenario alone: a kernel module's), after "DEFAULT action=DENY",
// in a policy named p.Name at p.Version. A rule of any other kind cannot be
// written as IPE and is an error.
func MarshalIPE(p *Policy) ([]byte, error) {
	ip := p.IPE
	if ip == nil {
		var err error
		if ip, err = ipeOf(p); err != nil {
			return nil, err
		}
	}
	if ip.Name == "" || strings.ContainsAny(ip.Name, " \t\r\n#\x00") {
		return nil, fmt.Errorf("%w: IPE policy name %q: want a non-empty name without spaces or '#'", ErrInvalidPolicy, ip.Name)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "policy_name=%s policy_version=%s\n", ip.Name, ip.VersionString())
	if ip.Default != "" {
		fmt.Fprintf(&b, "DEFAULT action=%s\n", ipeActionName(ip.Default))
	}
	for _, op := range IPEOps {
		if d, ok := ip.OpDefaults[op]; ok {
			fmt.Fprintf(&b, "DEFAULT op=%s action=%s\n", op, ipeActionName(d.Action))
		}
	}
	for i := range ip.Rules {
		r := &ip.Rules[i]
		for _, c := range strings.Split(r.Comment, "\n") {
			if c == "" {
				continue
			}
			// A file name in a comment must not end the line (the kernel
			// ends lines at "\r" too) and so write a rule.
			if strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				c = strconv.QuoteToASCII(c)
			}
			b.WriteString("# " + c + "\n")
		}
		b.WriteString("op=" + string(r.Op))
		for _, pr := range r.Props {
			b.WriteString(" " + pr.Name + "=" + pr.Value)
		}
		b.WriteString(" action=" + ipeActionName(r.Action) + "\n")
	}
	return b.Bytes(), nil
}

// ipeOf makes the IPE form of a policy of allow hash rules.
func ipeOf(p *Policy) (*IPEPolicy, error) {
	ip := &IPEPolicy{Name: p.Name, Default: Deny, OpDefaults: map[IPEOp]IPEDefault{}}
	if ip.Name == "" {
		ip.Name = p.ID
	}
	if p.Version != "" {
		parts := strings.Split(p.Version, ".")
		ok := len(parts) == 3
		for i := 0; ok && i < 3; i++ {
			n, err := strconv.ParseUint(parts[i], 10, 16)
			ok = err == nil
			ip.Version[i] = uint16(n)
		}
		if !ok {
			return nil, fmt.Errorf("%w: policy version %q: an IPE policy's version is MAJOR.MINOR.REV, each from 0 to 65535", ErrInvalidPolicy, p.Version)
		}
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		// A rule of the kernel scenario alone is a kernel module's:
		// op=KMODULE, as csv judges modules (ipeOp).
		op := IPEExecute
		if len(r.Scenarios) == 1 && r.Scenarios[0] == ScenarioKernel {
			op = IPEKModule
		}
		if r.Action != Allow || r.Hash == nil || len(r.Except) > 0 || len(r.Paths) > 0 || len(r.Scenarios) > 0 && op != IPEKModule {
			return nil, fmt.Errorf("%w: rule %q (%s) cannot be written as an IPE rule: IPE allows by fs-verity digest or dm-verity root hash only", ErrInvalidPolicy, r.ID, r.Describe())
		}
		var name string
		switch r.Hash.Algorithm {
		case FSVeritySHA256:
			name = IPEFSVerityDigest
		case DMVeritySHA256:
			name = IPEDMVerityRootHash
		default:
			return nil, fmt.Errorf("%w: rule %q compares the %s, which IPE cannot: it allows by fs-verity digest or dm-verity root hash", ErrInvalidPolicy, r.ID, r.Hash.Algorithm.Label())
		}
		v := "sha256:" + hex.EncodeToString(r.Hash.Value)
		ip.Rules = append(ip.Rules, IPERule{Op: op, Action: Allow,
			Props: []IPEProperty{{Name: name, Value: v, Hash: &HashMatch{Algorithm: r.Hash.Algorithm, Value: r.Hash.Value}}},
			Text:  "op=" + string(op) + " " + name + "=" + v + " action=ALLOW", Comment: r.Comment})
	}
	return ip, nil
}

// lintIPE looks for what is legal in an IPE policy but almost certainly
// wrong: rules that can never decide (after a rule of the same operation
// that matches every file, or repeating an earlier rule), and properties
// csv cannot judge.
func lintIPE(p *Policy) []Finding {
	var out []Finding
	ip := p.IPE
	add := func(r *IPERule, format string, args ...any) {
		out = append(out, Finding{Severity: SeverityWarning, Source: p.Source, Line: r.Line, Rule: fmt.Sprintf("line %d", r.Line), Message: fmt.Sprintf(format, args...)})
	}
	catchAll := map[IPEOp]int{}
	seen := map[string]int{}
	for i := range ip.Rules {
		r := &ip.Rules[i]
		// The rule without its action: an earlier rule with the same
		// conditions decides every file this one would.
		key := strings.TrimSuffix(ipeRuleKey(r), " action="+ipeActionName(r.Action))
		switch {
		case catchAll[r.Op] > 0:
			add(r, "rule never decides: the rule at line %d matches every %s first (IPE: first match wins)", catchAll[r.Op], r.Op)
		case seen[key] > 0:
			add(r, "rule never decides: the rule at line %d has the same conditions and decides first", seen[key])
		}
		if seen[key] == 0 {
			seen[key] = r.Line
		}
		if len(r.Props) == 0 && catchAll[r.Op] == 0 {
			catchAll[r.Op] = r.Line
		}
		for _, pr := range r.Props {
			if pr.Unjudged != "" {
				verdict := "never admits a file here"
				if r.Action == Deny {
					verdict = "blocks every file it reaches here (fail closed)"
				}
				add(r, "%s=%s cannot be judged (%s): the rule %s", pr.Name, pr.Value, pr.Unjudged, verdict)
			}
		}
	}
	return out
}

// ipeRuleKey is a rule as MarshalIPE writes it.
func ipeRuleKey(r *IPERule) string {
	var b strings.Builder
	b.WriteString("op=" + string(r.Op))
	for _, pr := range r.Props {
		b.WriteString(" " + pr.Name + "=" + pr.Value)
	}
	b.WriteString(" action=" + ipeActionName(r.Action))
	return b.String()
}

// diffIPE compares two policies of which at least one is an IPE policy:
// their defaults (per operation, as they decide), the rules only one has,
// and the order of the rules both have, which decides under first match
// wins.
func diffIPE(d *PolicyDiff, old, new *Policy) {
	field := func(name, o, n string, loosens bool, why string) {
		if o != n {
			if !loosens {
				why = ""
			}
			d.Settings = append(d.Settings, FieldChange{Field: name, Old: o, New: n, Loosens: loosens, Why: why})
		}
	}
	field("format", old.Format, new.Format, old.Format != new.Format,
		"an IPE policy and a WDAC-style one judge differently (first match wins against deny wins): csv cannot tell what the change admits")
	if old.IPE == nil || new.IPE == nil {
		return
	}
	field("name", old.Name, new.Name, false, "")
	field("version", old.Version, new.Version, false, "")
	field("mode", string(mode(old)), string(mode(new)), mode(old) == Enforce && mode(new) != Enforce, "an auditing policy blocks nothing")
	effective := func(ip *IPEPolicy, op IPEOp) string {
		if od, ok := ip.OpDefaults[op]; ok {
			return ipeActionName(od.Action)
		}
		return ipeActionName(ip.Default)
	}
	for _, op := range IPEOps {
		o, n := effective(old.IPE, op), effective(new.IPE, op)
		field("default op="+string(op), o, n, n == "ALLOW", "files of "+string(op)+" no rule matches are now allowed")
	}
	keys := func(ip *IPEPolicy) (map[string]bool, []string) {
		set := map[string]bool{}
		var order []string
		for i := range ip.Rules {
			k := ipeRuleKey(&ip.Rules[i])
			if !set[k] {
				set[k] = true
				order = append(order, k)
			}
		}
		return set, order
	}
	oldSet, oldOrder := keys(old.IPE)
	newSet, newOrder := keys(new.IPE)
	only := func(p *Policy, other map[string]bool, change string) {
		seen := map[string]bool{}
		for i := range p.IPE.Rules {
			r := &p.IPE.Rules[i]
			k := ipeRuleKey(r)
			if other[k] || seen[k] {
				continue
			}
			seen[k] = true
			d.Rules = append(d.Rules, RuleChange{Change: change, Action: r.Action, Rule: k, ID: fmt.Sprintf("line %d", r.Line),
				Source: p.Source, Line: r.Line, Loosens: (change == "added") == (r.Action == Allow)})
		}
	}
	only(old, newSet, "removed")
	only(new, oldSet, "added")
	common := func(order []string, other map[string]bool) []string {
		var out []string
		for _, k := range order {
			if other[k] {
				out = append(out, k)
			}
		}
		return out
	}
	if !slices.Equal(common(oldOrder, newSet), common(newOrder, oldSet)) {
		d.Settings = append(d.Settings, FieldChange{Field: "rule order", Old: "as written", New: "changed", Loosens: true,
			Why: "IPE judges rules in order, first match wins: an allow rule moved ahead of a deny rule can admit what it blocked"})
	}
}
