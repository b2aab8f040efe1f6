package cipolicy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// pol builds a YAML policy from a header and rule lines.
func pol(t *testing.T, header string, rules ...string) *Policy {
	t.Helper()
	src := "format: csv-policy/v1\n" + header + "\nrules:\n"
	if len(rules) == 0 {
		src = strings.TrimSuffix(src, "\n") + " []\n"
	}
	for _, r := range rules {
		src += "  - " + r + "\n"
	}
	return mustParse(t, src)
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func TestEvaluate(t *testing.T) {
	pe := func(path string) Subject {
		return Subject{Path: path, Format: FormatPE, Scenario: ScenarioUser,
			Digests: Digests{SHA256: h3, AuthenticodeSHA256: h1, AuthenticodeSHA1: s1}}
	}
	elf := func(path string, d []byte) Subject {
		return Subject{Path: path, Format: FormatELF, Scenario: ScenarioUser, Digests: Digests{SHA256: d}}
	}
	allowA := fmt.Sprintf("{id: allow-a, action: allow, authenticode_sha256: %s}", hx(h1))
	allowFlat := fmt.Sprintf("{id: allow-flat, action: allow, sha256: %s}", hx(h3))
	denySHA1 := fmt.Sprintf("{id: deny-sha1, action: deny, authenticode_sha1: %s}", hx(s1))
	allowELF := fmt.Sprintf("{id: allow-elf, action: allow, sha256: %s}", hx(h2))

	tests := []struct {
		name     string
		policies []*Policy
		opts     SetOptions
		sub      Subject
		verdict  Verdict
		kind     ReasonKind
		rule     string
		enforced bool
	}{
		{"allowed by authenticode hash", []*Policy{pol(t, "name: p", allowA)}, SetOptions{}, pe("a.exe"), Allowed, KindAllowedByHash, "allow-a", true},
		{"allowed by flat hash", []*Policy{pol(t, "name: p", allowFlat)}, SetOptions{}, pe("a.exe"), Allowed, KindAllowedByHash, "allow-flat", true},
		{"first allow rule in order is reported", []*Policy{pol(t, "name: p", allowFlat, allowA)}, SetOptions{}, pe("a.exe"), Allowed, KindAllowedByHash, "allow-flat", true},
		{"deny wins over allow", []*Policy{pol(t, "name: p", allowA, denySHA1)}, SetOptions{}, pe("a.exe"), Blocked, KindDenied, "deny-sha1", true},
		{"unmatched unsigned is blocked", []*Policy{pol(t, "name: p", allowELF)}, SetOptions{}, pe("a.exe"), Blocked, KindUnsigned, "", true},
		{"unmatched signed is not-allowed", []*Policy{pol(t, "name: p", allowELF)}, SetOptions{},
			func() Subject { s := pe("a.exe"); s.Signed = true; return s }(), Blocked, KindNotAllowed, "", true},
		{"empty policy blocks", []*Policy{pol(t, "name: p")}, SetOptions{}, elf("x", h2), Blocked, KindUnsigned, "", true},
		{"authenticode rule does not apply to ELF", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: r, action: allow, authenticode_sha256: %s}", hx(h2)))}, SetOptions{}, elf("x", h2), Blocked, KindUnsigned, "", true},
		{"ELF by sha256", []*Policy{pol(t, "name: p", allowELF)}, SetOptions{}, elf("bin/x", h2), Allowed, KindAllowedByHash, "allow-elf", true},
		{"audit policy does not enforce", []*Policy{pol(t, "name: p\nmode: audit", allowELF)}, SetOptions{}, pe("a.exe"), Blocked, KindUnsigned, "", false},
		{"mode override to audit", []*Policy{pol(t, "name: p", allowELF)}, SetOptions{Mode: Audit}, pe("a.exe"), Blocked, KindUnsigned, "", false},
		{"mode override to enforce", []*Policy{pol(t, "name: p\nmode: audit", allowELF)}, SetOptions{Mode: Enforce}, pe("a.exe"), Blocked, KindUnsigned, "", true},
		{"malformed is blocked even if a rule would allow", []*Policy{pol(t, "name: p", allowA)}, SetOptions{},
			func() Subject { s := pe("a.exe"); s.Problem = errors.New("truncated"); return s }(), Blocked, KindMalformed, "", true},
		{"path scope matches", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: scoped, action: allow, sha256: %s, paths: ['linux/**']}", hx(h2)))}, SetOptions{}, elf("linux/sub/x", h2), Allowed, KindAllowedByHash, "scoped", true},
		{"path scope does not match", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: scoped, action: allow, sha256: %s, paths: ['linux/**']}", hx(h2)))}, SetOptions{}, elf("win/x", h2), Blocked, KindUnsigned, "", true},
		{"scoped deny outside its scope does not block", []*Policy{pol(t, "name: p", allowELF, fmt.Sprintf("{id: d, action: deny, sha256: %s, paths: ['plugins/*']}", hx(h2)))}, SetOptions{}, elf("bin/x", h2), Allowed, KindAllowedByHash, "allow-elf", true},
		{"scoped deny inside its scope blocks", []*Policy{pol(t, "name: p", allowELF, fmt.Sprintf("{id: d, action: deny, sha256: %s, paths: ['plugins/*']}", hx(h2)))}, SetOptions{}, elf("plugins/x", h2), Blocked, KindDenied, "d", true},
		{"scenario scope", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: k, action: allow, sha256: %s, scenarios: [kernel]}", hx(h2)))}, SetOptions{}, elf("x", h2), Blocked, KindUnsigned, "", true},
		{"build scenario covers user", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: b, action: allow, sha256: %s, scenarios: [build]}", hx(h2)))}, SetOptions{}, elf("x", h2), Allowed, KindAllowedByHash, "b", true},
		{"build scenario does not cover boot", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: b, action: allow, sha256: %s, scenarios: [build]}", hx(h2)))}, SetOptions{},
			func() Subject { s := elf("x", h2); s.Scenario = ScenarioBoot; return s }(), Blocked, KindUnsigned, "", true},
		{"two bases: both must allow", []*Policy{pol(t, "name: a", allowELF), pol(t, "name: b", allowFlat)}, SetOptions{}, elf("x", h2), Blocked, KindUnsigned, "", true},
		{"two bases: both allow", []*Policy{pol(t, "name: a", allowELF), pol(t, "name: b", allowELF)}, SetOptions{}, elf("x", h2), Allowed, KindAllowedByHash, "allow-elf", true},
		{"two bases: the enforcing block is reported", []*Policy{pol(t, "name: a\nmode: audit"), pol(t, "name: b", allowFlat)}, SetOptions{}, elf("x", h2), Blocked, KindUnsigned, "", true},
		{"two bases: audit base alone blocks", []*Policy{pol(t, "name: a\nmode: audit"), pol(t, "name: b", allowELF)}, SetOptions{}, elf("x", h2), Blocked, KindUnsigned, "", false},
		{"formats scope admits ELF", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: e, action: allow, sha256: %s, formats: [elf]}", hx(h2)))}, SetOptions{}, elf("x", h2), Allowed, KindAllowedByHash, "e", true},
		{"formats scope excludes PE", []*Policy{pol(t, "name: p", fmt.Sprintf("{id: e, action: allow, sha256: %s, formats: [elf]}", hx(h3)))}, SetOptions{}, pe("a.exe"), Blocked, KindUnsigned, "", true},
		{"all matches every file", []*Policy{pol(t, "name: p", "{id: any, action: allow, all: true}")}, SetOptions{}, elf("x", h2), Allowed, KindAllowedByFile, "any", true},
		{"deny beats all", []*Policy{pol(t, "name: p", "{id: any, action: allow, all: true}", allowA, denySHA1)}, SetOptions{}, pe("a.exe"), Blocked, KindDenied, "deny-sha1", true},
		{"supplemental adds an allow", []*Policy{pol(t, "name: base\nid: base-1"), pol(t, "name: sup\ntype: supplemental\nbase: base-1", allowELF)}, SetOptions{}, elf("x", h2), Allowed, KindAllowedByHash, "allow-elf", true},
		{"supplemental does not lift a deny", []*Policy{pol(t, "name: base", fmt.Sprintf("{id: d, action: deny, sha256: %s}", hx(h2))), pol(t, "name: sup\ntype: supplemental\nbase: base", allowELF)}, SetOptions{}, elf("x", h2), Blocked, KindDenied, "d", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(tt.opts, tt.policies...)
			if err != nil {
				t.Fatal(err)
			}
			d := s.Evaluate(tt.sub)
			if d.Verdict != tt.verdict || d.Kind != tt.kind || d.Rule != tt.rule || d.Enforced != tt.enforced {
				t.Errorf("got %s/%s rule %q enforced %v (%s); want %s/%s rule %q enforced %v",
					d.Verdict, d.Kind, d.Rule, d.Enforced, d.Reason, tt.verdict, tt.kind, tt.rule, tt.enforced)
			}
			if d.Reason == "" {
				t.Error("no reason")
			}
			if d.Fails() != (tt.verdict == Blocked && tt.enforced) {
				t.Error("Fails() disagrees")
			}
		})
	}
}

func TestNewSetErrors(t *testing.T) {
	sup := pol(t, "name: sup\ntype: supplemental\nbase: nowhere")
	if _, err := NewSet(SetOptions{}, sup); !errors.Is(err, ErrPolicySet) {
		t.Errorf("only a supplemental: %v", err)
	}
	if _, err := NewSet(SetOptions{}, pol(t, "name: b"), sup); !errors.Is(err, ErrPolicySet) || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Errorf("missing base: %v", err)
	}
	if _, err := NewSet(SetOptions{}, pol(t, "name: b"), pol(t, "name: b")); !errors.Is(err, ErrPolicySet) {
		t.Errorf("duplicate ids: %v", err)
	}
	if _, err := NewSet(SetOptions{Mode: "loud"}, pol(t, "name: b")); !errors.Is(err, ErrPolicySet) {
		t.Errorf("bad mode: %v", err)
	}
}

// TestNeedsIsExact checks that Needs asks for exactly the digests the rules
// in scope compare (deferred or not: Needs.Full), and that judging with
// only those digests gives the same decision as judging with all of them.
func TestNeedsIsExact(t *testing.T) {
	p := pol(t, "name: p",
		fmt.Sprintf("{id: a, action: allow, authenticode_sha256: %s}", hx(h1)),
		fmt.Sprintf("{id: b, action: deny, sha256: %s, paths: ['plugins/**']}", hx(h3)),
		fmt.Sprintf("{id: c, action: allow, authenticode_sha1: %s, scenarios: [kernel]}", hx(s1)),
		fmt.Sprintf("{id: e, action: allow, sha256: %s, formats: [elf]}", hx(h2)),
	)
	s, err := NewSet(SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	all := Digests{SHA256: h3, AuthenticodeSHA256: h1, AuthenticodeSHA1: s1}
	tests := []struct {
		path string
		f    Format
		sc   Scenario
		want DigestSet
	}{
		{"bin/a.exe", FormatPE, ScenarioUser, NewDigestSet().With(AuthenticodeSHA256)},
		{"plugins/a.dll", FormatPE, ScenarioUser, NewDigestSet().With(AuthenticodeSHA256).With(SHA256)},
		{"drivers/a.sys", FormatPE, ScenarioKernel, NewDigestSet().With(AuthenticodeSHA256).With(AuthenticodeSHA1)},
		{"bin/x", FormatELF, ScenarioUser, NewDigestSet().With(SHA256)},
		{"plugins/x.so", FormatELF, ScenarioUser, NewDigestSet().With(SHA256)},
		{"docs/readme", Format("other"), ScenarioUser, DigestSet{}},
	}
	for _, tt := range tests {
		got := s.Needs(tt.path, tt.f, tt.sc).Full().Digests
		if !got.Equal(tt.want) {
			t.Errorf("Needs(%s, %s, %s) = %v, want %v", tt.path, tt.f, tt.sc, got, tt.want)
		}
		if tt.f == Format("other") {
			continue
		}
		var some Digests
		for _, a := range HashAlgorithms {
			if got.Has(a) {
				some.Set(a, all.Get(a))
			}
		}
		full := s.Evaluate(Subject{Path: tt.path, Format: tt.f, Scenario: tt.sc, Digests: all})
		part := s.Evaluate(Subject{Path: tt.path, Format: tt.f, Scenario: tt.sc, Digests: some})
		if full.Verdict != part.Verdict || full.Rule != part.Rule {
			t.Errorf("%s: with all digests %s/%s, with the needed ones %s/%s", tt.path, full.Verdict, full.Rule, part.Verdict, part.Rule)
		}
	}
}

// TestNeedsPageSignatures: an allow rule of a first-page hash needs the
// file's signatures (it admits only a file whose verified signature
// carries a checked page-hash table), a deny rule of one does not.
func TestNeedsPageSignatures(t *testing.T) {
	for _, tt := range []struct {
		action string
		want   bool
	}{{"allow", true}, {"deny", false}} {
		p := pol(t, "name: p", fmt.Sprintf("{id: a, action: %s, page_sha256: %s}", tt.action, hx(h1)))
		s, err := NewSet(SetOptions{}, p)
		if err != nil {
			t.Fatal(err)
		}
		n := s.Needs("bin/a.exe", FormatPE, ScenarioUser)
		if n.Signatures != tt.want || !n.Digests.Has(PageSHA256) {
			t.Errorf("%s page_sha256: needs %+v, want signatures %v and the first-page hash", tt.action, n, tt.want)
		}
	}
}

// TestMissingDigestFailsClosed checks that a subject missing a digest that a
// rule in scope compares is blocked, not passed: a deny rule must never be
// skipped because a caller computed too little.
func TestMissingDigestFailsClosed(t *testing.T) {
	p := pol(t, "name: p",
		fmt.Sprintf("{id: a, action: allow, authenticode_sha256: %s}", hx(h1)),
		fmt.Sprintf("{id: d, action: deny, sha256: %s, paths: ['x/*']}", hx(h3)),
	)
	s, _ := NewSet(SetOptions{}, p)
	for _, sub := range []Subject{
		{Path: "x/a.exe", Format: FormatPE, Digests: Digests{AuthenticodeSHA256: h1}}, // scoped deny's digest missing
		{Path: "y/a.exe", Format: FormatPE, Digests: Digests{SHA256: h3}},             // unscoped allow's digest missing
	} {
		d := s.Evaluate(sub)
		if d.Verdict != Blocked || d.Kind != KindMalformed || !strings.Contains(d.Reason, "not computed") {
			t.Errorf("%s: %+v", sub.Path, d)
		}
	}
}

func TestLint(t *testing.T) {
	p := pol(t, "name: p\nmode: audit",
		fmt.Sprintf("{id: a, action: allow, sha256: %s}", hx(h1)),
		fmt.Sprintf("{id: a2, action: allow, sha256: %s}", hx(h1)),
		fmt.Sprintf("{id: d, action: deny, authenticode_sha256: %s}", hx(h2)),
		fmt.Sprintf("{id: shadowed, action: allow, authenticode_sha256: %s}", hx(h2)),
		fmt.Sprintf("{id: abs, action: allow, sha256: %s, paths: ['/opt/x', 'a/../b', 'win\\x.exe']}", hx(h3)),
	)
	var got []string
	for _, f := range Lint(p) {
		got = append(got, f.String())
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{
		`test.yaml: warning: policy has no version`,
		`test.yaml: warning: policy is in audit mode`,
		`test.yaml:6: warning: rule "a2": duplicate hash: rule "a" (line 5) already allows sha256:`,
		`test.yaml:8: warning: rule "shadowed": can never allow anything: rule "d" (line 7) denies the same hash`,
		`test.yaml:9: warning: rule "abs": path glob "/opt/x" can never match: paths are relative`,
		`rule "abs": path glob "a/../b" can never match`,
		`rule "abs": path glob "win\\x.exe" can never match: paths are slash-separated`,
		`test.yaml: warning: 3 sha256 rules have no formats scope, so every PE file needs a flat SHA256`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("lint output lacks %q:\n%s", want, text)
		}
	}
	if len(got) != 8 {
		t.Errorf("%d findings, want 8:\n%s", len(got), text)
	}
	if fs := Lint(pol(t, "name: f\nversion: '1'", fmt.Sprintf("{id: a, action: allow, authenticode_sha256: %s, formats: [elf]}", hx(h1)))); len(fs) != 1 || !strings.Contains(fs[0].Message, "can never match") {
		t.Errorf("authenticode rule for ELF: %v", fs)
	}
	if fs := Lint(pol(t, "name: q\nversion: '1'", fmt.Sprintf("{id: d, action: deny, sha256: %s}", hx(h1)))); len(fs) != 1 || !strings.Contains(fs[0].Message, "allows nothing") {
		t.Errorf("deny-only policy: %v", fs)
	}
	if fs := Lint(pol(t, "name: clean\nversion: '1'", fmt.Sprintf("{id: a, action: allow, sha256: %s}", hx(h1)))); len(fs) != 0 {
		t.Errorf("clean policy: %v", fs)
	}
	sup := pol(t, "name: s\ntype: supplemental\nbase: elsewhere\nversion: '1'", fmt.Sprintf("{id: a, action: allow, sha256: %s}", hx(h1)))
	if fs := Lint(pol(t, "name: b\nversion: '1'", fmt.Sprintf("{id: a, action: allow, sha256: %s}", hx(h1))), sup); len(fs) != 1 || fs[0].Severity != SeverityError {
		t.Errorf("supplemental without its base: %v", fs)
	}
}

// TestFileAttributeBreadth: what takes files away from an allow (deny
// rules, an allow rule's exceptions) matches any reading of a file's
// version resources; what admits them (allow rules, the files of an allow
// signer) must hold for every reading.
func TestFileAttributeBreadth(t *testing.T) {
	v := func(a, b, c, d uint16) *Version { return &Version{a, b, c, d} }
	// en-US says tool.exe 1.2.3.4; another table says cdb.exe.
	twoTables := NewFileAttributes([]FileAttributes{
		{OriginalFileName: "tool.exe", FileVersion: v(1, 2, 3, 4)},
		{OriginalFileName: "cdb.exe", FileVersion: v(1, 2, 3, 4)},
		{OriginalFileName: "tool.exe", FileVersion: v(1, 2, 3, 4)}, // a duplicate reading is dropped
	})
	if len(twoTables.Alternatives) != 1 {
		t.Fatalf("alternatives %+v, want one", twoTables.Alternatives)
	}
	sub := Subject{Path: "x.exe", Format: FormatPE, Scenario: ScenarioUser, Attributes: twoTables}
	tests := []struct {
		name    string
		rules   []string
		verdict Verdict
		why     string
	}{
		{"exception of an allow rule matches any reading",
			[]string{"{id: all, action: allow, all: true, except: [{file: {name: cdb.exe}}]}"}, Blocked, "exception"},
		{"allow by name holds for every reading",
			[]string{"{id: tool, action: allow, file: {name: tool.exe}}"}, Blocked, "disagree"},
		{"deny by name matches any reading",
			[]string{"{id: no-cdb, action: deny, file: {name: cdb.exe}}", "{id: all, action: allow, all: true}"}, Blocked, "another reading"},
		{"a rule every reading satisfies",
			[]string{"{id: v, action: allow, file: {min_version: 1.0.0.0, max_version: 2.0.0.0}}"}, Allowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := NewSet(SetOptions{}, pol(t, "name: p", tt.rules...))
			if err != nil {
				t.Fatal(err)
			}
			d := set.Evaluate(sub)
			if d.Verdict != tt.verdict || !strings.Contains(d.Reason, tt.why) {
				t.Errorf("%s: %s; want %s mentioning %q", d.Verdict, d.Reason, tt.verdict, tt.why)
			}
		})
	}
}

// TestFileNameCase: how Windows folds case in a file name rule is not
// established (its upper-case table maps "ı" to "I", which Unicode case
// folding does not; a C-locale comparison folds ASCII letters alone), so a
// deny rule matches a name equal under any of those, and an allow rule
// only a name equal but for ASCII letter case.
func TestFileNameCase(t *testing.T) {
	tests := []struct {
		name, file string
		action     Action
		want       bool
	}{
		{"ascii case, deny", "EVIL.exe", Deny, true},
		{"ascii case, allow", "KERNEL.EXE", Allow, true},
		// RtlUpcaseUnicodeChar("ı") is "I": Windows may deny it.
		{"dotless i, deny", "evıl.exe", Deny, true},
		{"capital dotted I, deny", "İNSTALLER.exe", Deny, true},
		{"long s, deny", "ſetup.exe", Deny, true},
		// Unicode folding makes the Kelvin sign a k; an upper-case table
		// (or an ASCII comparison) does not: Windows may block it.
		{"kelvin sign, allow", "\u212Aernel.exe", Allow, false},
		{"long s, allow", "ſetup.exe", Allow, false},
		{"capital dotted I, allow", "İnstaller.exe", Allow, false},
		{"another name, deny", "evil2.exe", Deny, false},
	}
	rules := map[Action]map[string]string{
		Deny:  {"EVIL.exe": "evil.exe", "evıl.exe": "evil.exe", "İNSTALLER.exe": "installer.exe", "ſetup.exe": "setup.exe", "evil2.exe": "evil.exe"},
		Allow: {"KERNEL.EXE": "kernel.exe", "kernel.exe": "kernel.exe", "\u212Aernel.exe": "kernel.exe", "ſetup.exe": "setup.exe", "İnstaller.exe": "installer.exe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &FileAttrMatch{Name: rules[tt.action][tt.file]}
			got, _ := m.Match(&FileAttributes{OriginalFileName: tt.file}, tt.action == Deny)
			if got != tt.want {
				t.Errorf("%s rule %q on %q: %v, want %v", tt.action, m.Name, tt.file, got, tt.want)
			}
		})
	}
}
