package attest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/internal/cli/cmdutil"
)

func TestRequestFlags(t *testing.T) {
	base := "--server https://attest.example.com --output cred"
	tests := []struct {
		name    string
		args    string
		want    func(*RequestOptions) bool
		wantErr string
	}{
		{"defaults", base, func(o *RequestOptions) bool {
			return o.TPM == client.DefaultDevice && o.EventLog == client.DefaultEventLog && o.EK == "auto" && o.AKType == "ecc" &&
				o.akHandle == 0 && o.Timeout == time.Minute && o.Format == "text"
		}, ""},
		{"all", base + " --tpm /tmp/s --eventlog l --ek ecc384 --ak-type rsa --ak-handle 0x81000100 --ca-file ca.pem -f json --timeout 5s", func(o *RequestOptions) bool {
			return o.TPM == "/tmp/s" && o.EventLog == "l" && o.EK == "ecc384" && o.AKType == "rsa" && o.akHandle == 0x81000100 &&
				o.CAFile == "ca.pem" && o.Format == "json" && o.Timeout == 5*time.Second
		}, ""},
		{"plaintext allowed", "--server http://127.0.0.1:8080 --output c --plaintext-unsafe", func(o *RequestOptions) bool { return o.PlaintextUnsafe }, ""},
		{"no server", "--output c", nil, "--server is required"},
		{"no output", "--server https://x", nil, "--output is required"},
		{"http", "--server http://x --output c", nil, "not HTTPS"},
		{"not a URL", "--server attest.example.com --output c", nil, "want an https:// URL"},
		{"transient handle", base + " --ak-handle 0x80000001", nil, "persistent handle"},
		{"bad EK", base + " --ek dsa", nil, "--ek"},
		{"bad AK", base + " --ak-type ecc384", nil, "--ak-type"},
		{"bad format", base + " -f sarif", nil, "--format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}
			var got *RequestOptions
			cmd := NewCmdRequest(f, func(_ context.Context, o *RequestOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if tt.wantErr != "" {
				var fe *cmdutil.FlagError
				if !errors.As(err, &fe) || got != nil || !strings.Contains(err.Error(), tt.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitError {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got == nil || !tt.want(got) {
				t.Fatalf("err = %v, %+v", err, got)
			}
		})
	}
}

// TestRequestErrors: without a TPM, a readable event log or a listening
// simulator, request exits 2 with a message saying which, and writes no
// credential.
func TestRequestErrors(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	os.WriteFile(log, []byte("log"), 0o600)
	dead := filepath.Join(dir, "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	out := filepath.Join(dir, "cred")
	for _, tc := range []struct {
		name, tpm, log string
		want           error
		msg            string
	}{
		{"no TPM", filepath.Join(dir, "tpmrm0"), log, client.ErrNoTPM, "client: no TPM at"},
		{"socket not listening", dead, log, client.ErrNotListening, "nothing listens on the TPM socket"},
		{"no event log", dead, filepath.Join(dir, "nope"), nil, "cannot read event log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &RequestOptions{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Server: "https://127.0.0.1:1",
				TPM: tc.tpm, EventLog: tc.log, EK: "auto", AKType: "ecc", Output: out, Format: "text", Timeout: time.Second}
			err := runRequest(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			if cmdutil.ExitCode(err) != cmdutil.ExitError {
				t.Errorf("exit code %d", cmdutil.ExitCode(err))
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a credential was written")
			}
		})
	}
}
