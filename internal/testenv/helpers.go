package testenv

import (
	"bytes"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that goroutines may write to while a test
// reads it: a log sink for a server under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DeadSocket returns the path of a Unix socket in dir that nothing listens
// on: bound, then its listener closed without removing the file, so that
// connecting is refused.
func DeadSocket(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return p
}
