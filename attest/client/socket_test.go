//go:build !windows

package client

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// answering serves a Unix socket that answers every connection's command
// with answer (then closes it).
func answering(t *testing.T, answer []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sock") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write(answer)
			c.Close()
		}
	}()
	return path
}

// TestSocketHostileAnswers: what a socket answers is read by the size its
// header declares, at least a header and at most 64 KiB (never a buffer
// sized by a larger claim), and a short answer is an error, not a panic
// or a hang; a well-formed answer is a TPM's, decoded by go-tpm.
func TestSocketHostileAnswers(t *testing.T) {
	ok := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01} // TPM_RC_FAILURE, 10 bytes
	for _, tc := range []struct {
		name   string
		answer []byte
		want   string
	}{
		{"over the cap", []byte{0x80, 0x01, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0}, "declares 2147483647 bytes"},
		{"under a header", []byte{0x80, 0x01, 0, 0, 0, 4, 0, 0, 0, 0}, "declares 4 bytes"},
		{"truncated", []byte{0x80, 0x01, 0, 0, 0, 40, 0, 0, 0, 0, 1, 2}, "reading the TPM's response"},
		{"nothing", nil, "reading the TPM's response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := answering(t, tc.answer)
			tpm, err := dialSocket(path)
			if err != nil {
				t.Fatal(err)
			}
			defer tpm.Close()
			_, err = tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 1}.Execute(tpm)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
	tpm, err := dialSocket(answering(t, ok))
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	_, err = tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 1}.Execute(tpm)
	if !errors.Is(err, tpm2.TPMRCFailure) {
		t.Errorf("a TPM's error answer: %v", err)
	}
}
