package csv

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
)

// recordFacts validates roots with set, recording every file's facts (as csv
// validate --record does: every digest, every signature) into a facts file
// (gzip-compressed with gz), and returns its path and the run's report.
func recordFacts(t *testing.T, set *cipolicy.Set, origin string, gz bool, opts Options, roots ...string) (string, *Report) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "build.facts")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := facts.NewWriter(f, facts.NewHeader(origin, "csv test", time.Unix(0, 0)), facts.WriterOptions{Gzip: gz})
	if err != nil {
		t.Fatal(err)
	}
	opts.AllDigests = true
	v, err := NewValidator(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := v.ValidateTo(context.Background(), &FactsRecorder{W: w, Next: &c}, roots...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return name, c.rep
}

// judgeFactsFiles judges facts files with set.
func judgeFactsFiles(t *testing.T, set *cipolicy.Set, opts Options, files ...string) *Report {
	t.Helper()
	v, err := NewValidator(set, opts)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := v.ValidateFacts(context.Background(), &c, files...); err != nil {
		t.Fatal(err)
	}
	return c.rep
}

// outcome is what a report says of one file: where, and how it was
// judged (what csv validate's JSON report says of it, but the facts of
// its format).
func outcome(r *Result) string {
	d := r.Decision
	return fmt.Sprintf("%s|%s|%s|verdict=%s enforced=%t kind=%s policy=%s rule=%s sig=%d catalog=%s|%s|digests=%v|signed=%t sigs=%d|err=%v",
		r.Root, r.Path, r.Format, d.Verdict, d.Enforced, d.Kind, d.Policy, d.Rule, d.Signature, r.Catalog, d.Reason,
		digestsOf(r), r.Signed, len(r.Signatures), r.Err != nil)
}

// digestsOf lists r's digests with their values (a judge that kept a
// record's bytes after the next record reused them would show here).
func digestsOf(r *Result) string {
	var b strings.Builder
	r.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) { fmt.Fprintf(&b, "%s:%x ", a, v) })
	return b.String()
}

// assertSameVerdicts judges the facts file with set and checks that every
// result and skipped file is what validating the files with set says.
func assertSameVerdicts(t *testing.T, set *cipolicy.Set, factsFile, origin string, opts Options, roots ...string) {
	t.Helper()
	want := validate(t, set, opts, roots...)
	got := judgeFactsFiles(t, set, Options{Scenario: opts.Scenario, Certificates: opts.Certificates}, factsFile)
	if len(got.Results) != len(want.Results) || len(got.Skipped) != len(want.Skipped) {
		t.Fatalf("facts: %d results, %d skipped; files: %d results, %d skipped", len(got.Results), len(got.Skipped), len(want.Results), len(want.Skipped))
	}
	for i := range want.Results {
		g, w := &got.Results[i], &want.Results[i]
		if outcome(g) != outcome(w) {
			t.Errorf("result %d:\nfacts: %s\nfiles: %s", i, outcome(g), outcome(w))
		}
		if g.Origin != origin || g.DisplayPath() != origin+":"+w.DisplayPath() {
			t.Errorf("result %d: origin %q, shown as %q", i, g.Origin, g.DisplayPath())
		}
		if (g.Err == nil) != (w.Err == nil) || g.Err != nil && Message(g.Err) != Message(w.Err) {
			t.Errorf("result %d: error %v, want %v", i, g.Err, w.Err)
		}
	}
	for i := range want.Skipped {
		g, w := got.Skipped[i], want.Skipped[i]
		g.Origin, g.Walk = "", w.Walk // facts have no place in a walk
		if g != w {
			t.Errorf("skipped %d: %+v, want %+v", i, g, w)
		}
	}
	if got.Summary != want.Summary {
		t.Errorf("summary %+v, want %+v", got.Summary, want.Summary)
	}
	if len(got.Origins) != 1 || got.Origins[0] != origin {
		t.Errorf("origins %q", got.Origins)
	}
}

func loadPolicy(t *testing.T, name string, src []byte) *cipolicy.Set {
	t.Helper()
	p, err := cipolicy.Parse(src, name)
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// examplesSiPolicy is a SiPolicy XML policy for the example build: its PE
// files and script by their Authenticode SHA256, as New-CIPolicy writes
// hash rules, and nothing for the ELF tool.
func examplesSiPolicy(t *testing.T) *cipolicy.Set {
	t.Helper()
	rules, refs := "", ""
	for i, f := range []string{"app.exe", "plugins/render.node", "install.ps1"} {
		in := InspectFile(context.Background(), filepath.Join("..", "examples", "build", f), nil, InspectOptions{})
		if in.Err != nil {
			t.Fatal(in.Err)
		}
		rules += fmt.Sprintf(`<Allow ID="ID_ALLOW_%d" FriendlyName="%s Hash Sha256" Hash="%X" />`, i, f, in.Digests.Get(cipolicy.AuthenticodeSHA256))
		refs += fmt.Sprintf(`<FileRuleRef RuleID="ID_ALLOW_%d" />`, i)
	}
	return loadPolicy(t, "examples.xml", []byte(sipolicy(rules, "", refs, "")))
}

// sipolicy is a base SiPolicy of user-mode file rules and signers.
func sipolicy(fileRules, signers, refs, allowedSigners string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="Base Policy">
  <VersionEx>1.0.0.0</VersionEx>
  <PolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</PolicyID>
  <BasePolicyID>{A244370E-44C9-4C06-B551-F6016E563076}</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
  <FileRules>` + fileRules + `</FileRules>
  <Signers>` + signers + `</Signers>
  <SigningScenarios>
    <SigningScenario Value="12" ID="ID_SIGNINGSCENARIO_UMCI" FriendlyName="user">
      <ProductSigners>` + allowedSigners + `<FileRulesRef>` + refs + `</FileRulesRef></ProductSigners>
    </SigningScenario>
  </SigningScenarios>
</SiPolicy>`
}

// TestFactsJudgeExamples: the README's example build and its untrusted
// files, recorded once, judge as the files do with the example's YAML
// policy and with a SiPolicy XML policy (which blocks the ELF tool), and
// recorded plainly or compressed.
func TestFactsJudgeExamples(t *testing.T) {
	roots := []string{filepath.Join("..", "examples", "build"), filepath.Join("..", "examples", "untrusted")}
	src, err := os.ReadFile(filepath.Join("..", "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yamlSet := loadPolicy(t, "policy.yaml", src)
	xmlSet := examplesSiPolicy(t)
	for _, gz := range []bool{false, true} {
		file, rec := recordFacts(t, yamlSet, "build-1", gz, Options{}, roots...)
		if rec.Summary.Files < 6 || rec.Summary.Blocked == 0 {
			t.Fatalf("recording run: %+v", rec.Summary)
		}
		for _, c := range []struct {
			name string
			set  *cipolicy.Set
		}{{"yaml", yamlSet}, {"sipolicy", xmlSet}} {
			t.Run(fmt.Sprintf("%s gzip=%t", c.name, gz), func(t *testing.T) {
				assertSameVerdicts(t, c.set, file, "build-1", Options{}, roots...)
			})
		}
	}
}

// signedTree is a build with what signer rules match: a PE file signed
// by the build signer, an ELF file with an appended signature, files a
// catalog of the tree admits, an unsigned file; and another signer's
// intermediate.
func signedTree(t *testing.T) (dir string, s *signer, chainCerts []*signing.Certificate) {
	t.Helper()
	s = newSigner(t)
	dir, _ = catalogTree(t, s)
	if err := os.WriteFile(filepath.Join(dir, "app.exe"), testbin.PE(testbin.PEOptions{Data: []byte("signed app")}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mod.ko"), testbin.ELF(testbin.ELFOptions{}), 0o644); err != nil {
		t.Fatal(err)
	}
	appendModSig(t, filepath.Join(dir, "mod.ko"), s.leaf)
	opts := s.opts()
	opts.Include = []string{"app.exe"}
	if _, err := Sign(context.Background(), opts, dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*x509.Certificate{s.leaf.Cert, s.ca.Intermediate.Cert} {
		chainCerts = append(chainCerts, sigCert(t, c))
	}
	return dir, s, chainCerts
}

// TestFactsJudgeSigned: signatures, their chains, catalog membership and
// signer rules at every level re-match from recorded facts exactly: YAML
// signer rules by TBS hash (the issuing CA, and the leaf with a
// publisher and an EKU), a deny by hash, a SiPolicy signer rule; and a
// policy without signer rules, whose reasons name no signature.
func TestFactsJudgeSigned(t *testing.T) {
	dir, _, certs := signedTree(t)
	leaf, inter := certs[0], certs[1]
	opts := Options{Certificates: []*signing.Certificate{leaf}}
	file, _ := recordFacts(t, policyFor(t), "host-a", false, opts, dir)
	yamlSets := map[string]*cipolicy.Set{
		"issuer": policyFor(t, fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex())),
		"leaf": policyFor(t, fmt.Sprintf("{id: leaf, action: allow, signer: {tbs: %s, level: issuer, publisher: %q, ekus: [1.3.6.1.5.5.7.3.3]}}", inter.TBSHashHex(), leaf.CommonName()),
			fmt.Sprintf("{id: no-extra, action: deny, sha256: %x}", testbinDigest(t, filepath.Join(dir, "extra.exe")))),
		"hash-only": policyFor(t, "{id: none, action: allow, sha256: "+strings.Repeat("00", 32)+"}"),
	}
	for name, set := range yamlSets {
		t.Run(name, func(t *testing.T) { assertSameVerdicts(t, set, file, "host-a", opts, dir) })
	}
	xml := sipolicy("", fmt.Sprintf(`<Signer ID="ID_SIGNER_BUILD" Name="build"><CertRoot Type="TBS" Value="%s" /></Signer>`, inter.TBSHashHex()),
		"", `<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_BUILD" /></AllowedSigners>`)
	t.Run("sipolicy", func(t *testing.T) {
		assertSameVerdicts(t, loadPolicy(t, "signers.xml", []byte(xml)), file, "host-a", opts, dir)
	})
}

func testbinDigest(t *testing.T, path string) []byte {
	t.Helper()
	in := InspectFile(context.Background(), path, nil, InspectOptions{})
	if in.Err != nil {
		t.Fatal(in.Err)
	}
	return in.Digests.Get(cipolicy.SHA256)
}

// TestFactsJudgeCorpus: the bench corpus (../shared/bench/make-corpus.sh:
// Go-built PE files signed by a build chain and by a rogue signer, real
// ELF files, documents), recorded once, judges as the files do with a
// YAML signer policy and the same rule as SiPolicy XML.
func TestFactsJudgeCorpus(t *testing.T) {
	dir := corpus(t)
	root, err := signing.LoadCertificateFiles([]string{filepath.Join(dir, "keys", "inter.pem")})
	if err != nil {
		t.Fatal(err)
	}
	tbs := root[0].TBSHashHex()
	build := filepath.Join(dir, "build")
	file, _ := recordFacts(t, policyFor(t), "corpus", true, Options{}, build)
	yamlSet := policyFor(t, fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", tbs))
	xml := sipolicy("", fmt.Sprintf(`<Signer ID="ID_SIGNER_BUILD" Name="build"><CertRoot Type="TBS" Value="%s" /></Signer>`, tbs),
		"", `<AllowedSigners><AllowedSigner SignerId="ID_SIGNER_BUILD" /></AllowedSigners>`)
	t.Run("yaml", func(t *testing.T) { assertSameVerdicts(t, yamlSet, file, "corpus", Options{}, build) })
	t.Run("sipolicy", func(t *testing.T) {
		assertSameVerdicts(t, loadPolicy(t, "b.xml", []byte(xml)), file, "corpus", Options{}, build)
	})
}

// TestFactsJudgeRefuses: options that choose or read files do not apply
// to facts; a malformed facts file fails the run, naming file and line.
func TestFactsJudgeRefuses(t *testing.T) {
	set := policyFor(t)
	for _, o := range []Options{{Include: []string{"x"}}, {Exclude: []string{"x"}}, {Shard: &Shard{1, 2}}, {Catalogs: []string{"x.cat"}}, {SignCheck: true}} {
		v, err := NewValidator(set, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ValidateFacts(context.Background(), &collector{}, "x.facts"); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v, want ErrOptions", o, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.facts")
	content := `{"format":"csv-facts/v1","origin":"h","tool":"t","created":"2026-01-01T00:00:00Z"}` + "\n" +
		`{"root":"r","path":"a","format":"elf","size":1,"signed":false,"signatures":null}` + "\n" +
		`{"root":"r","path":"b","format":"elf","size":1,"signed":false,"signatures":null,"trusted":true}` + "\n"
	if err := os.WriteFile(bad, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	v, _ := NewValidator(set, Options{})
	err := v.ValidateFacts(context.Background(), &collector{}, bad)
	var pe *facts.ParseError
	if !errors.As(err, &pe) || pe.File != bad || pe.Line != 3 || !errors.Is(err, facts.ErrMalformed) {
		t.Errorf("malformed facts: %v", err)
	}
	if err := v.ValidateFacts(context.Background(), &collector{}, filepath.Join(t.TempDir(), "absent")); !errors.Is(err, ErrOptions) {
		t.Errorf("absent facts file: %v", err)
	}
}

// TestFactsSeveralOrigins: facts of two hosts combine, in the order given,
// each result with its own origin.
func TestFactsSeveralOrigins(t *testing.T) {
	root := filepath.Join("..", "examples", "build")
	set := policyFor(t, "{id: all, action: allow, all: true}")
	a, _ := recordFacts(t, set, "host-a", false, Options{}, root)
	b, _ := recordFacts(t, set, "host-b", true, Options{}, root)
	rep := judgeFactsFiles(t, set, Options{}, a, b)
	if len(rep.Origins) != 2 || rep.Origins[0] != "host-a" || rep.Origins[1] != "host-b" {
		t.Fatalf("origins %q", rep.Origins)
	}
	n := len(rep.Results) / 2
	if n == 0 || len(rep.Results) != 2*n {
		t.Fatalf("%d results", len(rep.Results))
	}
	for i, r := range rep.Results {
		want := "host-a"
		if i >= n {
			want = "host-b"
		}
		if r.Origin != want || !strings.HasPrefix(r.DisplayPath(), want+":") {
			t.Errorf("result %d: origin %q (%s)", i, r.Origin, r.DisplayPath())
		}
	}
}

// errSink fails at its n-th result.
type errSink struct {
	collector
	n, seen int
}

var errStop = errors.New("stop")

func (s *errSink) Result(r *Result) error {
	if s.seen++; s.seen == s.n {
		return errStop
	}
	return s.collector.Result(r)
}

// TestFactsJudgeStreams: records are judged in batches on several
// workers and passed on in record order; a malformed record past many
// batches ends the run with its line after every record before it was
// passed on; a sink's error stops the run; a cancelled run says so.
func TestFactsJudgeStreams(t *testing.T) {
	hdr := `{"format":"csv-facts/v1","origin":"h","tool":"t","created":"2026-01-01T00:00:00Z"}` + "\n"
	var b strings.Builder
	b.WriteString(hdr)
	const n, bad = 2000, 1500
	for i := range n {
		if i == bad {
			b.WriteString(`{"root":"r","path":"bad","format":"elf","size":1,"signed":false,"signatures":null,"x":1}` + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"root":"r","path":"f%05d","format":"elf","size":1,"digests":{"sha256":"%064x"},"signed":false,"signatures":[]}`+"\n", i, i)
	}
	file := filepath.Join(t.TempDir(), "many.facts")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(policyFor(t, "{id: all, action: allow, all: true}"), Options{Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	err = v.ValidateFacts(context.Background(), &c, file)
	var pe *facts.ParseError
	if !errors.As(err, &pe) || pe.Line != bad+2 {
		t.Fatalf("err = %v, want line %d", err, bad+2)
	}
	if len(c.results) != bad {
		t.Fatalf("%d results passed on before the error, want %d", len(c.results), bad)
	}
	for i, r := range c.results {
		if r.Path != fmt.Sprintf("f%05d", i) || !r.Decision.Allowed() {
			t.Fatalf("result %d: %s %+v", i, r.Path, r.Decision)
		}
	}
	s := &errSink{n: 700}
	if err := v.ValidateFacts(context.Background(), s, file); !errors.Is(err, errStop) || len(s.results) != 699 {
		t.Errorf("sink error: %v after %d results", err, len(s.results))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var ie *InterruptedError
	if err := v.ValidateFacts(ctx, &collector{}, file); !errors.As(err, &ie) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestFactsInspectedMembers: the facts csv inspect --format facts records
// of a file on its own and of a zip's members (InspectionRecord) judge as
// validating those files judges them: the zip skipped, each member at its
// path (app.zip!/lib/x.dll), a malformed member blocked, a text file
// skipped.
func TestFactsInspectedMembers(t *testing.T) {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for name, data := range map[string][]byte{"lib/x.dll": testbin.PE(testbin.PEOptions{Data: []byte("x")}), "bin/tool": elfImg,
		"bin/broken": testbin.ELF(testbin.ELFOptions{})[:100], "README": []byte("text")} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	zw.Close()
	dir := tree(t, map[string][]byte{"app.zip": zb.Bytes(), "a.exe": testbin.PE(testbin.PEOptions{Data: []byte("a")})})
	files := []string{filepath.Join(dir, "app.zip"), filepath.Join(dir, "a.exe")}
	name := filepath.Join(t.TempDir(), "inspected.facts")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := facts.NewWriter(f, facts.NewHeader("laptop", "csv test", time.Unix(0, 0)), facts.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		var members []*facts.Record
		in, err := InspectMembers(context.Background(), path, nil, InspectOptions{}, nil, func(display string, in *Inspection, problem error) error {
			if in == nil {
				in = &Inspection{Format: FormatOther, Err: problem}
			}
			members = append(members, InspectionRecord(path, filepath.Base(path)+strings.TrimPrefix(display, filepath.ToSlash(path)), in))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(InspectionRecord(path, filepath.Base(path), in)); err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if err := w.Write(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	set := policyFor(t, fmt.Sprintf("{id: tool, action: allow, sha256: %x}", testbinDigest(t, writeTemp(t, elfImg))))
	want := validate(t, set, Options{}, files...)
	got := judgeFactsFiles(t, set, Options{}, name)
	if len(want.Results) < 3 || len(got.Results) != len(want.Results) {
		t.Fatalf("%d results, want %d", len(got.Results), len(want.Results))
	}
	byDisplay := map[string]string{}
	for i := range got.Results {
		byDisplay[strings.TrimPrefix(got.Results[i].DisplayPath(), "laptop:")] = outcome(&got.Results[i])
	}
	for i := range want.Results {
		w := &want.Results[i]
		if g := byDisplay[w.DisplayPath()]; g != outcome(w) {
			t.Errorf("%s:\nfacts: %s\nfiles: %s", w.DisplayPath(), g, outcome(w))
		}
	}
	if got.Summary.Files != want.Summary.Files || got.Summary.Blocked != want.Summary.Blocked || got.Summary.Skipped != want.Summary.Skipped {
		t.Errorf("summary %+v, want %+v", got.Summary, want.Summary)
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFactsBatchBounds: a batch of records to judge holds
// factsBatchSize records of small lines, and stops at factsBatchBytes of
// long ones (the judging window is bounded in bytes as in records); the
// next batch goes on at the next line.
func TestFactsBatchBounds(t *testing.T) {
	write := func(n, pathLen int) *facts.Reader {
		t.Helper()
		var buf bytes.Buffer
		w, err := facts.NewWriter(&buf, facts.NewHeader("h", "t", time.Unix(0, 0)), facts.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			p := fmt.Sprintf("%07d", i) + strings.Repeat("x", pathLen)
			if err := w.Write(&facts.Record{Root: "r", Path: p, Skipped: "not a PE or ELF file"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rd, err := facts.NewReader(&buf, "b.facts")
		if err != nil {
			t.Fatal(err)
		}
		return rd
	}
	var b factsBatch
	rd := write(factsBatchSize+10, 10)
	if !b.fill(0, rd) || len(b.ends) != factsBatchSize || b.nums[0] != 2 {
		t.Fatalf("small lines: %d records from line %d, want %d from line 2", len(b.ends), b.nums[0], factsBatchSize)
	}
	if b.fill(0, rd) || len(b.ends) != 10 || b.nums[0] != factsBatchSize+2 || b.err != nil {
		t.Fatalf("the rest: %d records from line %d (%v)", len(b.ends), b.nums[0], b.err)
	}
	const long = 40000
	rd = write(20, long)
	if !b.fill(0, rd) {
		t.Fatal("long lines: the batch took them all")
	}
	want := factsBatchBytes/long + 1 // the one that passes the bytes
	if len(b.ends) != want || len(b.buf) < factsBatchBytes || len(b.buf) > factsBatchBytes+long+200 {
		t.Fatalf("long lines: %d records, %d bytes; want %d, just past %d bytes", len(b.ends), len(b.buf), want, factsBatchBytes)
	}
	if !strings.Contains(string(b.line(want-1)), fmt.Sprintf("%07d", want-1)) {
		t.Fatalf("line %d of the batch is not the record's", want-1)
	}
	if b.fill(0, rd); b.nums[0] != want+2 {
		t.Fatalf("the next batch starts at line %d, want %d", b.nums[0], want+2)
	}
}
