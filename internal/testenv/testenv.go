// Package testenv finds what tests need outside the repository: the shared
// third-party test data (../shared beside the checkout, or $CSV_SHARED) and
// peer tools on PATH. Tests skip with a message where something is missing;
// CI installs everything, and sets CSV_REQUIRE_PEERS=1 so that a missing
// peer fails instead of skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Shared returns the path of a file or directory under the shared test
// material (../shared/rel), or skips the test if it is absent.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	base := os.Getenv("CSV_SHARED")
	if base == "" {
		base = filepath.Join(RepoRoot(t), "..", "shared")
	}
	p := filepath.Join(base, rel)
	if _, err := os.Stat(p); err != nil {
		missing(t, "shared test data "+p+" is absent (set CSV_SHARED or check out ../shared)")
	}
	return p
}

// Tool returns the path of a peer tool on PATH, or skips the test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not installed (.ci/run installs it)")
	}
	return p
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CSV_REQUIRE_PEERS") == "1" {
		t.Fatalf("required by CSV_REQUIRE_PEERS=1: %s", why)
	}
	t.Skip(why)
}

// Packages returns the path of a real-world package scripts/fetch-packages.sh
// downloads into $CSV_PACKAGES (default /tmp/csv-packages), or skips the
// test. The download needs the network, so a missing package skips even
// under CSV_REQUIRE_PEERS.
func Packages(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("CSV_PACKAGES")
	if dir == "" {
		dir = "/tmp/csv-packages"
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err != nil || st.Size() == 0 {
		t.Skipf("%s is absent: run scripts/fetch-packages.sh %s (or set CSV_PACKAGES)", p, dir)
	}
	return p
}
