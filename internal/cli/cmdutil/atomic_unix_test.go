//go:build unix

package cmdutil

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestAtomicOutputToANamedPipe: an output that is not a regular file (a
// named pipe here; /dev/null or /dev/stdout for a user) is written to,
// not replaced by a regular file renamed over it (which, as root, once
// replaced this machine's /dev/null); a regular file is still replaced
// whole, and a directory refused.
func TestAtomicOutputToANamedPipe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "out")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	got := make(chan []byte)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	if err := WriteFileAtomic(fifo, []byte("report\n")); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "report\n" {
		t.Errorf("the pipe's reader got %q", b)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the named pipe is now %v (%v)", st.Mode(), err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 {
		t.Errorf("left %v", left)
	}

	reg := filepath.Join(dir, "report.json")
	os.WriteFile(reg, []byte("old"), 0o600)
	if err := WriteFileAtomic(reg, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(reg); string(b) != "new" {
		t.Errorf("regular file: %q", b)
	}
	if err := WriteFileAtomic(dir, []byte("x")); err == nil {
		t.Error("a directory as output: no error")
	}
}
