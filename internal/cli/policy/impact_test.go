package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// rollout is two rings of generated builds and policies that change them.
//
//	ring1: tool.exe (version 1.2.3.4), tool2.exe (2.1.0.0), a.exe (signed by
//	       A), b.exe (signed by B), bad.so (unsigned ELF), notes.txt
//	ring2: tool2.exe, b.exe
//
// old.yaml allows tool.exe from 1.0, Signer A and bad.so by hash.
// tighten.yaml removes Signer A and adds a deny rule for bad.so (it only
// blocks). new.yaml does that, tightens tool.exe to 2.0 (a changed rule,
// which the rule diff counts as loosening: it shows as removed and added)
// and adds Signer B.
// audit.yaml is new.yaml in audit mode.
type rollout struct {
	ring1, ring2                string
	old, tighten, new, auditNew string
}

func newRollout(t *testing.T) *rollout {
	t.Helper()
	ca := testca.New(t)
	leafA := ca.Leaf(t, testca.LeafOptions{CommonName: "Signer A"})
	leafB := ca.Leaf(t, testca.LeafOptions{CommonName: "Signer B"})
	chain := func(l *testca.Cert) []*x509.Certificate { return []*x509.Certificate{l.Cert, ca.Intermediate.Cert} }
	tool := func(v [4]uint16) string {
		return string(testbin.VersionPE([]testbin.VersionResource{{Lang: 0x409, FileVersion: &v,
			Tables: []testbin.VersionTable{{Key: "040904b0", Strings: [][2]string{{"OriginalFilename", "tool.exe"}}}}}}))
	}
	a := string(signPE(t, testbin.PE(testbin.PEOptions{Overlay: []byte("a")}), leafA.Key, chain(leafA), ""))
	b := string(signPE(t, testbin.PE(testbin.PEOptions{Overlay: []byte("b")}), leafB.Key, chain(leafB), ""))
	bad := string(testbin.ELF(testbin.ELFOptions{Extra: []byte("bad")}))
	sum := sha256.Sum256([]byte(bad))
	badSHA := hex.EncodeToString(sum[:])

	dir := t.TempDir()
	r := &rollout{ring1: filepath.Join(dir, "ring1"), ring2: filepath.Join(dir, "ring2")}
	for name, data := range map[string]string{"tool.exe": tool([4]uint16{1, 2, 3, 4}), "tool2.exe": tool([4]uint16{2, 1, 0, 0}),
		"a.exe": a, "b.exe": b, "lib/bad.so": bad, "notes.txt": "text\n"} {
		write(t, filepath.Join(r.ring1, name), data)
	}
	write(t, filepath.Join(r.ring2, "tool2.exe"), tool([4]uint16{2, 1, 0, 0}))
	write(t, filepath.Join(r.ring2, "b.exe"), b)

	head := "format: csv-policy/v1\nname: app\nversion: %q\nmode: %s\nrules:\n"
	toolRule := "  - {id: tool, action: allow, file: {name: tool.exe, min_version: %s}}\n"
	signer := func(id string, l *testca.Cert) string {
		return fmt.Sprintf("  - {id: %s, action: allow, signer: {tbs: %s, level: leaf}}\n", id, tbsOf(t, l.Cert))
	}
	legacy := fmt.Sprintf("  - {id: legacy-bad, action: allow, sha256: %s}\n", badSHA)
	deny := fmt.Sprintf("  - {id: deny-bad, action: deny, sha256: %s}\n", badSHA)
	r.old = write(t, filepath.Join(dir, "old.yaml"), fmt.Sprintf(head, "1", "enforce")+fmt.Sprintf(toolRule, "1.0.0.0")+signer("signer-a", leafA)+legacy)
	r.tighten = write(t, filepath.Join(dir, "tighten.yaml"), fmt.Sprintf(head, "2", "enforce")+fmt.Sprintf(toolRule, "1.0.0.0")+legacy+deny)
	r.new = write(t, filepath.Join(dir, "new.yaml"), fmt.Sprintf(head, "2", "enforce")+fmt.Sprintf(toolRule, "2.0.0.0")+signer("signer-b", leafB)+legacy+deny)
	r.auditNew = write(t, filepath.Join(dir, "audit.yaml"), fmt.Sprintf(head, "2", "audit")+fmt.Sprintf(toolRule, "2.0.0.0")+signer("signer-b", leafB)+legacy+deny)
	return r
}

// diff runs csv policy diff with args as the command line would (flags
// checked by the command) at testca.Epoch, and returns its output and exit
// code.
func (r *rollout) diff(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, Version: "test"}
	cmd := NewCmdDiff(f, func(o *DiffOptions) error {
		o.now = func() time.Time { return testca.Epoch }
		return RunDiffContext(context.Background(), o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&errOut)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	if err != nil && !errors.Is(err, cmdutil.ErrFailed) {
		return err.Error(), cmdutil.ExitCode(err)
	}
	return out.String(), cmdutil.ExitCode(err)
}

type impactJSON struct {
	Identical, Loosens bool
	Inventories        []struct {
		Name    string
		Sources []string
		Counts  map[string]int
		Groups  []struct {
			Change    string
			DecidedBy string `json:"decided_by"`
			Rule      string
			Files     []struct {
				Path     string
				Old, New struct{ Verdict, Rule, Kind, Reason string }
			}
		}
	}
}

// changes lists an inventory's changed files as "change file group-rule".
func (j *impactJSON) changes(i int) []string {
	var out []string
	for _, g := range j.Inventories[i].Groups {
		for _, f := range g.Files {
			out = append(out, fmt.Sprintf("%s %s %s:%s", g.Change, filepath.Base(f.Path), g.DecidedBy, g.Rule))
		}
	}
	return out
}

// TestDiffAgainstRings: the impact report names exactly the files each
// policy change blocks or admits, ring by ring, with counts, in JSON.
func TestDiffAgainstRings(t *testing.T) {
	r := newRollout(t)
	out, code := r.diff(t, "--format", "json", "--against", "ring1="+r.ring1, "--against", "ring2="+r.ring2, r.old, r.new)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the policies differ):\n%s", code, out)
	}
	var j impactJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !j.Loosens || len(j.Inventories) != 2 || j.Inventories[0].Name != "ring1" || j.Inventories[1].Name != "ring2" ||
		!slices.Equal(j.Inventories[0].Sources, []string{r.ring1}) {
		t.Fatalf("report:\n%s", out)
	}
	want1 := []string{
		// In the walk's order within each kind (groups by first file).
		"newly-blocked a.exe old:signer-a",  // signer removed
		"newly-blocked bad.so new:deny-bad", // deny hash rule added
		"newly-blocked tool.exe old:tool",   // min_version tightened
		"newly-allowed b.exe new:signer-b",  // signer added
	}
	if got := j.changes(0); !slices.Equal(got, want1) {
		t.Errorf("ring1:\n got %q\nwant %q", got, want1)
	}
	wantCounts := map[string]int{"judged": 5, "unchanged": 1, "newly_blocked": 3, "would_block_audit": 0, "newly_allowed": 1, "rule_changed": 0, "skipped": 1}
	if got := j.Inventories[0].Counts; fmt.Sprint(got) != fmt.Sprint(wantCounts) {
		t.Errorf("ring1 counts %v, want %v", got, wantCounts)
	}
	if got, want := j.changes(1), []string{"newly-allowed b.exe new:signer-b"}; !slices.Equal(got, want) {
		t.Errorf("ring2:\n got %q\nwant %q", got, want)
	}
	if c := j.Inventories[1].Counts; c["judged"] != 2 || c["unchanged"] != 1 || c["newly_allowed"] != 1 || c["newly_blocked"] != 0 {
		t.Errorf("ring2 counts %v", c)
	}
	f := j.Inventories[0].Groups[1].Files[0]
	if f.Old.Verdict != "allowed" || f.Old.Rule != "legacy-bad" || f.New.Verdict != "blocked" || f.New.Kind != "denied" || f.New.Reason == "" {
		t.Errorf("bad.so: old %+v, new %+v", f.Old, f.New)
	}

	// A file given as the inventory is named as given.
	file := filepath.Join(r.ring2, "b.exe")
	out, _ = r.diff(t, "--format", "json", "--against", file, r.old, r.new)
	j = impactJSON{}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Inventories) != 1 || j.Inventories[0].Name != file || len(j.Inventories[0].Groups) != 1 ||
		j.Inventories[0].Groups[0].Files[0].Path != filepath.ToSlash(file) {
		t.Errorf("a file as the inventory: %s", out)
	}

	// Two values under one name are one inventory.
	out, _ = r.diff(t, "--format", "json", "--against", "all="+r.ring1, "--against", "all="+r.ring2, r.old, r.new)
	j = impactJSON{}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Inventories) != 1 || j.Inventories[0].Counts["judged"] != 7 || j.Inventories[0].Counts["newly_allowed"] != 2 {
		t.Errorf("one inventory of two paths: %s", out)
	}
}

// TestDiffAgainstGates: --fail-if-blocks-more fails on a newly blocked file
// only, --fail-if-loosened on a loosening rule change or a newly allowed
// file; a policy in audit mode blocks nothing yet.
func TestDiffAgainstGates(t *testing.T) {
	r := newRollout(t)
	for _, tc := range []struct {
		name     string
		args     []string
		old, new string
		want     int
	}{
		{"blocks more in ring1", []string{"--fail-if-blocks-more", "--against", r.ring1}, r.old, r.new, 1},
		{"nothing blocked in ring2", []string{"--fail-if-blocks-more", "--against", r.ring2}, r.old, r.new, 0},
		{"tightening only: loosens nothing", []string{"--fail-if-loosened", "--against", r.ring1}, r.old, r.tighten, 0},
		{"tightening blocks more", []string{"--fail-if-loosened", "--fail-if-blocks-more", "--against", r.ring1}, r.old, r.tighten, 1},
		{"loosened: a file newly allowed", []string{"--fail-if-loosened", "--against", r.ring2}, r.old, r.new, 1},
		{"the reverse of tightening allows again", []string{"--fail-if-loosened", "--against", r.ring2}, r.tighten, r.old, 1},
		{"audit blocks nothing", []string{"--fail-if-blocks-more", "--against", r.ring1}, r.old, r.auditNew, 0},
		{"audit to enforce blocks", []string{"--fail-if-blocks-more", "--against", r.ring1}, r.auditNew, r.new, 1},
		{"no gate: the same policy", []string{"--against", r.ring1}, r.old, r.old, 0},
		{"no gate: changed files", []string{"--against", r.ring1}, r.old, r.tighten, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := r.diff(t, append(tc.args, tc.old, tc.new)...)
			if code != tc.want {
				t.Errorf("exit %d, want %d:\n%s", code, tc.want, out)
			}
		})
	}
	// The audit report says what would be blocked, and that it is audit.
	out, _ := r.diff(t, "--against", "ring1="+r.ring1, r.old, r.auditNew)
	for _, s := range []string{"3 would be blocked (audit)", "would be blocked (audit) (3):", "new: blocked (audit), rule \"deny-bad\""} {
		if !strings.Contains(out, s) {
			t.Errorf("audit text lacks %q:\n%s", s, out)
		}
	}
}

// TestDiffAgainstSARIF: valid SARIF 2.1.0, one error per newly blocked file
// and one warning per newly allowed file, located at the file.
func TestDiffAgainstSARIF(t *testing.T) {
	r := newRollout(t)
	out, code := r.diff(t, "--format", "sarif", "--fail-if-blocks-more", "--against", "ring1="+r.ring1, "--against", "ring2="+r.ring2, r.old, r.new)
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	schema, err := jsonschema.NewCompiler().Compile(testenv.Shared(t, "testdata/sarif/sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("not valid SARIF 2.1.0: %v", err)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID, Level string
				Locations     []struct {
					PhysicalLocation struct{ ArtifactLocation struct{ URI string } }
				}
				Properties struct{ Inventory, PolicyRule string }
			}
			Properties struct{ Loosens bool }
		}
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range log.Runs[0].Results {
		uri := res.Locations[0].PhysicalLocation.ArtifactLocation.URI
		got = append(got, fmt.Sprintf("%s %s %s %s %s", res.Properties.Inventory, res.Level, res.RuleID, uri[strings.LastIndex(uri, "/")+1:], res.Properties.PolicyRule))
	}
	want := []string{
		"ring1 error CSV.Impact.NewlyBlocked a.exe signer-a",
		"ring1 warning CSV.Impact.NewlyAllowed b.exe signer-b",
		"ring1 error CSV.Impact.NewlyBlocked bad.so deny-bad",
		"ring1 error CSV.Impact.NewlyBlocked tool.exe tool",
		"ring2 warning CSV.Impact.NewlyAllowed b.exe signer-b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SARIF results:\n got %q\nwant %q", got, want)
	}
	if !log.Runs[0].Properties.Loosens {
		t.Error("SARIF run properties: loosens is false")
	}
}

// TestDiffAgainstText: the text report follows the rule diff, per ring.
func TestDiffAgainstText(t *testing.T) {
	r := newRollout(t)
	out, code := r.diff(t, "--against", "ring2="+r.ring2, r.old, r.new)
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, s := range []string{"result: ", "impact on \"ring2\" (", "2 binaries judged: 0 newly blocked, 0 would be blocked (audit), 1 newly allowed, 0 rule changed, 1 unchanged",
		"newly allowed (1):", "rule \"signer-b\" of \"app\":", "b.exe", "old: blocked, no rule (not-allowed)", "new: allowed, rule \"signer-b\" (allowed-by-signer)"} {
		if !strings.Contains(out, s) {
			t.Errorf("text lacks %q:\n%s", s, out)
		}
	}
	if strings.Index(out, "result: ") > strings.Index(out, "impact on") {
		t.Errorf("the impact comes before the rule diff:\n%s", out)
	}
}

// TestDiffAgainstErrors: usage errors and inventories that cannot be
// judged exit 2.
func TestDiffAgainstErrors(t *testing.T) {
	r := newRollout(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"gate without inventories", []string{"--fail-if-blocks-more"}, "needs --against"},
		{"sarif without inventories", []string{"--format", "sarif"}, "needs --against"},
		{"certs without inventories", []string{"--certs", r.old}, "need it"},
		{"unknown format", []string{"--format", "xml", "--against", r.ring1}, "want text, json or sarif"},
		{"no path", []string{"--against", "ring1="}, "no PATH"},
		{"bad scenario", []string{"--scenario", "nonsense", "--against", r.ring1}, "--scenario"},
		{"bad glob", []string{"--include", "[", "--against", r.ring1}, "invalid glob"},
		{"missing inventory", []string{"--against", filepath.Join(r.ring1, "missing")}, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := r.diff(t, append(tc.args, r.old, r.new)...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, %q; want 2 and %q", code, out, tc.want)
			}
		})
	}
}

func TestParseAgainst(t *testing.T) {
	got, err := parseAgainst([]string{"ring1=a", "./x=y", "ring1=b=c", "/abs/p", "r-2.x=d"})
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory{{"ring1", []string{"a", "b=c"}}, {"./x=y", []string{"./x=y"}}, {"/abs/p", []string{"/abs/p"}}, {"r-2.x", []string{"d"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseAgainst([]string{"ring="}); err == nil {
		t.Error("ring= accepted")
	}
}

// TestDiffWithoutAgainstUnchanged: without --against nothing is judged
// and the JSON has no inventories.
func TestDiffWithoutAgainstUnchanged(t *testing.T) {
	r := newRollout(t)
	out, code := r.diff(t, "--format", "json", r.old, r.tighten)
	if code != 1 || strings.Contains(out, "inventories") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(r.ring1); err != nil {
		t.Fatal(err)
	}
}
