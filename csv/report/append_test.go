package report_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/format/elf"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// oddStrings are paths, names and reasons that every encoder must escape
// as encoding/json and encoding/xml do: quotes, backslashes, control
// bytes, invalid UTF-8, <>&, U+2028, CI log commands, characters that are
// not graphic, characters outside XML's range.
var oddStrings = []string{
	"", "plain/path", `quo"te`, `back\slash`, "it's", "ctl\x00\x01\x08\x0c\x1b\x1f\x7f", "tab\tnl\ncr\r",
	"bad\xff\xfeutf8\xc3", "\xed\xa0\x80surrogate", "<script>&amp;</script>", "line\u2028para\u2029sep",
	"##[error]forged", "a ##vso[task.setvariable]x", "::error::x", "\u202eevil\u202c", "\u0085nel",
	"real\ufffd", "\ufffe\uffff", "\U0001F600 emoji", "é naïve", "zw\u200bsp", "\ue000private", "tag\U000E0041",
}

// signedTree validates a tree of signed, unsigned, denied and malformed
// binaries and a zip of members, with every digest and the signatures,
// and returns its results and skipped files.
func signedTree(t *testing.T) *csv.Report {
	t.Helper()
	dir := t.TempDir()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build <Signing> & \"Co\""})
	chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}
	write := func(name string, b []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("signed/app.exe", testbin.PE(testbin.PEOptions{}))
	write("signed/tool", testbin.ELF(testbin.ELFOptions{}))
	if _, err := csv.Sign(context.Background(), csv.SignOptions{Key: leaf.Key, Chain: chain}, filepath.Join(dir, "signed")); err != nil {
		t.Fatal(err)
	}
	write("plain/app32.exe", testbin.PE(testbin.PEOptions{PE32: true}))
	write("plain/tool32", testbin.ELF(testbin.ELFOptions{Class32: true}))
	write("plain/broken.exe", testbin.PE(testbin.PEOptions{})[:0x250])
	write("plain/notes.txt", []byte("text"))
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	for name, b := range map[string][]byte{"lib/x.dll": testbin.PE(testbin.PEOptions{Overlay: []byte("m")}), "bin/y": testbin.ELF(testbin.ELFOptions{})} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	write("dist/app.zip", z.Bytes())
	inter, err := signing.ParseCertificate(ca.Intermediate.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	tool32 := csv.InspectFile(context.Background(), filepath.Join(dir, "plain/tool32"), nil, csv.InspectOptions{})
	src := fmt.Sprintf("format: csv-policy/v1\nname: \"odd <policy> & \\\"name\\\"\"\nversion: '7'\nrules:\n"+
		"  - {id: build, action: allow, signer: {tbs: %s, level: issuer}}\n  - {id: no, action: deny, sha256: %x}\n",
		inter.TBSHashHex(), tool32.Digests.Get(cipolicy.SHA256))
	p, err := cipolicy.Parse([]byte(src), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := suppress.Parse([]byte("format: csv-suppressions/v1\nsuppressions:\n  - path: \"*.exe\"\n    rule: malformed\n    justification: \"cut <on> purpose & \\\"so\\\"\"\n    owner: o\n    ticket: T-1\n    expires: 2999-01-01\n"), "sup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	v, err := csv.NewValidator(set, csv.Options{AllDigests: true, Suppressions: suppress.NewSet(now, sup), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := v.Validate(context.Background(), filepath.Join(dir, "signed"), filepath.Join(dir, "plain"), filepath.Join(dir, "dist"), filepath.Join(dir, "dist", "app.zip"))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// sampleResults are results of every kind (allowed, blocked by each
// kind, audit, suppressed; signed with chains and timestamps absent or
// not; members of a container, a file root; PE and ELF facts, none) and
// copies of them with odd strings in every string a result carries.
func sampleResults(t *testing.T) ([]csv.Result, []csv.SkippedFile) {
	t.Helper()
	var results []csv.Result
	var skipped []csv.SkippedFile
	for _, rep := range []*csv.Report{signedTree(t), run(t, cipolicy.Enforce), run(t, cipolicy.Audit), runSuppressed(t, cipolicy.Enforce, "")} {
		results = append(results, rep.Results...)
		skipped = append(skipped, rep.Skipped...)
	}
	kinds := map[cipolicy.ReasonKind]bool{}
	signed := false
	for _, r := range results {
		kinds[r.Decision.Kind] = true
		signed = signed || len(r.Signatures) > 0
	}
	if !signed || !kinds[cipolicy.KindUnsigned] || !kinds[cipolicy.KindDenied] || !kinds[cipolicy.KindMalformed] || len(kinds) < 5 {
		t.Fatalf("the samples lack a kind: %v, signed %v", kinds, signed)
	}
	base := len(results)
	for i, s := range oddStrings {
		r := results[i%base]
		r.Path, r.Root = s, oddStrings[(i+1)%len(oddStrings)]
		r.Origin = oddStrings[(i+2)%len(oddStrings)]
		r.Decision.Reason, r.Decision.Policy, r.Decision.Rule = s+" reason", oddStrings[(i+3)%len(oddStrings)], s
		r.Decision.Signature = i - 3
		r.Size = int64(i) << 40
		r.Walk = csv.Walk{Entry: i, After: i % 3, Member: i % 2}
		if i%2 == 0 {
			r.Suppressed = &suppress.Entry{Source: s, Line: i, ID: s, Rule: "unsigned", Path: s, Justification: s, Owner: s, Ticket: s,
				Expires: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)}
		}
		if i%5 == 0 {
			r.Info = nil
		}
		results = append(results, r)
		sk := skipped[i%len(skipped)]
		sk.Path, sk.Root, sk.Reason, sk.Origin = s, s+"/root", "why: "+s, oddStrings[(i+5)%len(oddStrings)]
		sk.Walk = csv.Walk{Entry: i, After: 1}
		skipped = append(skipped, sk)
	}
	return results, skipped
}

// TestAppendResultJSONIsTheEncoders: the JSON written by hand for each
// result and skipped file is, byte for byte, what encoding/json wrote
// (ResultJSONReference), in a shard's report and in others; and the
// whole document the sink writes of them is json.Encoder's.
func TestAppendResultJSONIsTheEncoders(t *testing.T) {
	results, skipped := sampleResults(t)
	for i := range results {
		for _, shard := range []bool{false, true} {
			got, err := report.ResultJSON(&results[i], shard)
			if err != nil {
				t.Fatal(err)
			}
			want, err := report.ResultJSONReference(&results[i], shard)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("result %d (%q), shard %v:\n%s\nwant\n%s", i, results[i].Path, shard, got, want)
			}
		}
	}
	// The sink keeps the last facts it wrote: each result twice in a row,
	// and an ELF file's facts changed in place between two results.
	var twice []csv.Result
	for _, r := range results {
		twice = append(twice, r, r)
	}
	for _, r := range results {
		if info, ok := r.Info.(*elf.Info); ok {
			changed := *info
			r.Info = &changed
			twice = append(twice, r)
			changed.Machine++
			twice = append(twice, r)
			break
		}
	}
	got, err := report.ResultsJSON(twice, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range twice {
		want, err := report.ResultJSONReference(&twice[i], false)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i], want) {
			t.Errorf("result %d of a sequence (%q):\n%s\nwant\n%s", i, twice[i].Path, got[i], want)
		}
	}
	for i := range skipped {
		for _, shard := range []bool{false, true} {
			got := report.SkippedJSON(&skipped[i], shard)
			want, err := report.SkippedJSONReference(&skipped[i], shard)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("skipped %d (%q), shard %v:\n%s\nwant\n%s", i, skipped[i].Path, shard, got, want)
			}
		}
	}
	for _, shard := range []bool{false, true} {
		rep := &csv.Report{Mode: cipolicy.Enforce, Results: results, Skipped: skipped}
		if shard {
			rep.Shard = &csv.Shard{Index: 1, Count: 2}
		}
		opts := report.Options{ToolVersion: "1.2.3"}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report.NewDocument(rep, opts)); err != nil {
			t.Fatal(err)
		}
		if got, w := render(t, "json", opts, rep), textsafe.InertJSON(want.Bytes()); !bytes.Equal(got, w) {
			t.Errorf("shard %v: the document differs from json.Encoder's (%d bytes, want %d)", shard, len(got), len(w))
		}
	}
}

// TestAppendJUnitCaseIsTheEncoders: the test case written by hand for each
// result is, byte for byte, what xml.Encoder wrote (JUnitCaseReference),
// counted alike; and the whole document is xml.Encoder's.
func TestAppendJUnitCaseIsTheEncoders(t *testing.T) {
	results, _ := sampleResults(t)
	for i := range results {
		got, failed, skipped := report.JUnitCase(&results[i])
		want, wfailed, wskipped, err := report.JUnitCaseReference(&results[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || failed != wfailed || skipped != wskipped {
			t.Errorf("result %d (%q): failed %v skipped %v\n%s\nwant failed %v skipped %v\n%s", i, results[i].Path, failed, skipped, got, wfailed, wskipped, want)
		}
	}
	rep := &csv.Report{Mode: cipolicy.Enforce, Results: results}
	got := render(t, "junit", report.Options{}, rep)
	want, _, err := report.JUnitInOnePiece(got)
	if err != nil {
		t.Fatal(err)
	}
	// The document read back has U+FFFD where the escapes put it: it
	// is the same document, encoded in one piece.
	if !bytes.Equal(got, want) {
		t.Errorf("the JUnit document differs from the one in one piece (%d bytes, want %d)", len(got), len(want))
	}
}

// TestAppendSARIFResultIsTheEncoders: the SARIF result written by hand
// for each result is, byte for byte, what encoding/json wrote
// (SARIFResultReference), with and without passes and a SARIF root; and
// the whole log is one valid JSON document with every result.
func TestAppendSARIFResultIsTheEncoders(t *testing.T) {
	results, _ := sampleResults(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results[:len(results)/2] {
		// Files under the SARIF root, and outside it.
		r.Origin, r.Root = "", filepath.ToSlash(filepath.Join(wd, "sub", fmt.Sprint(i)))
		results = append(results, r)
	}
	for _, opts := range []report.Options{{}, {SARIFPasses: true}, {SARIFPasses: true, SARIFRoot: filepath.Join(wd, "sub")}, {SARIFRoot: "."}} {
		n := 0
		for i := range results {
			got, ok, err := report.SARIFResult(&results[i], opts)
			if err != nil {
				t.Fatal(err)
			}
			want, wok, err := report.SARIFResultReference(&results[i], opts)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				n++
			}
			if !bytes.Equal(got, want) || ok != wok {
				t.Errorf("%+v: result %d (%q), written %v:\n%s\nwant (written %v)\n%s", opts, i, results[i].Path, ok, got, wok, want)
			}
		}
		var log struct {
			Runs []struct{ Results []json.RawMessage }
		}
		if err := json.Unmarshal(render(t, "sarif", opts, &csv.Report{Mode: cipolicy.Enforce, Results: results}), &log); err != nil {
			t.Fatal(err)
		}
		if len(log.Runs) != 1 || len(log.Runs[0].Results) != n || n == 0 {
			t.Errorf("%+v: %d results in the log, want %d", opts, len(log.Runs[0].Results), n)
		}
	}
}

// FuzzAppendResult: for any path, root, origin, policy, rule and reason,
// the encoders written by hand (JSON results and skipped files, SARIF
// results, JUnit test cases) write what encoding/json and encoding/xml
// wrote.
func FuzzAppendResult(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, oddStrings[(i+1)%len(oddStrings)], "", "policy", "rule", s+" reason", uint8(i))
	}
	base := run(f, cipolicy.Enforce).Results
	f.Fuzz(func(t *testing.T, path, root, origin, policy, rule, reason string, pick uint8) {
		r := base[int(pick)%len(base)]
		r.Path, r.Root, r.Origin = path, root, origin
		r.Decision.Policy, r.Decision.Rule, r.Decision.Reason = policy, rule, reason
		if pick&0x10 != 0 {
			r.Suppressed = &suppress.Entry{Source: path, Rule: rule, Justification: reason, Owner: origin}
		}
		if pick&0x20 != 0 {
			r.Decision.Enforced = !r.Decision.Enforced
		}
		shard := pick&0x40 != 0
		got, err := report.ResultJSON(&r, shard)
		if err != nil {
			t.Fatal(err)
		}
		want, err := report.ResultJSONReference(&r, shard)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("JSON:\n%s\nwant\n%s", got, want)
		}
		sk := csv.SkippedFile{Root: root, Path: path, Reason: reason, Origin: origin}
		if want, err := report.SkippedJSONReference(&sk, shard); err != nil || !bytes.Equal(report.SkippedJSON(&sk, shard), want) {
			t.Fatalf("skipped JSON:\n%s\nwant\n%s (%v)", report.SkippedJSON(&sk, shard), want, err)
		}
		opts := report.Options{SARIFPasses: pick&0x80 != 0}
		gotS, ok, err := report.SARIFResult(&r, opts)
		if err != nil {
			t.Fatal(err)
		}
		wantS, wok, err := report.SARIFResultReference(&r, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotS, wantS) || ok != wok {
			t.Fatalf("SARIF:\n%s\nwant\n%s", gotS, wantS)
		}
		gotX, failed, skipped := report.JUnitCase(&r)
		wantX, wfailed, wskipped, err := report.JUnitCaseReference(&r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotX, wantX) || failed != wfailed || skipped != wskipped {
			t.Fatalf("JUnit:\n%s\nwant\n%s", gotX, wantX)
		}
	})
}
