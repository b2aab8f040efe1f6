package cipolicy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
)

var (
	h1 = bytes.Repeat([]byte{0x11}, 32)
	h2 = bytes.Repeat([]byte{0x22}, 32)
	h3 = bytes.Repeat([]byte{0x33}, 32)
	h4 = bytes.Repeat([]byte{0x44}, 32)
	s1 = bytes.Repeat([]byte{0x44}, 20)
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

const example = `# a comment
format: csv-policy/v1
name: example
version: "1.2"
description: the README example
mode: enforce
rules:
  - id: tool
    action: allow
    authenticode_sha256: 1111111111111111111111111111111111111111111111111111111111111111
    description: win/tool.exe
  - id: agent
    action: allow
    sha256: 2222222222222222222222222222222222222222222222222222222222222222
    paths: ["linux/**"]
    scenarios: [user]
    formats: [elf]
  - id: leaked
    action: deny
    authenticode_sha1: 4444444444444444444444444444444444444444
`

func TestParseYAML(t *testing.T) {
	p := mustParse(t, example)
	want := &Policy{ID: "example", Name: "example", Version: "1.2", Description: "the README example", Type: Base, Mode: Enforce, Format: "yaml",
		Rules: []Rule{
			{ID: "tool", Action: Allow, Hash: &HashMatch{AuthenticodeSHA256, h1}, Description: "win/tool.exe", Line: 8},
			{ID: "agent", Action: Allow, Hash: &HashMatch{SHA256, h2}, Paths: []string{"linux/**"}, Scenarios: []Scenario{ScenarioUser}, Formats: []Format{FormatELF}, Line: 12},
			{ID: "leaked", Action: Deny, Hash: &HashMatch{AuthenticodeSHA1, s1}, Line: 18},
		}}
	p.Source, p.SHA256 = "", [32]byte{}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
}

func TestParseErrors(t *testing.T) {
	head := "format: csv-policy/v1\nname: x\nrules:\n"
	tests := []struct {
		name  string
		src   string
		lines []int // lines of the problems, in order
		want  string
	}{
		{"unknown top-level field", "format: csv-policy/v1\nname: x\nrulez: []\nrules: []\n", []int{3}, `unknown field "rulez"`},
		{"unknown rule field", head + "  - id: a\n    action: allow\n    sha256: " + strings.Repeat("1", 64) + "\n    pathz: [x]\n", []int{7}, `unknown field "pathz"`},
		{"short hash", head + "  - id: a\n    action: allow\n    sha256: abcd\n", []int{6}, "want 64 hex digits"},
		{"non-hex hash", head + "  - id: a\n    action: allow\n    authenticode_sha1: " + strings.Repeat("g", 40) + "\n", []int{6}, "not hexadecimal"},
		{"duplicate rule id", head + "  - {id: a, action: allow, sha256: " + strings.Repeat("1", 64) + "}\n  - {id: a, action: allow, sha256: " + strings.Repeat("2", 64) + "}\n", []int{5}, `duplicate rule id "a" (first at line 4)`},
		{"repeated key", "format: csv-policy/v1\nname: x\nname: y\nrules: []\n", []int{3}, `field "name" repeated (first at line 2)`},
		{"two matchers", head + "  - id: a\n    action: allow\n    sha256: " + strings.Repeat("1", 64) + "\n    authenticode_sha256: " + strings.Repeat("1", 64) + "\n", []int{7}, "several matchers"},
		{"no matcher", head + "  - id: a\n    action: allow\n", []int{4}, "says nothing to match"},
		{"bad action", head + "  - {id: a, action: permit, sha256: " + strings.Repeat("1", 64) + "}\n", []int{4}, `unknown action "permit"`},
		{"missing format", "name: x\nrules: []\n", []int{1}, `missing field "format"`},
		{"wrong format", "format: csv-policy/v9\nname: x\nrules: []\n", []int{1}, "unsupported format"},
		{"bad mode", "format: csv-policy/v1\nname: x\nmode: strict\nrules: []\n", []int{3}, `unknown mode "strict"`},
		{"bad scenario", head + "  - {id: a, action: allow, sha256: " + strings.Repeat("1", 64) + ", scenarios: [driver]}\n", []int{4}, `unknown scenario "driver"`},
		{"bad format", head + "  - {id: a, action: allow, sha256: " + strings.Repeat("1", 64) + ", formats: [macho]}\n", []int{4}, `unknown format "macho"`},
		{"bad glob", head + "  - {id: a, action: allow, sha256: " + strings.Repeat("1", 64) + ", paths: ['win/[']}\n", []int{4}, "invalid path glob"},
		{"deny in a supplemental", "format: csv-policy/v1\nname: s\ntype: supplemental\nbase: b\nrules:\n  - {id: a, action: deny, sha256: " + strings.Repeat("1", 64) + "}\n", []int{6}, "can only allow"},
		{"supplemental without base", "format: csv-policy/v1\nname: s\ntype: supplemental\nrules: []\n", []int{1}, `must name its base`},
		{"alias", "format: csv-policy/v1\nname: &n x\nversion: *n\nrules: []\n", []int{3}, "aliases are not allowed"},
		// yaml.v3 reports the line where the syntax error's context starts.
		{"syntax", "format: csv-policy/v1\nname: x\n\tversion: 1\n", []int{2}, "YAML syntax: found a tab character"},
		{"two documents", "format: csv-policy/v1\nname: x\nrules: []\n---\nname: y\n", []int{4}, "one YAML document"},
		{"empty", "", nil, "empty policy"},
		{"not a mapping", "- a\n- b\n", []int{1}, "policy must be a mapping"},
		{"several problems, all reported", "format: csv-policy/v1\nname: x\nfoo: 1\nrules:\n  - {id: a, action: allow, sha256: 12}\n  - {id: b, action: nope, sha256: " + strings.Repeat("1", 64) + "}\n", []int{3, 5, 6}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "p.yaml")
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("err is %T", err)
			}
			var lines []int
			for _, p := range le.Problems {
				if p.Line > 0 {
					lines = append(lines, p.Line)
				}
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("problem lines %v, want %v: %v", lines, tt.lines, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
			if len(tt.lines) > 0 && !strings.HasPrefix(err.Error(), fmt.Sprintf("p.yaml:%d: ", tt.lines[0])) {
				t.Errorf("err = %q does not start with file:line", err)
			}
		})
	}
}

func TestParseSizeCap(t *testing.T) {
	big := make([]byte, 64<<20+1)
	if _, err := Parse(big, "big.yaml"); !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("err = %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	p := mustParse(t, example)
	p.Rules[0].Comment = "win/tool.exe\nwin/tool-copy.exe\x07"
	out, err := MarshalYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "# win/tool-copy.exe\\x07") {
		t.Errorf("comment not written safely:\n%s", out)
	}
	q, err := Parse(out, "out.yaml")
	if err != nil {
		t.Fatalf("reading back: %v\n%s", err, out)
	}
	for i := range p.Rules {
		p.Rules[i].Line, q.Rules[i].Line, p.Rules[i].Comment = 0, 0, ""
	}
	p.Source, q.Source, p.SHA256, q.SHA256 = "", "", [32]byte{}, [32]byte{}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip:\n got %+v\nwant %+v", q, p)
	}
}

// TestMarshalInert: a policy printed to a CI job's log holds no CI log
// command and no character that is not graphic (a publisher or file name
// comes from a binary, a name from the user), and reads back the same.
func TestMarshalInert(t *testing.T) {
	p := mustParse(t, example)
	p.Name = "##[add-mask]FAILED"
	p.Rules[0].Description = "x ##vso[task.complete result=Succeeded] \u202egnp \U000e0041"
	p.Rules[0].Comment = "a/##[error]b.exe"
	out, err := MarshalYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.ToLower(string(out)); strings.Contains(s, "##[") || strings.Contains(s, "##vso[") ||
		strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 && !unicode.IsGraphic(r) }) {
		t.Errorf("not inert:\n%s", out)
	}
	q, err := Parse(out, "out.yaml")
	if err != nil {
		t.Fatalf("reading back: %v\n%s", err, out)
	}
	if q.Name != p.Name || q.Rules[0].Description != p.Rules[0].Description {
		t.Errorf("read back %q, %q:\n%s", q.Name, q.Rules[0].Description, out)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("format: csv-policy/v1\nname: s\ntype: supplemental\nbase: b\nrules: []\n"))
	f.Add([]byte("<SiPolicy/>"))
	f.Add([]byte("{format: csv-policy/v1, name: x, rules: [{id: a, action: deny, sha256: " + strings.Repeat("ab", 32) + "}]}"))
	f.Add(toUTF16("format: csv-policy/v1\nname: u\nrules: []\n", binary.LittleEndian))
	f.Add(toUTF16("format: csv-policy/v1\nname: u\nrules: []\n", binary.BigEndian)[1:])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b, "fuzz.yaml")
		if err != nil {
			if p != nil || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Parse = %v, %v", p, err)
			}
			return
		}
		// A YAML policy that loads can be written and read back (SiPolicy
		// may hold rules YAML cannot write), and any policy can be judged.
		if p.Format == "yaml" {
			out, err := MarshalYAML(p)
			if err != nil {
				t.Fatalf("MarshalYAML: %v", err)
			}
			if _, err := Parse(out, "again.yaml"); err != nil {
				t.Fatalf("reading back %q: %v", out, err)
			}
		}
		Lint(p)
		if p.Type == Base {
			s, err := NewSet(SetOptions{}, p)
			if err != nil {
				t.Fatal(err)
			}
			s.Evaluate(Subject{Path: "a/b.exe", Format: FormatPE, Scenario: ScenarioUser,
				Digests: Digests{SHA256: h1, AuthenticodeSHA256: h2, AuthenticodeSHA1: s1}})
		}
	})
}

// TestAcceptSettings: digest_algorithms and key_types load strictly, write
// back, and say what a host accepts.
func TestAcceptSettings(t *testing.T) {
	p := mustParse(t, "format: csv-policy/v1\nname: a\nwdac_compatible: true\ndigest_algorithms: [sha384, sha256]\nkey_types: [rsa, ecdsa]\nrules: []\n")
	if !reflect.DeepEqual(p.AcceptedDigests(), []DigestAlgorithm{DigestSHA256, DigestSHA384}) {
		t.Errorf("digests %v", p.AcceptedDigests())
	}
	if !reflect.DeepEqual(p.AcceptedKeyTypes(), []KeyType{KeyRSA}) {
		t.Errorf("key types under WDAC compatibility %v, want rsa only", p.AcceptedKeyTypes())
	}
	if !lintSays(p, SeverityWarning, "key_types lists ecdsa, but under wdac_compatible only RSA") {
		t.Errorf("lint: %v", Lint(p))
	}
	out, err := MarshalYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	q := mustParse(t, string(out))
	if !reflect.DeepEqual(q.DigestAlgorithms, p.DigestAlgorithms) || !reflect.DeepEqual(q.KeyTypes, p.KeyTypes) {
		t.Errorf("round trip: %s", out)
	}
	if d := mustParse(t, "format: csv-policy/v1\nname: a\nrules: []\n"); len(d.AcceptedDigests()) != 4 || len(d.AcceptedKeyTypes()) != 3 {
		t.Errorf("defaults accept %v and %v, want everything", d.AcceptedDigests(), d.AcceptedKeyTypes())
	}
	sha1 := mustParse(t, "format: csv-policy/v1\nname: a\ndigest_algorithms: [sha1, sha256]\nrules: []\n")
	if !lintSays(sha1, SeverityWarning, "accepts sha1") {
		t.Errorf("lint: %v", Lint(sha1))
	}
	for src, want := range map[string]string{
		"digest_algorithms: [md5]": `digest_algorithms: unknown value "md5" (want sha1, sha256, sha384, sha512)`,
		"digest_algorithms: []":    "digest_algorithms is empty, which accepts nothing",
		"key_types: [rsa, rsa]":    `key_types: "rsa" listed twice`,
		"key_types: [dsa]":         `key_types: unknown value "dsa" (want rsa, ecdsa, ed25519)`,
	} {
		_, err := Parse([]byte("format: csv-policy/v1\nname: a\n"+src+"\nrules: []\n"), "p.yaml")
		if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %q", src, err, want)
		}
	}
}
