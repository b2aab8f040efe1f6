package cipolicy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

const diffBase = `format: csv-policy/v1
name: app
version: 1.0.0
rules:
  - id: a
    action: allow
    authenticode_sha256: ` + "1111111111111111111111111111111111111111111111111111111111111111" + `
  - id: b
    action: allow
    sha256: ` + "2222222222222222222222222222222222222222222222222222222222222222" + `
    formats: [elf]
    paths: ["lib/**", "bin/**"]
  - id: bad
    action: deny
    signer: {tbs: 9F0C1E0D2A8C0C4F3F2D4E5C6B7A8998A7B6C5D4E3F20112233445566778899A, level: leaf}
  - id: tool
    action: allow
    file: {name: Tool.exe, min_version: 1.2}
`

// TestDiffIgnoresIDsOrderAndSpelling: renumbered, reordered, re-spelled
// rules (hex case, set order, file name case) judge alike.
func TestDiffIgnoresIDsOrderAndSpelling(t *testing.T) {
	same := `format: csv-policy/v1
name: app
version: 1.0.0
rules:
  - id: tool-2
    action: allow
    file: {name: tool.EXE, min_version: 1.2.0.0}
  - id: x1
    action: deny
    signer: {tbs: 9f0c1e0d2a8c0c4f3f2d4e5c6b7a8998a7b6c5d4e3f20112233445566778899a, level: leaf}
  - id: x2
    action: allow
    sha256: ` + "2222222222222222222222222222222222222222222222222222222222222222" + `
    formats: [elf]
    paths: ["bin/**", "lib/**"]
  - id: x3
    action: allow
    authenticode_sha256: ` + strings.ToUpper("1111111111111111111111111111111111111111111111111111111111111111") + `
`
	d := Diff(mustParse(t, diffBase), mustParse(t, same))
	if !d.Empty() || d.Loosens() {
		t.Fatalf("differences: %+v", d)
	}
}

func TestDiffChanges(t *testing.T) {
	changed := strings.NewReplacer(
		"version: 1.0.0", "version: 1.1.0\nmode: audit",
		"paths: [\"lib/**\", \"bin/**\"]", "paths: [\"**\"]", // widened: b removed, b' added
		"  - id: bad\n    action: deny\n    signer: {tbs: 9F0C1E0D2A8C0C4F3F2D4E5C6B7A8998A7B6C5D4E3F20112233445566778899A, level: leaf}\n", "",
	).Replace(diffBase) + `  - id: new-deny
    action: deny
    authenticode_sha1: 2559e91a60953a5e16f9650f5f88953a2cca5425
`
	old, new := mustParse(t, diffBase), mustParse(t, changed)
	d := Diff(old, new)
	var settings []string
	for _, f := range d.Settings {
		settings = append(settings, f.Field+":"+f.Old+">"+f.New)
		if (f.Field == "mode") != f.Loosens {
			t.Errorf("%s loosens = %v", f.Field, f.Loosens)
		}
	}
	if got := strings.Join(settings, " "); got != "version:1.0.0>1.1.0 mode:enforce>audit" {
		t.Errorf("settings %s", got)
	}
	var rules []string
	for _, r := range d.Rules {
		rules = append(rules, r.Change+" "+r.ID)
	}
	if got := strings.Join(rules, ", "); got != "removed b, removed bad, added b, added new-deny" {
		t.Errorf("rules %s", got)
	}
	loosens := map[string]bool{}
	for _, r := range d.Rules {
		loosens[r.Change+" "+r.ID] = r.Loosens
	}
	if !loosens["removed bad"] || !loosens["added b"] || loosens["removed b"] || loosens["added new-deny"] {
		t.Errorf("loosens %v", loosens)
	}
	if !strings.Contains(d.Rules[2].Rule, `paths ["**"]`) || d.Rules[1].Line == 0 || d.Rules[1].Source != "test.yaml" {
		t.Errorf("%+v", d.Rules)
	}
	if d.Empty() || !d.Loosens() {
		t.Error("Empty/Loosens")
	}

	// Only tightening: a deny added.
	tight := mustParse(t, diffBase+"  - id: d\n    action: deny\n    sha256: "+strings.Repeat("33", 32)+"\n")
	if d := Diff(old, tight); d.Empty() || d.Loosens() || len(d.Rules) != 1 || d.Rules[0].Change != "added" {
		t.Errorf("tighten: %+v", d)
	}
	// The reverse of a loosening change tightens.
	if d := Diff(new, old); d.Loosens() != true || len(d.Rules) != 4 {
		t.Errorf("reverse: %+v", d) // it adds the allow b back (loosens) and removes allow b' ...
	}
	if d := Diff(mustParse(t, strings.Replace(diffBase, "version: 1.0.0", "version: 1.0.0\nmode: audit", 1)), old); d.Loosens() {
		t.Errorf("audit to enforce loosens: %+v", d)
	}
}

// TestDiffRealPolicies: each real WDAC policy judges like itself; between
// two of them, Diff is symmetric (what one adds the other removes).
func TestDiffRealPolicies(t *testing.T) {
	dir := testenv.Shared(t, "testdata/wdac")
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("no policies in %s", dir)
	}
	load := func(f string) *Policy {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(data, filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, f := range files {
		a, again := load(f), load(f)
		if d := Diff(a, again); !d.Empty() {
			t.Errorf("%s differs from itself: %+v", f, d)
		}
		b := load(files[(i+1)%len(files)])
		ab, ba := Diff(a, b), Diff(b, a)
		if len(ab.Rules) != len(ba.Rules) || len(ab.Settings) != len(ba.Settings) {
			t.Fatalf("%s vs %s: %d/%d rules, %d/%d settings", a.Source, b.Source, len(ab.Rules), len(ba.Rules), len(ab.Settings), len(ba.Settings))
		}
		count := func(d *PolicyDiff, what string) (n int) {
			for _, r := range d.Rules {
				if r.Change == what {
					n++
				}
			}
			return n
		}
		if count(ab, "added") != count(ba, "removed") || count(ab, "removed") != count(ba, "added") {
			t.Errorf("%s vs %s: not symmetric", a.Source, b.Source)
		}
		if len(a.Rules) != len(b.Rules) && ab.Empty() {
			t.Errorf("%s vs %s: no difference seen", a.Source, b.Source)
		}
	}
}

// TestDiffYAMLRoundTrip: a policy written by MarshalYAML and read back
// judges as the original.
func TestDiffYAMLRoundTrip(t *testing.T) {
	p := mustParse(t, diffBase)
	y, err := MarshalYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	back := mustParse(t, string(y))
	if d := Diff(p, back); !d.Empty() {
		t.Fatalf("%+v\n%s", d, y)
	}
}

// TestDiffScopesByWhatRulesCanMatch: a formats scope a matcher implies
// anyway (version resources are PE only, Authenticode digests PE and PowerShell only) changes
// nothing; one that widens what a rule matches does.
func TestDiffScopesByWhatRulesCanMatch(t *testing.T) {
	p := func(rule string) *Policy {
		return mustParse(t, "format: csv-policy/v1\nname: p\nrules:\n  - "+rule+"\n")
	}
	same := [][2]string{
		{"{id: a, action: allow, file: {name: a.exe}}", "{id: a, action: allow, file: {name: a.exe}, formats: [pe]}"},
		{"{id: a, action: allow, authenticode_sha256: " + hx(h1) + "}", "{id: a, action: allow, authenticode_sha256: " + hx(h1) + ", formats: [pe, elf, powershell, cab, msi]}"},
	}
	for _, c := range same {
		if d := Diff(p(c[0]), p(c[1])); !d.Empty() {
			t.Errorf("%s vs %s: %+v", c[0], c[1], d)
		}
	}
	widened := Diff(p("{id: a, action: allow, sha256: "+hx(h1)+", formats: [elf]}"), p("{id: a, action: allow, sha256: "+hx(h1)+"}"))
	if !widened.Loosens() {
		t.Errorf("a sha256 rule widened to PE files does not loosen: %+v", widened)
	}
}
