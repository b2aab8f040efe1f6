package csv

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// countReads replaces inspectFile for the test, counting the inspections
// (reads) of each file by base name.
func countReads(t *testing.T) func() map[string]int {
	t.Helper()
	var mu sync.Mutex
	reads := map[string]int{}
	holdInspection(t, func(name string) {
		mu.Lock()
		reads[name]++
		mu.Unlock()
	})
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range reads {
			out[k] = v
		}
		return out
	}
}

// TestTwoPhaseReads: under a policy that lists files by their Authenticode
// SHA256 and by digests only allow rules compare (SHA-1, first-page
// hashes), a file its SHA256 rule admits is read once, with the SHA256
// alone and no signature verified; a file that only its SHA-1 rule, or
// only its first-page rule (page-signed by osslsigncode -ph, chaining to a
// trusted root), admits, and a file no rule admits, are read a second
// time with every digest the policy compares. Every decision is the one
// csv --all-digests makes, which reads each file once with every fact.
func TestTwoPhaseReads(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	keys := t.TempDir()
	files := ca.WriteFiles(t, filepath.Join(mkdir(t, keys, "leaf")), ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"}))
	imgs := map[string][]byte{}
	for _, n := range []string{"a", "b", "d"} {
		imgs[n+".exe"] = testbin.PE(testbin.PEOptions{Overlay: []byte(n)})
	}
	dir := tree(t, imgs)
	for n, extra := range map[string][]string{"c": {"-ph"}, "s": nil} {
		raw := filepath.Join(keys, n+".exe")
		// c's headers are not a's (a PE32 image): its first page is its own.
		if err := os.WriteFile(raw, testbin.PE(testbin.PEOptions{Overlay: []byte(n), PE32: n == "c"}), 0o644); err != nil {
			t.Fatal(err)
		}
		signPE(t, ossl, files, raw, filepath.Join(dir, n+".exe"), extra...)
	}
	digest := func(name string, a cipolicy.HashAlgorithm) string {
		in := InspectFile(context.Background(), filepath.Join(dir, name), nil, InspectOptions{})
		if in.Err != nil || in.Digests.Get(a) == nil {
			t.Fatalf("%s: %v, %s %x", name, in.Err, a, in.Digests.Get(a))
		}
		return hex.EncodeToString(in.Digests.Get(a))
	}
	var rules []string
	rule := func(id, name string, a cipolicy.HashAlgorithm) {
		rules = append(rules, fmt.Sprintf("  - {id: %s, action: allow, %s: %s}", id, a, digest(name, a)))
	}
	for _, a := range cipolicy.FormatPE.RuleDigests() {
		rule("a-"+string(a), "a.exe", a)
	}
	rule("s", "s.exe", cipolicy.AuthenticodeSHA256)
	rule("b-sha1", "b.exe", cipolicy.AuthenticodeSHA1)
	rule("c-page", "c.exe", cipolicy.PageSHA256)
	p, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: p\nrules:\n"+strings.Join(rules, "\n")+"\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := sigCert(t, ca.Root.Cert)
	set, err := cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: []*signing.Certificate{root}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := set.Needs("a.exe", FormatPE, cipolicy.ScenarioUser); !n.Digests.Equal(cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)) || n.Signatures {
		t.Fatalf("first read needs %+v, want the Authenticode SHA256 alone", n)
	}

	reads := countReads(t)
	rep := validate(t, set, Options{Certificates: []*signing.Certificate{root}}, dir)
	all := validate(t, set, Options{Certificates: []*signing.Certificate{root}, AllDigests: true}, dir)
	got := reads()
	want := map[string]struct {
		reads   int
		verdict cipolicy.Verdict
		rule    string
	}{
		"a.exe": {1, cipolicy.Allowed, "a-authenticode_sha256"},
		"s.exe": {1, cipolicy.Allowed, "s"},
		"b.exe": {2, cipolicy.Allowed, "b-sha1"},
		"c.exe": {2, cipolicy.Allowed, "c-page"},
		"d.exe": {2, cipolicy.Blocked, ""},
	}
	if len(rep.Results) != len(want) || len(all.Results) != len(want) {
		t.Fatalf("%d and %d results, want %d", len(rep.Results), len(all.Results), len(want))
	}
	for i, r := range rep.Results {
		w := want[r.Path]
		// One read each in the --all-digests run.
		if got[r.Path] != w.reads+1 || r.Decision.Verdict != w.verdict || r.Decision.Rule != w.rule {
			t.Errorf("%s: %d reads (%d with --all-digests), %s by %q (%s); want %d, %s by %q",
				r.Path, got[r.Path]-1, 1, r.Decision.Verdict, r.Decision.Rule, r.Decision.Reason, w.reads, w.verdict, w.rule)
		}
		a := all.Results[i]
		if a.Path != r.Path || a.Decision.Verdict != r.Decision.Verdict || a.Decision.Kind != r.Decision.Kind ||
			a.Decision.Rule != r.Decision.Rule || a.Decision.Enforced != r.Decision.Enforced || r.Decision.Incomplete {
			t.Errorf("%s: %+v, with every digest %+v", r.Path, r.Decision, a.Decision)
		}
		// What the report lists: the digests computed.
		if w.reads == 1 && (!r.Digests.Algorithms().Equal(cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)) || r.Signatures != nil) {
			t.Errorf("%s: read once, but digests %v and %d signatures", r.Path, r.Digests.Algorithms(), len(r.Signatures))
		}
		if w.reads == 2 && !r.Digests.Algorithms().Equal(cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256, cipolicy.AuthenticodeSHA1, cipolicy.PageSHA256, cipolicy.PageSHA1)) {
			t.Errorf("%s: read twice, but digests %v", r.Path, r.Digests.Algorithms())
		}
	}
}
