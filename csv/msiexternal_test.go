package csv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/internal/testmsi"
)

// TestMSIExternalCabinet: an installer whose Media table names an external
// cabinet (wixl's EmbedCab="no") does not carry the files it installs. Its
// member for the cabinet is blocked, saying so, unless the cabinet is a
// regular file beside it in the tree validated (a directory root, not left
// out by --exclude): it is then judged there as a loose file, and the
// member says so and is not a finding.
func TestMSIExternalCabinet(t *testing.T) {
	gcab := testenv.Tool(t, "gcab")
	exe := testbin.PE(testbin.PEOptions{})
	pkg := testmsi.BuildMedia(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="no"/>`, testmsi.File{Name: "app.exe", Data: exe})
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "F0"), exe, 0o600)
	cab := filepath.Join(t.TempDir(), "app.cab")
	cmd := exec.Command(gcab, "-c", "-n", cab, "F0")
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcab: %v %s", err, b)
	}
	cabData, err := os.ReadFile(cab)
	if err != nil {
		t.Fatal(err)
	}
	set := policyFor(t, "{id: exe, action: allow, sha256: "+sha(exe)+"}")
	with := tree(t, map[string][]byte{"dist/setup.msi": pkg, "dist/app.cab": cabData})
	without := tree(t, map[string][]byte{"dist/setup.msi": pkg})
	member := func(rep *Report) (*Result, *SkippedFile) {
		for i := range rep.Results {
			if r := &rep.Results[i]; strings.HasSuffix(r.Path, "setup.msi!/app.cab") {
				return r, nil
			}
		}
		for i := range rep.Skipped {
			if s := &rep.Skipped[i]; strings.HasSuffix(s.Path, "setup.msi!/app.cab") {
				return nil, s
			}
		}
		return nil, nil
	}
	blocked := func(t *testing.T, rep *Report) {
		t.Helper()
		r, s := member(rep)
		if r == nil || r.Decision.Verdict != "blocked" {
			t.Fatalf("member %+v, skipped %+v: want blocked", r, s)
		}
		var ext *container.ExternalError
		if !errors.As(r.Err, &ext) || ext.Name != "app.cab" || !strings.Contains(ext.Reason, "external cabinet") {
			t.Fatalf("%v (%T)", r.Err, r.Err)
		}
	}
	t.Run("beside", func(t *testing.T) {
		rep := validate(t, set, Options{}, with)
		r, s := member(rep)
		if r != nil || s == nil || !strings.Contains(s.Reason, "judged at its own path dist/app.cab") {
			t.Fatalf("member %+v, skipped %+v", r, s)
		}
		judged := false
		for _, r := range rep.Results {
			judged = judged || r.Path == "dist/app.cab!/F0" && r.Decision.Verdict == "allowed"
		}
		if !judged {
			t.Error("the cabinet beside the package is not judged")
		}
	})
	t.Run("absent", func(t *testing.T) { blocked(t, validate(t, set, Options{}, without)) })
	t.Run("excluded", func(t *testing.T) { blocked(t, validate(t, set, Options{Exclude: []string{"dist/app.cab"}}, with)) })
	t.Run("file root", func(t *testing.T) {
		blocked(t, validate(t, set, Options{}, filepath.Join(with, "dist", "setup.msi")))
	})
}
