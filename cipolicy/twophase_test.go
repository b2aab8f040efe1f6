package cipolicy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/signing"
)

// fileDigest is a digest of the named test file, distinct per file and
// algorithm.
func fileDigest(name string, a HashAlgorithm) []byte {
	s := sha256.Sum256([]byte(name + "/" + string(a)))
	return s[:a.Size()]
}

// allDigestsOf is every digest a file of format f has.
func allDigestsOf(name string, f Format) Digests {
	d := Digests{}
	for _, a := range HashAlgorithms {
		if a.AppliesTo(f) {
			d.Set(a, fileDigest(name, a))
		}
	}
	return d
}

// restrict is sub with only the facts n asks for (the digests, the
// signatures if n.Signatures), as a read computing n establishes them.
func restrict(sub Subject, n Needs) Subject {
	d := Digests{}
	for _, a := range n.Digests.Algorithms() {
		if v := sub.Digests.Get(a); v != nil {
			d.Set(a, v)
		}
	}
	sub.Digests = d
	if !n.Signatures {
		sub.Signatures = nil
	}
	if !n.Attributes {
		sub.Attributes = nil
	}
	return sub
}

// twoPhase judges sub as package csv does: the first read's facts
// (Needs without Later, Partial), then, only if that decision is
// Incomplete, every fact Needs asks for. It returns the decision and the
// number of reads.
func twoPhase(s *Set, sub Subject) (Decision, int) {
	n := s.Needs(sub.Path, sub.Format, sub.Scenario)
	first := restrict(sub, n)
	first.Partial = !n.Later.IsZero()
	d := s.Evaluate(first)
	if !d.Incomplete {
		return d, 1
	}
	return s.Evaluate(restrict(sub, n.Full())), 2
}

// TestTwoPhaseVerdicts judges many subjects under many policy sets with
// every fact the rules need (one read, as csv did before it deferred
// anything), with every fact (as csv --all-digests does), and in two
// phases (the first read's facts, then every needed fact for a file the
// first leaves Incomplete). The decisions must be the same, every field
// of them (but the reason, which lists the digests computed, where every
// digest is), and only files the first phase does not admit may be read
// twice.
func TestTwoPhaseVerdicts(t *testing.T) {
	root := synthCert("Build Root", "Build Root", bytes.Repeat([]byte{0x0b}, 32), oidCodeSigning)
	leaf := synthCert("Build Signing", "Build Root", bytes.Repeat([]byte{0x0c}, 32), oidCodeSigning)
	rogue := synthCert("Build Root", "Build Root", bytes.Repeat([]byte{0x0d}, 32), oidCodeSigning)
	rule := func(id, action, name string, a HashAlgorithm, extra string) string {
		return fmt.Sprintf("{id: %s, action: %s, %s: %s%s}", id, action, a, hx(fileDigest(name, a)), extra)
	}
	four := func(name string) []string { // as csv policy new --level hash writes them
		var out []string
		for _, a := range FormatPE.RuleDigests() {
			out = append(out, rule(name+"-"+string(a), "allow", name, a, ""))
		}
		return out
	}
	hashRules := append(append(four("a"),
		rule("b-sha1", "allow", "b", AuthenticodeSHA1, ""),
		rule("c-page", "allow", "c", PageSHA256, ""),
		rule("c-page1", "allow", "c", PageSHA1, ""),
		rule("d-page", "allow", "d", PageSHA256, ""),
		rule("elf", "allow", "a", SHA256, ", formats: [elf]")),
		four("e")...)
	yamlPol := func(header string, rules ...string) *Policy { return pol(t, header, rules...) }
	deny := func(id, name string, a HashAlgorithm, extra string) string { return rule(id, "deny", name, a, extra) }

	sipRules := func(name string, names ...string) string { // New-CIPolicy's order: Sha1, Sha256, Page Sha1, Page Sha256
		var b strings.Builder
		for i, kind := range []struct {
			label string
			a     HashAlgorithm
		}{{"Hash Sha1", AuthenticodeSHA1}, {"Hash Sha256", AuthenticodeSHA256}, {"Hash Page Sha1", PageSHA1}, {"Hash Page Sha256", PageSHA256}} {
			if len(names) > 0 && !strings.Contains(strings.Join(names, " "), kind.label) {
				continue
			}
			fmt.Fprintf(&b, `<Allow ID="ID_ALLOW_%s_%d" FriendlyName="%s.exe %s" Hash="%s" />`, strings.ToUpper(name), i, name, kind.label, hx(fileDigest(name, kind.a)))
		}
		return b.String()
	}
	refs := func(doc string) string {
		var b strings.Builder
		for _, part := range strings.Split(doc, `ID="`)[1:] {
			id := part[:strings.IndexByte(part, '"')]
			fmt.Fprintf(&b, `<FileRuleRef RuleID="%s" />`, id)
		}
		return b.String()
	}
	sip := func(rules string) *Policy {
		r := "<FileRulesRef>" + refs(rules) + "</FileRulesRef>"
		return mustParseXML(t, sipDoc("<FileRules>"+rules+"</FileRules>\n"+scenarios(r, r)))
	}
	sipAllows := sipRules("a") + sipRules("b", "Hash Sha1") + sipRules("c", "Hash Page Sha1", "Hash Page Sha256") + sipRules("e")

	sets := []struct {
		name     string
		policies []*Policy
	}{
		{"hash rules", []*Policy{yamlPol("name: p", hashRules...)}},
		{"SHA-1 deny", []*Policy{yamlPol("name: p", append(hashRules, deny("e-deny", "e", AuthenticodeSHA1, ""))...)}},
		{"first-page deny", []*Policy{yamlPol("name: p", append(hashRules, deny("e-deny", "e", PageSHA256, ""))...)}},
		{"scoped SHA-1 deny", []*Policy{yamlPol("name: p", append(hashRules, deny("e-deny", "e", AuthenticodeSHA1, ", paths: ['plugins/**']"))...)}},
		{"exception compares SHA-1", []*Policy{yamlPol("name: p", append(hashRules[:len(hashRules)-4],
			rule("e-sha256", "allow", "e", AuthenticodeSHA256, fmt.Sprintf(", except: [{authenticode_sha1: %s}]", hx(fileDigest("e", AuthenticodeSHA1)))),
			rule("e-page", "allow", "e", PageSHA256, ""))...)}},
		{"scoped exception compares SHA-1", []*Policy{yamlPol("name: p", append(hashRules[:len(hashRules)-4],
			rule("e-sha256", "allow", "e", AuthenticodeSHA256, fmt.Sprintf(", paths: ['plugins/**'], except: [{authenticode_sha1: %s}]", hx(fileDigest("e", AuthenticodeSHA1)))),
			rule("e-sha1", "allow", "e", AuthenticodeSHA1, ""))...)}},
		{"audit", []*Policy{yamlPol("name: p\nmode: audit", hashRules...)}},
		{"supplemental", []*Policy{
			yamlPol("name: base\nid: base-1", rule("a", "allow", "a", AuthenticodeSHA256, ""), deny("e-deny", "e", AuthenticodeSHA256, "")),
			yamlPol("name: sup\ntype: supplemental\nbase: base-1", rule("b", "allow", "b", AuthenticodeSHA1, ""), rule("c", "allow", "c", PageSHA256, ""),
				rule("g", "allow", "g", AuthenticodeSHA256, ""), rule("e", "allow", "e", AuthenticodeSHA1, ""))}},
		{"two bases, one auditing", []*Policy{
			yamlPol("name: enforced\nid: e-1", hashRules...),
			yamlPol("name: audited\nid: a-1\nmode: audit", rule("a-sha1", "allow", "a", AuthenticodeSHA1, ""), rule("b", "allow", "b", AuthenticodeSHA1, ""))}},
		{"SHA-1 only", []*Policy{yamlPol("name: p", rule("a", "allow", "a", AuthenticodeSHA1, ""), rule("b", "allow", "b", AuthenticodeSHA1, ""))}},
		{"signer rule and hashes", []*Policy{yamlPol("name: p", append(hashRules, fmt.Sprintf("{id: s, action: allow, signer: {tbs: %s}}", hx(rogue.TBSHash)))...)}},
		{"SiPolicy with page-hash rules", []*Policy{sip(sipAllows)}},
		{"SiPolicy with a deny", []*Policy{sip(sipAllows + fmt.Sprintf(`<Deny ID="ID_DENY_E" FriendlyName="e.exe Hash Sha256" Hash="%s" />`, hx(fileDigest("e", AuthenticodeSHA256))))}},
		{"SiPolicy with a deny by first page", []*Policy{sip(sipAllows + fmt.Sprintf(`<Deny ID="ID_DENY_E" FriendlyName="Powershell 1" Hash="%s" />`, hx(fileDigest("e", PageSHA256))))}},
	}
	sigVariants := []struct {
		name string
		sigs func() []*signing.Signature
	}{
		{"unsigned", func() []*signing.Signature { return nil }},
		{"page-signed", func() []*signing.Signature { return pageSignedBy(t, leaf, root) }},
		{"signed", func() []*signing.Signature { return signedBy(t, leaf, root) }},
		{"page-signed by a rogue", func() []*signing.Signature { return pageSignedBy(t, rogue) }},
	}
	var twice, onceAllowed, twiceAllowed int
	for _, set := range sets {
		s, err := NewSet(SetOptions{TrustedRoots: []*signing.Certificate{root}}, set.policies...)
		if err != nil {
			t.Fatalf("%s: %v", set.name, err)
		}
		for _, name := range []string{"a", "b", "c", "d", "e", "f", "g"} {
			for _, f := range []Format{FormatPE, FormatPowerShell, FormatELF} {
				for _, sv := range sigVariants {
					for _, sc := range []Scenario{ScenarioUser, ScenarioKernel} {
						for _, dir := range []string{"bin", "plugins"} {
							sigs := sv.sigs()
							sub := Subject{Path: dir + "/" + name, Format: f, Scenario: sc, Digests: allDigestsOf(name, f),
								Signed: sigs != nil, Signatures: sigs}
							if f == FormatELF {
								sub.Signatures = nil
								sub.Signed = false
							}
							what := fmt.Sprintf("%s: %s %s %s %s", set.name, sub.Path, f, sv.name, sc)
							// As csv judged before the two phases: one read of
							// every fact the rules need.
							want := s.Evaluate(restrict(sub, s.Needs(sub.Path, sub.Format, sub.Scenario).Full()))
							got, reads := twoPhase(s, sub)
							if got != want {
								t.Errorf("%s: two-phase %+v\none read %+v", what, got, want)
							}
							// And as csv --all-digests does, with every fact: the
							// reason lists more digests, nothing else differs.
							all := s.Evaluate(sub)
							all.Reason = got.Reason
							if got != all {
								t.Errorf("%s: two-phase %+v\nevery fact %+v", what, got, all)
							}
							if reads == 2 {
								twice++
								if first, _ := twoPhaseFirst(s, sub); first.Verdict != Blocked {
									t.Errorf("%s: read twice after a first decision %s", what, first.Verdict)
								}
								if got.Allowed() {
									twiceAllowed++
								}
							} else if got.Allowed() {
								onceAllowed++
							}
						}
					}
				}
			}
		}
	}
	if twice == 0 || twiceAllowed == 0 || onceAllowed == 0 {
		t.Errorf("read twice %d (allowed then %d), allowed at once %d: the cases do not exercise both phases", twice, twiceAllowed, onceAllowed)
	}
	t.Logf("read twice %d (allowed then %d), allowed at the first read %d", twice, twiceAllowed, onceAllowed)
}

// twoPhaseFirst is the first phase's decision alone.
func twoPhaseFirst(s *Set, sub Subject) (Decision, Needs) {
	n := s.Needs(sub.Path, sub.Format, sub.Scenario)
	first := restrict(sub, n)
	first.Partial = !n.Later.IsZero()
	return s.Evaluate(first), n
}

// TestTwoPhaseNeeds: under a policy that lists files by their four PE
// hashes, the first read computes the Authenticode SHA256 alone and
// verifies no signature; a deny or an exception that compares a digest,
// or a policy that lists files by that digest only, keeps it in the first
// read; and a file allowed by its SHA-1 rule alone is allowed after the
// second read, not blocked.
func TestTwoPhaseNeeds(t *testing.T) {
	four := func(name string, extra ...string) []string {
		var out []string
		for _, a := range FormatPE.RuleDigests() {
			out = append(out, fmt.Sprintf("{id: %s-%s, action: allow, %s: %s}", name, a, a, hx(fileDigest(name, a))))
		}
		return append(out, extra...)
	}
	sha256Only := NewDigestSet(AuthenticodeSHA256)
	tests := []struct {
		name       string
		rules      []string
		first      DigestSet
		later      DigestSet
		sigs       bool
		laterSigs  bool
		path       string
		wantFormat Format
	}{
		{"four hashes", four("a"), sha256Only, NewDigestSet(AuthenticodeSHA1, PageSHA256, PageSHA1), false, true, "bin/a.exe", FormatPE},
		{"SHA-1 deny", four("a", fmt.Sprintf("{id: d, action: deny, authenticode_sha1: %s}", hx(fileDigest("x", AuthenticodeSHA1)))),
			NewDigestSet(AuthenticodeSHA256, AuthenticodeSHA1), NewDigestSet(PageSHA256, PageSHA1), false, true, "bin/a.exe", FormatPE},
		{"first-page deny keeps its signatures deferred", four("a", fmt.Sprintf("{id: d, action: deny, page_sha1: %s}", hx(fileDigest("x", PageSHA1)))),
			NewDigestSet(AuthenticodeSHA256, PageSHA1), NewDigestSet(AuthenticodeSHA1, PageSHA256), false, true, "bin/a.exe", FormatPE},
		{"scoped deny out of scope", four("a", fmt.Sprintf("{id: d, action: deny, authenticode_sha1: %s, paths: ['plugins/**']}", hx(fileDigest("x", AuthenticodeSHA1)))),
			sha256Only, NewDigestSet(AuthenticodeSHA1, PageSHA256, PageSHA1), false, true, "bin/a.exe", FormatPE},
		{"exception", []string{fmt.Sprintf("{id: a, action: allow, authenticode_sha256: %s, except: [{authenticode_sha1: %s}]}", hx(fileDigest("a", AuthenticodeSHA256)), hx(fileDigest("a", AuthenticodeSHA1))),
			fmt.Sprintf("{id: b, action: allow, page_sha256: %s}", hx(fileDigest("b", PageSHA256)))},
			NewDigestSet(AuthenticodeSHA256, AuthenticodeSHA1), NewDigestSet(PageSHA256), false, true, "bin/a.exe", FormatPE},
		{"SHA-1 only", []string{fmt.Sprintf("{id: a, action: allow, authenticode_sha1: %s}", hx(fileDigest("a", AuthenticodeSHA1)))},
			NewDigestSet(AuthenticodeSHA1), DigestSet{}, false, false, "bin/a.exe", FormatPE},
		{"signer rule", four("a", "{id: s, action: allow, signer: {tbs: "+strings.Repeat("ab", 32)+"}}"),
			sha256Only, NewDigestSet(AuthenticodeSHA1, PageSHA256, PageSHA1), true, false, "bin/a.exe", FormatPE},
		{"script", four("a"), sha256Only, NewDigestSet(AuthenticodeSHA1), false, false, "bin/a.ps1", FormatPowerShell},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(SetOptions{}, pol(t, "name: p", tt.rules...))
			if err != nil {
				t.Fatal(err)
			}
			n := s.Needs(tt.path, tt.wantFormat, ScenarioUser)
			if !n.Digests.Equal(tt.first) || !n.Later.Digests.Equal(tt.later) || n.Signatures != tt.sigs || n.Later.Signatures != tt.laterSigs {
				t.Errorf("needs %v (signatures %v), later %v (signatures %v); want %v (%v), later %v (%v)",
					n.Digests, n.Signatures, n.Later.Digests, n.Later.Signatures, tt.first, tt.sigs, tt.later, tt.laterSigs)
			}
			full := n.Full()
			if !full.Later.IsZero() || !full.Digests.Equal(n.Digests.Union(n.Later.Digests)) || full.Signatures != (n.Signatures || n.Later.Signatures) {
				t.Errorf("Full() = %+v", full)
			}
		})
	}
}

// TestPartialSubject: a Partial subject that lacks a deferred digest is
// Incomplete when blocked for want of an allow, never when denied or
// allowed; a subject that is not Partial and lacks the digest is blocked
// as before (fail closed), and one lacking a digest that is not deferred
// is blocked even when Partial.
func TestPartialSubject(t *testing.T) {
	a := func(n string, alg HashAlgorithm) string { return hx(fileDigest(n, alg)) }
	s, err := NewSet(SetOptions{}, pol(t, "name: p",
		fmt.Sprintf("{id: a, action: allow, authenticode_sha256: %s}", a("a", AuthenticodeSHA256)),
		fmt.Sprintf("{id: b, action: allow, authenticode_sha1: %s}", a("b", AuthenticodeSHA1)),
		fmt.Sprintf("{id: d, action: deny, authenticode_sha256: %s}", a("d", AuthenticodeSHA256)),
		fmt.Sprintf("{id: x, action: deny, sha256: %s, paths: ['x/**']}", a("x", SHA256)),
	))
	if err != nil {
		t.Fatal(err)
	}
	sub := func(path, name string, partial bool, algs ...HashAlgorithm) Subject {
		d := Digests{}
		for _, alg := range algs {
			d.Set(alg, fileDigest(name, alg))
		}
		return Subject{Path: path, Format: FormatPE, Scenario: ScenarioUser, Digests: d, Partial: partial}
	}
	for _, tt := range []struct {
		name       string
		sub        Subject
		verdict    Verdict
		kind       ReasonKind
		incomplete bool
	}{
		{"allowed by the first digest", sub("bin/a.exe", "a", true, AuthenticodeSHA256), Allowed, KindAllowedByHash, false},
		{"blocked, SHA-1 deferred", sub("bin/b.exe", "b", true, AuthenticodeSHA256), Blocked, KindUnsigned, true},
		{"allowed with the SHA-1", sub("bin/b.exe", "b", false, AuthenticodeSHA256, AuthenticodeSHA1), Allowed, KindAllowedByHash, false},
		{"denied whatever is deferred", sub("bin/d.exe", "d", true, AuthenticodeSHA256), Blocked, KindDenied, false},
		{"not partial: fails closed", sub("bin/b.exe", "b", false, AuthenticodeSHA256), Blocked, KindMalformed, false},
		{"partial lacking a digest a deny compares", sub("x/b.exe", "b", true, AuthenticodeSHA256), Blocked, KindMalformed, false},
		{"partial with every digest", sub("bin/f.exe", "f", true, AuthenticodeSHA256, AuthenticodeSHA1), Blocked, KindUnsigned, false},
	} {
		d := s.Evaluate(tt.sub)
		if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Incomplete != tt.incomplete {
			t.Errorf("%s: %s %s incomplete %v, want %s %s %v (%s)", tt.name, d.Verdict, d.Kind, d.Incomplete, tt.verdict, tt.kind, tt.incomplete, d.Reason)
		}
	}
}

// FuzzTwoPhaseVerdicts builds a policy (or a base and a supplemental) from
// the input, each byte choosing a rule from a menu of hash rules of every
// algorithm and action over five files, scoped and not, with exceptions,
// and checks that the two-phase judgement of every subject is the one a
// single read of every needed fact gives.
func FuzzTwoPhaseVerdicts(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{0, 5, 17, 33, 64, 130, 200})
	f.Add([]byte{255, 0, 1, 2, 3, 40, 41, 42})
	root := synthCert("Build Root", "Build Root", bytes.Repeat([]byte{0x0b}, 32), oidCodeSigning)
	leaf := synthCert("Build Signing", "Build Root", bytes.Repeat([]byte{0x0c}, 32), oidCodeSigning)
	names := []string{"a", "b", "c", "d", "e"}
	algs := []HashAlgorithm{AuthenticodeSHA256, AuthenticodeSHA1, PageSHA256, PageSHA1, SHA256}
	scopes := []string{"", ", paths: ['plugins/**']", ", scenarios: [kernel]", ", formats: [powershell]"}
	// menu item i: file, algorithm, action, scope, exception from its bits.
	menu := func(i byte, n int, allowOnly bool) string {
		name := names[int(i)%len(names)]
		a := algs[int(i/5)%len(algs)]
		action := "allow"
		if !allowOnly && i&0x80 != 0 && i&0x40 == 0 {
			action = "deny"
		}
		scope := scopes[int(i>>5)%len(scopes)]
		x := ""
		if action == "allow" && i&0x40 != 0 {
			xa := algs[int(i>>3)%len(algs)]
			x = fmt.Sprintf(", except: [{%s: %s}]", xa, hx(fileDigest(names[(int(i)+1)%len(names)], xa)))
		}
		return fmt.Sprintf("{id: r%d, action: %s, %s: %s%s%s}", n, action, a, hx(fileDigest(name, a)), scope, x)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 40 {
			return
		}
		header := "name: p\nid: base-1"
		if in[0]&1 != 0 {
			header += "\nmode: audit"
		}
		var base, sup []string
		for i, b := range in[1:] {
			if in[0]&2 != 0 && i%2 == 1 {
				sup = append(sup, menu(b, i, true))
			} else {
				base = append(base, menu(b, i, false))
			}
		}
		parse := func(header string, rules []string) *Policy {
			src := "format: csv-policy/v1\n" + header + "\nrules:\n"
			for _, r := range rules {
				src += "  - " + r + "\n"
			}
			p, err := Parse([]byte(src), "fuzz.yaml")
			if err != nil {
				return nil // a combination the loader refuses
			}
			return p
		}
		ps := []*Policy{parse(header, base)}
		if len(sup) > 0 {
			ps = append(ps, parse("name: sup\ntype: supplemental\nbase: base-1", sup))
		}
		if slices.Contains(ps, nil) || len(base) == 0 {
			return
		}
		s, err := NewSet(SetOptions{TrustedRoots: []*signing.Certificate{root}}, ps...)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			for _, fm := range []Format{FormatPE, FormatPowerShell} {
				for _, sigs := range [][]*signing.Signature{nil, pageSignedBy(t, leaf, root), signedBy(t, leaf, root)} {
					for _, sc := range []Scenario{ScenarioUser, ScenarioKernel} {
						for _, dir := range []string{"bin", "plugins"} {
							sub := Subject{Path: dir + "/" + name, Format: fm, Scenario: sc, Digests: allDigestsOf(name, fm), Signed: sigs != nil, Signatures: sigs}
							want := s.Evaluate(restrict(sub, s.Needs(sub.Path, sub.Format, sub.Scenario).Full()))
							got, _ := twoPhase(s, sub)
							if got != want {
								t.Fatalf("%s %s %s: two-phase %+v\none read %+v", sub.Path, fm, sc, got, want)
							}
						}
					}
				}
			}
		}
	})
}
