//go:build linux

package csv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFSSyncer: directories on one file system share one syncfs, through
// a directory opened before anything was written there.
func TestFSSyncer(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b", "c")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := newSignTree(&SignOptions{}, []string{dir, "/proc/self"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	var s fsSyncer
	defer s.close()
	for _, d := range []string{a, b, a} {
		if err := s.watch(tr, d); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.fds) != 1 {
		t.Fatalf("%d file systems watched for two directories of one", len(s.fds))
	}
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.watch(tr, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("watched a directory that does not exist")
	}
	if p := tr.resolved[1]; p != "" {
		if err := s.watch(tr, p); err != nil || len(s.fds) != 2 {
			t.Fatalf("a second file system: %v, %d watched", err, len(s.fds))
		}
	}
}
