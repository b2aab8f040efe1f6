package csv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
)

// TestFSVerityHashRules: a hash rule on fsverity_sha256, written with the
// digest `fsverity digest` prints, admits the ELF file in a run (computed
// in the one read, only when a rule asks for it), and the same file with
// one byte changed is blocked; files of formats without an fs-verity
// digest are not hashed for it.
func TestFSVerityHashRules(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	big := testbin.ELF(testbin.ELFOptions{})
	big = append(big, make([]byte, 3*4096+123)...) // several blocks, not aligned
	changed := slices.Clone(big)
	changed[len(changed)-7] ^= 0x40
	dir := tree(t, map[string][]byte{"ok": big, "changed": changed, "a.exe": peImg})
	out, err := exec.Command(tool, "digest", "--compact", filepath.Join(dir, "ok")).CombinedOutput()
	if err != nil {
		t.Fatalf("fsverity digest: %v\n%s", err, out)
	}
	digest := strings.TrimSpace(string(out))
	set := policyFor(t, fmt.Sprintf("{id: fsv, action: allow, fsverity_sha256: %s}", digest))
	if n := set.Needs("ok", FormatELF, ""); !n.Digests.Has(cipolicy.FSVeritySHA256) || n.Digests.Has(cipolicy.SHA256) {
		t.Errorf("needs of an ELF file: %v", n.Digests)
	}
	rep := validate(t, set, Options{}, dir)
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Path] = fmt.Sprintf("%s/%s", r.Decision.Verdict, r.Decision.Rule)
		switch r.Path {
		case "ok", "changed":
			if d := r.Digests.Get(cipolicy.FSVeritySHA256); len(d) != 32 {
				t.Errorf("%s: fsverity_sha256 %x", r.Path, d)
			}
		default:
			if d := r.Digests.Get(cipolicy.FSVeritySHA256); d != nil {
				t.Errorf("%s (%s): fsverity_sha256 computed: %x", r.Path, r.Format, d)
			}
		}
	}
	want := map[string]string{"ok": "allowed/fsv", "changed": "blocked/", "a.exe": "blocked/"}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s, want %s", p, got[p], w)
		}
	}

	// csv inspect's digests (every digest) carry it too, equal to the peer's.
	in := InspectFile(t.Context(), filepath.Join(dir, "ok"), nil, InspectOptions{})
	if in.Err != nil {
		t.Fatal(in.Err)
	}
	if g := fmt.Sprintf("%x", in.Digests.Get(cipolicy.FSVeritySHA256)); g != digest {
		t.Errorf("inspect: fsverity_sha256 %s, fsverity digest %s", g, digest)
	}
}
