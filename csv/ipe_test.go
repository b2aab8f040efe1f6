package csv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

func TestGenerateIPEOptions(t *testing.T) {
	dir := tree(t, map[string][]byte{"bin/tool": elfImg})
	for _, o := range []GenerateOptions{
		{Level: LevelLeaf, Name: "host", IPE: true},
		{Level: LevelHash, Fallback: []Level{LevelLeaf}, Name: "host", IPE: true},
	} {
		if _, err := GeneratePolicy(context.Background(), o, dir); !errors.Is(err, ErrOptions) {
			t.Errorf("level %s fallback %v: err = %v, want ErrOptions", o.Level, o.Fallback, err)
		}
	}
}

// TestGenerateIPE: csv policy new --format ipe over a build writes one
// fs-verity digest rule per file, each the digest fsverity digest prints;
// csv reads the policy back, it allows exactly that build, and a changed
// byte blocks the file. The pipeline's fs-verity digest comes with the
// fs-verity work (w5/fsverity); until it computes one the files are not
// covered (fail closed) and the test says so.
func TestGenerateIPE(t *testing.T) {
	other := testbin.ELF(testbin.ELFOptions{Code: []byte{0xb8, 7, 0, 0, 0, 0xc3}})
	// A kernel module, and a file of the same bytes executed: the module's
	// rule is op=KMODULE (as csv and the kernel judge it), the other's
	// op=EXECUTE.
	dir := tree(t, map[string][]byte{"bin/tool": elfImg, "bin/other": other, "lib/modules/m.ko": other, "empty/e": nil})
	g, err := GeneratePolicy(context.Background(), GenerateOptions{Level: LevelHash, Name: "host", Version: "1.0.0", IPE: true}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Problems) > 0 {
		if msg := Message(g.Problems[0].Err); strings.Contains(msg, "no fs-verity SHA256 digest") {
			t.Skipf("the pipeline computes no fs-verity digest yet: %s", msg)
		}
		t.Fatalf("problems: %+v", g.Problems)
	}
	data, err := cipolicy.MarshalIPE(g.Policy)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cipolicy.Parse(data, "host.ipe")
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(p.IPE.Rules) != 3 || p.IPE.Default != cipolicy.Deny || strings.Count(string(data), "op=KMODULE ") != 1 {
		t.Fatalf("policy:\n%s", data)
	}
	if fsv, err := exec.LookPath("fsverity"); err == nil {
		for _, f := range []string{"bin/tool", "bin/other"} {
			out, err := exec.Command(fsv, "digest", "--compact", filepath.Join(dir, f)).Output()
			if err != nil {
				t.Fatal(err)
			}
			want := "fsverity_digest=sha256:" + strings.TrimSpace(string(out))
			if !strings.Contains(string(data), want) {
				t.Errorf("%s: policy has no %s:\n%s", f, want, data)
			}
		}
	} else {
		testenv.Tool(t, "fsverity")
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep := validate(t, set, Options{}, dir); rep.Failed() || len(rep.Results) != 3 {
		t.Fatalf("the generated IPE policy does not allow the build: %+v", rep.Results)
	}
	changed := append([]byte(nil), other...)
	changed[len(changed)-1] ^= 1
	if err := os.WriteFile(filepath.Join(dir, "bin/other"), changed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "lib/modules/m.ko")); err != nil {
		t.Fatal(err)
	}
	rep := validate(t, set, Options{}, dir)
	blocked := 0
	for _, r := range rep.Results {
		if !r.Decision.Allowed() {
			blocked++
			if r.Path != "bin/other" || !strings.Contains(r.Decision.Reason, "DEFAULT action=DENY") {
				t.Errorf("blocked %s: %s", r.Path, r.Decision.Reason)
			}
		}
	}
	if blocked != 1 {
		t.Fatalf("a changed byte: %d blocked, want 1: %+v", blocked, rep.Results)
	}
}
