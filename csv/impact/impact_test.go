package impact_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
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
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/impact"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

// build is a generated build: PE files with version resources, ELF files
// with appended signatures by two signers, an unsigned ELF file and a text
// file, and the certificates that complete the ELF signers' chains.
type build struct {
	dir        string
	certs      []*signing.Certificate
	tbsA, tbsB string
	// sha are the files' SHA-256s, by path.
	sha map[string]string
}

func newBuild(t *testing.T) *build {
	t.Helper()
	ca := testca.New(t)
	leafA := ca.Leaf(t, testca.LeafOptions{CommonName: "Signer A"})
	leafB := ca.Leaf(t, testca.LeafOptions{CommonName: "Signer B"})
	b := &build{dir: t.TempDir(), sha: map[string]string{}}
	for _, c := range []*testca.Cert{leafA, leafB, ca.Intermediate} {
		sc, err := signing.ParseCertificate(c.Cert.Raw)
		if err != nil {
			t.Fatal(err)
		}
		b.certs = append(b.certs, sc)
	}
	b.tbsA, b.tbsB = b.certs[0].TBSHashHex(), b.certs[1].TBSHashHex()
	tool := func(v [4]uint16) []byte {
		return testbin.VersionPE([]testbin.VersionResource{{Lang: 0x409, FileVersion: &v,
			Tables: []testbin.VersionTable{{Key: "040904b0", Strings: [][2]string{{"OriginalFilename", "tool.exe"}}}}}})
	}
	elfSigned := func(extra string, leaf *testca.Cert) []byte {
		img := testbin.ELF(testbin.ELFOptions{Extra: []byte(extra)})
		if leaf == nil {
			return img
		}
		d := sha256.Sum256(img)
		sig, err := modsig.Sign(d[:], leaf.Cert, leaf.Key, modsig.SignOptions{Hash: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		return append(img, sig...)
	}
	files := map[string][]byte{
		"bin/tool.exe":  tool([4]uint16{1, 2, 3, 4}),
		"bin/tool2.exe": tool([4]uint16{2, 1, 0, 0}),
		"lib/a.so":      elfSigned("a", leafA),
		"lib/b.so":      elfSigned("b", leafB),
		"lib/c.so":      elfSigned("c", leafA),
		"lib/bad.so":    elfSigned("bad", nil),
		"README.txt":    []byte("not a binary\n"),
		"pkg.zip":       zipOf(t, "lib/m.so", elfSigned("m", leafA)),
	}
	for name, data := range files {
		p := filepath.Join(b.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		b.sha[name] = hex.EncodeToString(s[:])
	}
	return b
}

// oldPolicy allows tool.exe from 1.0, Signer A, and bad.so by its hash.
func (b *build) oldPolicy(t *testing.T, mode string) *cipolicy.Policy {
	return parse(t, "old.yaml", fmt.Sprintf(`format: csv-policy/v1
name: app
version: "1"
mode: %s
rules:
  - {id: tool, action: allow, file: {name: tool.exe, min_version: 1.0.0.0}}
  - {id: signer-a, action: allow, signer: {tbs: %s, level: leaf}}
  - {id: legacy-bad, action: allow, sha256: %s}
`, mode, b.tbsA, b.sha["lib/bad.so"]))
}

// newPolicy tightens tool.exe to 2.0, removes Signer A and adds Signer B,
// pins c.so (signed by A) by its hash, and denies bad.so.
func (b *build) newPolicy(t *testing.T, mode string) *cipolicy.Policy {
	return parse(t, "new.yaml", fmt.Sprintf(`format: csv-policy/v1
name: app
version: "2"
mode: %s
rules:
  - {id: tool, action: allow, file: {name: tool.exe, min_version: 2.0.0.0}}
  - {id: signer-b, action: allow, signer: {tbs: %s, level: leaf}}
  - {id: c-pin, action: allow, sha256: %s}
  - {id: legacy-bad, action: allow, sha256: %s}
  - {id: deny-bad, action: deny, sha256: %s}
`, mode, b.tbsB, b.sha["lib/c.so"], b.sha["lib/bad.so"], b.sha["lib/bad.so"]))
}

// zipOf returns a zip archive holding data at name.
func zipOf(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func parse(t *testing.T, name, src string) *cipolicy.Policy {
	t.Helper()
	p, err := cipolicy.Parse([]byte(src), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (b *build) validator(t *testing.T, p *cipolicy.Policy) *csv.Validator {
	t.Helper()
	now := func() time.Time { return testca.Epoch }
	set, err := cipolicy.NewSet(cipolicy.SetOptions{Now: now}, p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := csv.NewValidator(set, csv.Options{Jobs: 2, Certificates: b.certs, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// summary is a change as the tests compare it: path relative to the
// build, kind, group (decided_by:rule), old rule -> new rule.
func summary(t *testing.T, root string, inv *impact.Inventory) []string {
	t.Helper()
	var out []string
	for _, g := range inv.Groups() {
		for _, c := range g.Files {
			rel := strings.TrimPrefix(c.Path, filepath.ToSlash(root)+"/")
			out = append(out, fmt.Sprintf("%s %s %s:%s %s->%s", rel, string(g.Kind), g.DecidedBy, g.Rule, c.Old.Rule, c.New.Rule))
		}
	}
	return out
}

// TestCompareNamesExactlyTheChangedFiles: removing a signer, adding a deny
// hash rule and tightening a minimum version block exactly the files they
// decide; a signer added admits exactly its file; a file pinned by hash
// where its signer was removed keeps running, decided by another rule.
func TestCompareNamesExactlyTheChangedFiles(t *testing.T) {
	b := newBuild(t)
	old := b.validator(t, b.oldPolicy(t, "enforce"))
	nw := b.validator(t, b.newPolicy(t, "enforce"))
	inv, err := impact.Compare(context.Background(), "ring0", []string{b.dir}, old, nw, impact.Paths(b.dir))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// Grouped by kind, then rule; within a group in the walk's order.
		"bin/tool.exe newly-blocked old:tool tool->",                 // min_version tightened: no rule decides now
		"lib/a.so newly-blocked old:signer-a signer-a->",             // Signer A removed
		"pkg.zip!/lib/m.so newly-blocked old:signer-a signer-a->",    // a member too
		"lib/bad.so newly-blocked new:deny-bad legacy-bad->deny-bad", // a deny rule added
		"lib/b.so newly-allowed new:signer-b ->signer-b",             // Signer B added
		"lib/c.so rule-changed new:c-pin signer-a->c-pin",            // pinned by hash instead
	}
	if got := summary(t, b.dir, inv); !slices.Equal(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
	wantCounts := impact.Counts{Judged: 7, Unchanged: 1, NewlyBlocked: 4, NewlyAllowed: 1, RuleChanged: 1, Skipped: 2}
	if inv.Counts != wantCounts {
		t.Errorf("counts %+v, want %+v", inv.Counts, wantCounts)
	}
	// Each side says what decided, and why.
	for _, c := range inv.Changes {
		if strings.HasSuffix(c.Path, "lib/bad.so") {
			if c.Old.Verdict != cipolicy.Allowed || c.Old.Kind != cipolicy.KindAllowedByHash ||
				c.New.Verdict != cipolicy.Blocked || c.New.Kind != cipolicy.KindDenied || !c.New.Enforced || c.New.Reason == "" {
				t.Errorf("bad.so: old %+v new %+v", c.Old, c.New)
			}
		}
	}

	// The reverse change is the mirror image.
	rev, err := impact.Compare(context.Background(), "ring0", []string{b.dir}, nw, old, impact.Paths(b.dir))
	if err != nil {
		t.Fatal(err)
	}
	wantRev := impact.Counts{Judged: 7, Unchanged: 1, NewlyBlocked: 1, NewlyAllowed: 4, RuleChanged: 1, Skipped: 2}
	if rev.Counts != wantRev {
		t.Errorf("reverse counts %+v, want %+v", rev.Counts, wantRev)
	}

	// The same policy on both sides changes nothing.
	same, err := impact.Compare(context.Background(), "ring0", []string{b.dir}, old, old, impact.Paths(b.dir))
	if err != nil {
		t.Fatal(err)
	}
	if same.Counts.Unchanged != 7 || len(same.Changes) != 0 {
		t.Errorf("same policy: %+v, %d changes", same.Counts, len(same.Changes))
	}
}

// TestCompareAudit: a file the new policy blocks while it only audits is
// not an outage (it still runs): it is reported as would be blocked; and
// turning an auditing policy to enforcement blocks what it audited.
func TestCompareAudit(t *testing.T) {
	b := newBuild(t)
	ctx := context.Background()
	inv, err := impact.Compare(ctx, "r", []string{b.dir}, b.validator(t, b.oldPolicy(t, "enforce")), b.validator(t, b.newPolicy(t, "audit")), impact.Paths(b.dir))
	if err != nil {
		t.Fatal(err)
	}
	want := impact.Counts{Judged: 7, Unchanged: 1, WouldBlockAudit: 4, NewlyAllowed: 1, RuleChanged: 1, Skipped: 2}
	if inv.Counts != want {
		t.Errorf("enforce -> audit: %+v, want %+v", inv.Counts, want)
	}
	// Audit to enforce, the same rules: what the policy audited it now blocks.
	oldAudit := b.validator(t, b.newPolicy(t, "audit"))
	newEnf := b.validator(t, b.newPolicy(t, "enforce"))
	inv, err = impact.Compare(ctx, "r", []string{b.dir}, oldAudit, newEnf, impact.Paths(b.dir))
	if err != nil {
		t.Fatal(err)
	}
	var blocked []string
	for _, c := range inv.Changes {
		if c.Kind == impact.NewlyBlocked {
			blocked = append(blocked, strings.TrimPrefix(c.Path, filepath.ToSlash(b.dir)+"/"))
		}
	}
	if want := []string{"bin/tool.exe", "lib/a.so", "lib/bad.so", "pkg.zip!/lib/m.so"}; !slices.Equal(blocked, want) || inv.Counts.NewlyBlocked != 4 || inv.Counts.Judged != 7 {
		t.Errorf("audit -> enforce: newly blocked %q (%+v), want %q", blocked, inv.Counts, want)
	}
}

func TestClassify(t *testing.T) {
	allow := cipolicy.Decision{Verdict: cipolicy.Allowed, Enforced: true, Kind: cipolicy.KindAllowedByHash, Rule: "h"}
	block := cipolicy.Decision{Verdict: cipolicy.Blocked, Enforced: true, Kind: cipolicy.KindDenied, Rule: "d"}
	audit := block
	audit.Enforced = false
	other := allow
	other.Rule = "h2"
	for _, tc := range []struct {
		name     string
		old, new cipolicy.Decision
		want     impact.Kind
	}{
		{"same", allow, allow, impact.Unchanged},
		{"allowed to blocked", allow, block, impact.NewlyBlocked},
		{"audited to blocked", audit, block, impact.NewlyBlocked},
		{"blocked to allowed", block, allow, impact.NewlyAllowed},
		{"blocked to audited", block, audit, impact.NewlyAllowed},
		{"allowed to audited", allow, audit, impact.WouldBlockAudit},
		{"audited to allowed", audit, allow, impact.RuleChanged},
		{"another allow rule", allow, other, impact.RuleChanged},
		{"allowed, now by an auditing policy", allow, func() cipolicy.Decision { d := allow; d.Enforced = false; return d }(), impact.Unchanged},
	} {
		if got := impact.Classify(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestCompareInventoryMismatch: runs that judge different files are an
// error, not a comparison of unrelated files; a run's own error is
// returned as such.
func TestCompareInventoryMismatch(t *testing.T) {
	b := newBuild(t)
	p := b.oldPolicy(t, "enforce")
	old, nw := b.validator(t, p), b.validator(t, p)
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "x.so"), testbin.ELF(testbin.ELFOptions{}), 0o644); err != nil {
		t.Fatal(err)
	}
	// The new policy's run sees another tree, as if the files changed.
	judge := func(ctx context.Context, v *csv.Validator, sink csv.Sink) error {
		if v == nw {
			return v.ValidateTo(ctx, sink, other)
		}
		return v.ValidateTo(ctx, sink, b.dir)
	}
	_, err := impact.Compare(context.Background(), "ring0", []string{b.dir}, old, nw, judge)
	var mm *impact.InventoryMismatchError
	if !errors.As(err, &mm) || mm.Inventory != "ring0" || mm.Old == "" || mm.New == "" {
		t.Fatalf("different trees: %v", err)
	}

	_, err = impact.Compare(context.Background(), "ring0", nil, old, nw, impact.Paths(filepath.Join(b.dir, "missing")))
	if err == nil || errors.As(err, &mm) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing inventory: %v", err)
	}
}

// TestCompareCancelled: a cancelled comparison returns the cancellation.
func TestCompareCancelled(t *testing.T) {
	b := newBuild(t)
	p := b.oldPolicy(t, "enforce")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := impact.Compare(ctx, "r", nil, b.validator(t, p), b.validator(t, p), impact.Paths(b.dir))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestRenderers: the JSON groups the changes with both decisions, the
// SARIF is valid SARIF 2.1.0 with one result per newly blocked (error) and
// newly allowed (warning) file, and the text names every changed file.
func TestRenderers(t *testing.T) {
	b := newBuild(t)
	inv, err := impact.Compare(context.Background(), "ring0", []string{b.dir}, b.validator(t, b.oldPolicy(t, "enforce")),
		b.validator(t, b.newPolicy(t, "enforce")), impact.Paths(b.dir))
	if err != nil {
		t.Fatal(err)
	}
	invs := []*impact.Inventory{inv}

	js, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Name   string
		Counts impact.Counts
		Groups []struct {
			Change    string
			DecidedBy string `json:"decided_by"`
			Rule      string
			Files     []struct {
				Path     string
				Old, New impact.Side
			}
		}
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Name != "ring0" || doc.Counts != inv.Counts || len(doc.Groups) != 5 {
		t.Fatalf("JSON: %s", js)
	}
	if g := doc.Groups[2]; g.Change != "newly-blocked" || g.DecidedBy != "new" || g.Rule != "deny-bad" ||
		len(g.Files) != 1 || g.Files[0].New.Kind != cipolicy.KindDenied || g.Files[0].Old.Rule != "legacy-bad" {
		t.Errorf("JSON group 2: %+v", g)
	}

	var sarif bytes.Buffer
	if err := impact.WriteSARIF(&sarif, invs, impact.SARIFOptions{ToolVersion: "test"}); err != nil {
		t.Fatal(err)
	}
	checkSARIF(t, sarif.Bytes())
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID    string
				Level     string
				Locations []struct {
					PhysicalLocation struct{ ArtifactLocation struct{ URI string } }
				}
				Properties struct {
					PolicyRule string
					Inventory  string
				}
			}
		}
	}
	if err := json.Unmarshal(sarif.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range log.Runs[0].Results {
		uri := r.Locations[0].PhysicalLocation.ArtifactLocation.URI
		got = append(got, fmt.Sprintf("%s %s %s %s", r.RuleID, r.Level, uri[strings.LastIndex(uri, "/")+1:], r.Properties.PolicyRule))
	}
	want := []string{
		"CSV.Impact.NewlyBlocked error tool.exe tool",
		"CSV.Impact.NewlyBlocked error a.so signer-a",
		"CSV.Impact.NewlyBlocked error pkg.zip signer-a", // a member: located at its container
		"CSV.Impact.NewlyBlocked error bad.so deny-bad",
		"CSV.Impact.NewlyAllowed warning b.so signer-b",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("SARIF results:\n got %q\nwant %q", got, want)
	}

	var text bytes.Buffer
	impact.WriteText(&text, invs)
	out := text.String()
	for _, s := range []string{
		"7 binaries judged: 4 newly blocked, 0 would be blocked (audit), 1 newly allowed, 1 rule changed, 1 unchanged",
		"newly blocked (4):", "pkg.zip!/lib/m.so", `rule "deny-bad" of "app":`, `rule "signer-a" of "app" (old policy), which no longer decides:`,
		"lib/b.so", "lib/c.so", `new: blocked, rule "deny-bad" (denied)`,
	} {
		if !strings.Contains(out, s) {
			t.Errorf("text lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "tool2.exe") {
		t.Errorf("text names an unchanged file:\n%s", out)
	}
}

// checkSARIF checks b against the SARIF 2.1.0 schema.
func checkSARIF(t *testing.T, b []byte) {
	t.Helper()
	schema, err := jsonschema.NewCompiler().Compile(testenv.Shared(t, "testdata/sarif/sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("not valid SARIF 2.1.0: %v", err)
	}
}

// TestWriteTextEscapes: a file name or reason that holds a newline or a CI
// log command cannot forge a line of the report.
func TestWriteTextEscapes(t *testing.T) {
	side := impact.Side{Verdict: cipolicy.Blocked, Enforced: true, Kind: cipolicy.KindDenied, Rule: "d", Reason: "denied\nimpact on \"x\": 0 binaries judged"}
	inv := &impact.Inventory{Name: "r\n##[error]x", Sources: []string{"dir"}, Counts: impact.Counts{Judged: 1, NewlyBlocked: 1},
		Changes: []impact.Change{{Path: "dir/a\n##[error]forged", Kind: impact.NewlyBlocked, Old: impact.Side{Verdict: cipolicy.Allowed, Enforced: true}, New: side}}}
	var buf bytes.Buffer
	impact.WriteText(&buf, []*impact.Inventory{inv})
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "##[") || strings.HasPrefix(l, "impact on \"x\"") {
			t.Errorf("forged line %q", l)
		}
	}
}

func ExampleClassify() {
	old := cipolicy.Decision{Verdict: cipolicy.Allowed, Enforced: true, Kind: cipolicy.KindAllowedBySigner, Rule: "build-pca"}
	denied := cipolicy.Decision{Verdict: cipolicy.Blocked, Enforced: true, Kind: cipolicy.KindDenied, Rule: "leaked-2024"}
	audited := denied
	audited.Enforced = false // the new policy only audits
	fmt.Println(impact.Classify(old, denied))
	fmt.Println(impact.Classify(old, audited))
	fmt.Println(impact.Classify(denied, old))
	// Output:
	// newly blocked
	// would be blocked (audit)
	// newly allowed
}

// TestCompareSymlinkScopes: a symbolic link is judged at its own path when
// the policy's path scopes tell it apart from its target's (csv/discover.go),
// so two policies with different scopes would list different files; the
// validators NewValidators makes walk with both policies' scopes, and the
// link a new path-scoped deny rule blocks is named.
func TestCompareSymlinkScopes(t *testing.T) {
	dir := t.TempDir()
	elf := testbin.ELF(testbin.ELFOptions{})
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lib", "real.so"), elf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../lib/real.so", filepath.Join(dir, "bin", "tool")); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	old := parse(t, "old.yaml", "format: csv-policy/v1\nname: app\nrules:\n  - {id: all, action: allow, all: true}\n")
	nw := parse(t, "new.yaml", "format: csv-policy/v1\nname: app\nrules:\n  - {id: all, action: allow, all: true}\n  - {id: no-bin, action: deny, all: true, paths: [\"bin/**\"]}\n")
	sets := make([]*cipolicy.Set, 2)
	for i, p := range []*cipolicy.Policy{old, nw} {
		s, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
		if err != nil {
			t.Fatal(err)
		}
		sets[i] = s
	}
	ov, nv, err := impact.NewValidators(sets[0], sets[1], csv.Options{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := impact.Compare(context.Background(), "r", []string{dir}, ov, nv, impact.Paths(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(t, dir, inv), []string{"bin/tool newly-blocked new:no-bin all->no-bin"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	if inv.Counts.Judged != 2 {
		t.Errorf("counts %+v, want 2 judged (the link and its target)", inv.Counts)
	}
}

// benchTree writes n distinct ELF files of about 14 KB under a temporary
// directory, 100 to a directory, and returns it with a policy that allows
// them all and one that also denies one of them by its SHA-256 (so that
// every file is hashed).
func benchTree(b *testing.B, n int) (string, *cipolicy.Set, *cipolicy.Set) {
	b.Helper()
	dir := b.TempDir()
	pad := make([]byte, 14<<10)
	var deny string
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		copy(pad, fmt.Sprintf("%08d", i))
		img := testbin.ELF(testbin.ELFOptions{Extra: pad})
		if i == n/2 {
			s := sha256.Sum256(img)
			deny = hex.EncodeToString(s[:])
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), img, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	set := func(src string) *cipolicy.Set {
		p, err := cipolicy.Parse([]byte(src), "p.yaml")
		if err != nil {
			b.Fatal(err)
		}
		s, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	old := set("format: csv-policy/v1\nname: app\nrules:\n  - {id: all, action: allow, all: true}\n")
	nw := set("format: csv-policy/v1\nname: app\nrules:\n  - {id: all, action: allow, all: true}\n  - {id: deny-one, action: deny, sha256: " + deny + "}\n")
	return dir, old, nw
}

// BenchmarkCompare compares two policies over 2,000 files; BenchmarkValidate
// is one validation of the same files under the new policy, the yardstick
// (go test -run '^$' -bench . -benchmem ./csv/impact).
func BenchmarkCompare(b *testing.B) {
	dir, old, nw := benchTree(b, 2000)
	ov, nv, err := impact.NewValidators(old, nw, csv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		inv, err := impact.Compare(context.Background(), "r", []string{dir}, ov, nv, impact.Paths(dir))
		if err != nil {
			b.Fatal(err)
		}
		if inv.Counts.NewlyBlocked != 1 || inv.Counts.Judged != 2000 {
			b.Fatalf("counts %+v", inv.Counts)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	dir, _, nw := benchTree(b, 2000)
	v, err := csv.NewValidator(nw, csv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := v.Validate(context.Background(), dir)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Summary.Blocked != 1 {
			b.Fatalf("summary %+v", rep.Summary)
		}
	}
}

// FuzzRender: whatever the paths, rule ids and reasons (names of files in
// an inventory, strings from policies), the text report has exactly its
// lines, none of them a CI log command, and the SARIF log is JSON that
// carries the path and the reason as given.
func FuzzRender(f *testing.F) {
	f.Add("build/a.exe", "deny-bad", "denied by rule \"deny-bad\": SHA256 00", "ring1")
	f.Add("a\nimpact on \"x\"", "r\n##[error]x", "reason\r\n::error::forged", "r\u202e")
	f.Add("pkg.zip!/lib/m.so", "", "", "")
	f.Add("C:/build/x.dll", "id", "\x00\xff", "=")
	f.Fuzz(func(t *testing.T, path, rule, reason, name string) {
		inv := &impact.Inventory{Name: name, Sources: []string{path}, Counts: impact.Counts{Judged: 2, NewlyBlocked: 1, NewlyAllowed: 1},
			Changes: []impact.Change{
				{Path: path, Kind: impact.NewlyBlocked, Old: impact.Side{Verdict: cipolicy.Allowed, Enforced: true, Rule: rule},
					New: impact.Side{Verdict: cipolicy.Blocked, Enforced: true, Kind: cipolicy.KindDenied, Rule: rule, Reason: reason}},
				{Path: path, Kind: impact.NewlyAllowed, Old: impact.Side{Verdict: cipolicy.Blocked, Enforced: true, Reason: reason},
					New: impact.Side{Verdict: cipolicy.Allowed, Enforced: true, Rule: rule}},
			}}
		var text bytes.Buffer
		impact.WriteText(&text, []*impact.Inventory{inv})
		lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
		groups := 2 // one group per kind: both changes have the same rules
		if want := 1 + 2 + groups + 2*3; len(lines) != want {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), want, text.String())
		}
		for _, l := range lines {
			if s := strings.TrimSpace(l); strings.HasPrefix(s, "##[") || strings.HasPrefix(s, "::") {
				t.Fatalf("a CI log command: %q", l)
			}
		}
		var sarif bytes.Buffer
		if err := impact.WriteSARIF(&sarif, []*impact.Inventory{inv}, impact.SARIFOptions{}); err != nil {
			t.Fatal(err)
		}
		var log struct {
			Runs []struct {
				Results []struct {
					Message    struct{ Text string }
					Properties struct {
						New struct{ Reason string }
					}
				}
			}
		}
		if err := json.Unmarshal(sarif.Bytes(), &log); err != nil {
			t.Fatalf("SARIF is not JSON: %v", err)
		}
		if len(log.Runs) != 1 || len(log.Runs[0].Results) != 2 {
			t.Fatalf("SARIF results: %s", sarif.Bytes())
		}
		r := log.Runs[0].Results[0]
		if utf8.ValidString(path) && !strings.HasPrefix(r.Message.Text, path) {
			t.Errorf("message %q does not start with the path %q", r.Message.Text, path)
		}
		if utf8.ValidString(reason) && r.Properties.New.Reason != reason {
			t.Errorf("reason %q, want %q", r.Properties.New.Reason, reason)
		}
	})
}
