//go:build unix

package attest

import (
	"os"
	"syscall"
	"testing"
)

// sendHUP sends SIGHUP to this process (serve reloads on it).
func sendHUP(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}
