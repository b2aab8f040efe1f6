package csv

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testenv"
)

// corpus returns a build tree made by ../shared/bench/make-corpus.sh: the one
// in $CSV_CORPUS if set (the benchmark's medium corpus, say), else a small one
// built for this test.
func corpus(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CSV_CORPUS"); dir != "" {
		return dir
	}
	if testing.Short() {
		t.Skip("builds a corpus")
	}
	script := testenv.Shared(t, "bench/make-corpus.sh")
	for _, tool := range []string{"osslsigncode", "openssl", "go", "sha256sum", "bash"} {
		testenv.Tool(t, tool)
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", script, dir, "small")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-corpus.sh: %v\n%s", err, out)
	}
	return dir
}

var (
	reCurrent    = regexp.MustCompile(`(?m)^Current message digest\s+:\s+([0-9A-F]+)`)
	reCalculated = regexp.MustCompile(`(?m)^Calculated message digest\s+:\s+([0-9A-F]+)`)
)

// osslsigncodeDigest returns the SHA256 Authenticode digest osslsigncode
// computes for the PE at path: for a signed file, the digest it calculates;
// for an unsigned file, the digest it signs when asked to sign it.
func osslsigncodeDigest(ossl, keys, path, tmp string) (string, error) {
	out, _ := exec.Command(ossl, "verify", "-in", path).CombinedOutput()
	if m := reCalculated.FindSubmatch(out); m != nil {
		return strings.ToLower(string(m[1])), nil
	}
	signed := filepath.Join(tmp, filepath.Base(path)+".signed")
	if b, err := exec.Command(ossl, "sign", "-certs", filepath.Join(keys, "build-chain.pem"), "-key", filepath.Join(keys, "build.key"),
		"-h", "sha256", "-in", path, "-out", signed).CombinedOutput(); err != nil {
		return "", fmt.Errorf("osslsigncode sign %s: %v\n%s", path, err, b)
	}
	out, _ = exec.Command(ossl, "verify", "-in", signed).CombinedOutput()
	m := reCurrent.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("osslsigncode verify %s: no digest in\n%s", signed, out)
	}
	return strings.ToLower(string(m[1])), nil
}

// TestCorpusDigestsMatchPeers validates the corpus with every digest and
// checks each file against independent tools: the format and flat SHA256
// that make-corpus.sh recorded with sha256sum, and the Authenticode SHA256
// osslsigncode computes.
func TestCorpusDigestsMatchPeers(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	dir := corpus(t)
	f, err := os.Open(filepath.Join(dir, "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type row struct{ format, sha256 string }
	want := map[string]row{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 4 || cols[0] == "path" {
			continue
		}
		want[cols[0]] = row{cols[1], cols[2]}
	}
	if len(want) < 50 {
		t.Fatalf("expected.tsv lists %d files", len(want))
	}

	rep := validate(t, policyFor(t), Options{AllDigests: true}, filepath.Join(dir, "build"))
	got := map[string]*Result{}
	for i := range rep.Results {
		got[rep.Results[i].Path] = &rep.Results[i]
	}
	skipped := map[string]bool{}
	for _, s := range rep.Skipped {
		skipped[s.Path] = true
	}
	tmp := t.TempDir()
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(4)
	pes := 0
	for path, w := range want {
		if w.format == "other" {
			if !skipped[path] {
				t.Errorf("%s: not skipped", path)
			}
			continue
		}
		r := got[path]
		if r == nil {
			t.Errorf("%s: not judged", path)
			continue
		}
		if string(r.Format) != w.format || r.Err != nil {
			t.Errorf("%s: format %s (err %v), want %s", path, r.Format, r.Err, w.format)
			continue
		}
		if h := hex.EncodeToString(r.Digests.Get(cipolicy.SHA256)); h != w.sha256 {
			t.Errorf("%s: sha256 %s, sha256sum says %s", path, h, w.sha256)
		}
		if r.Format != FormatPE {
			continue
		}
		pes++
		g.Go(func() error {
			oracle, err := osslsigncodeDigest(ossl, filepath.Join(dir, "keys"), filepath.Join(dir, "build", path), tmp)
			mu.Lock()
			defer mu.Unlock()
			switch h := hex.EncodeToString(r.Digests.Get(cipolicy.AuthenticodeSHA256)); {
			case err != nil:
				t.Error(err)
			case h != oracle:
				t.Errorf("%s: Authenticode SHA256 %s, osslsigncode says %s", path, h, oracle)
			}
			return nil
		})
	}
	g.Wait()
	if pes == 0 {
		t.Fatal("no PE files in the corpus")
	}
	if rep.Summary.Files+rep.Summary.Skipped != len(want) {
		t.Errorf("summary %+v for %d files", rep.Summary, len(want))
	}
}
