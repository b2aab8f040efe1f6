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
	var s fsSyncer
	defer s.close()
	for _, d := range []string{a, b, a} {
		if err := s.watch(d); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.fds) != 1 {
		t.Fatalf("%d file systems watched for two directories of one", len(s.fds))
	}
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.watch(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("watched a directory that does not exist")
	}
	if _, err := os.Stat("/proc/self"); err == nil {
		if err := s.watch("/proc/self"); err != nil || len(s.fds) != 2 {
			t.Fatalf("a second file system: %v, %d watched", err, len(s.fds))
		}
	}
}
