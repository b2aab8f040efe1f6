//go:build unix

package safefile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codesignval/csv/internal/safefile"
)

// TestFIFO: a named pipe is refused at once, not waited on, by Open and
// ReadFile; a regular file is handed out in blocking mode.
func TestFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := safefile.ReadFile(fifo, 1<<20)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, safefile.ErrNotRegular) || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("FIFO: %v, want ErrNotRegular naming a named pipe", err)
		}
	case <-time.After(10 * time.Second):
		// Release the open(2) that waits for a writer, then fail.
		if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			defer w.Close()
		}
		<-done
		t.Fatal("ReadFile waited on a FIFO")
	}

	reg := filepath.Join(dir, "file")
	if err := os.WriteFile(reg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, st, err := safefile.Open(reg, safefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !st.Mode().IsRegular() {
		t.Errorf("mode %v", st.Mode())
	}
	// Not through f.Fd(), which clears O_NONBLOCK itself.
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	if err := rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// On Linux the flag stays (it has no effect on a regular file, and
	// clearing it costs two system calls a file); elsewhere it is cleared.
	if nonblock := flags&unix.O_NONBLOCK != 0; nonblock != (runtime.GOOS == "linux") {
		t.Errorf("O_NONBLOCK set: %v, on %s", nonblock, runtime.GOOS)
	}
	if b, err := io.ReadAll(f); err != nil || len(b) != int(st.Size()) {
		t.Errorf("read %d bytes of %d: %v", len(b), st.Size(), err)
	}
}
