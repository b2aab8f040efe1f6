package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// TestCommittedExamplesAreGenerated checks that the example binaries and
// policy in the repository are exactly what this generator writes, so the
// README's quick start validates reproducible files.
func TestCommittedExamplesAreGenerated(t *testing.T) {
	root := testenv.RepoRoot(t)
	for rel, want := range Files() {
		got, err := os.ReadFile(filepath.Join(root, "examples", filepath.FromSlash(rel)))
		if err != nil {
			t.Fatalf("%s: %v (run: go run ./examples/gen)", rel, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/%s differs from what the generator writes (run: go run ./examples/gen)", rel)
		}
	}
	committed, err := os.ReadFile(filepath.Join(root, "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Regenerate into a scratch copy of the repository layout.
	tmp := t.TempDir()
	for rel, data := range Files() {
		p := filepath.Join(tmp, "examples", filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	}
	t.Chdir(tmp)
	if err := run(); err != nil {
		t.Fatal(err)
	}
	fresh, err := os.ReadFile(filepath.Join(tmp, "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("examples/policy.yaml differs from what the generator writes (run: go run ./examples/gen):\n%s", fresh)
	}
}
