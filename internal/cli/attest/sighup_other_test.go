//go:build !unix

package attest

import "testing"

func sendHUP(t *testing.T) {
	t.Helper()
	t.Skip("SIGHUP exists only on Unix")
}
