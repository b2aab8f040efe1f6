package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// CheckLinks fails t for every package that pkg (a path below the module,
// "attest/client") links on goos ("" for this machine's) and that one of
// forbidden names: a package path, or a path ending in "/..." for it and
// the packages below it, as for the go command. It runs go list -deps
// (skipped with -short) and returns how many packages pkg links.
func CheckLinks(t testing.TB, goos, pkg string, forbidden []string) int {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command(Tool(t, "go"), "list", "-deps", "github.com/codesignval/csv/"+pkg)
	cmd.Dir = RepoRoot(t)
	if goos != "" {
		cmd.Env = append(cmd.Environ(), "GOOS="+goos)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GOOS=%s go list -deps %s: %v", goos, pkg, err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, f := range forbidden {
			tree, all := strings.CutSuffix(f, "/...")
			if d == tree || all && strings.HasPrefix(d, tree+"/") {
				t.Errorf("GOOS=%s: %s links %s", goos, pkg, d)
			}
		}
	}
	return len(deps)
}
