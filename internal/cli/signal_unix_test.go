//go:build unix

package cli_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/cli/cmdutil"
)

// TestSignalEndsAWait: csv waiting on something no context can interrupt
// (here a TPM simulator socket that takes the command and never answers)
// ends on one SIGTERM, cmdutil.InterruptGrace after it, with exit status 2
// and a message; a second signal ends it at once. Before, csv caught
// SIGTERM and waited on.
func TestSignalEndsAWait(t *testing.T) {
	for _, tt := range []struct {
		name    string
		signals int
	}{{"one SIGTERM", 1}, {"two SIGTERMs", 2}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sock := filepath.Join(dir, "tpm.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			// Each TPM command is a connection: take it, read the command,
			// never answer; say when a command has arrived.
			asked := make(chan struct{}, 16)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					go func() {
						if _, err := c.Read(make([]byte, 64)); err == nil {
							asked <- struct{}{}
						}
					}()
				}
			}()
			eventlog := filepath.Join(dir, "eventlog")
			if err := os.WriteFile(eventlog, []byte("not a log"), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "attest", "request", "--server", "http://127.0.0.1:9", "--plaintext-unsafe",
				"--tpm", sock, "--eventlog", eventlog, "--output", filepath.Join(dir, "cred"))
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-asked:
			case err := <-exited:
				t.Fatalf("csv ended before waiting on the TPM: %v\n%s", err, stderr.String())
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("csv never sent the TPM a command")
			}
			time.Sleep(100 * time.Millisecond) // csv is in its read
			start := time.Now()
			for range tt.signals {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			select {
			case err = <-exited:
			case <-time.After(cmdutil.InterruptGrace + 20*time.Second):
				cmd.Process.Kill()
				<-exited
				t.Fatalf("SIGTERM did not end csv waiting on the TPM; stderr:\n%s", stderr.String())
			}
			took := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("csv: %v", err)
			}
			if tt.signals == 1 {
				if ee.ExitCode() != cmdutil.ExitError || !strings.Contains(stderr.String(), "still waiting") || took < cmdutil.InterruptGrace {
					t.Errorf("after %v: %v, stderr:\n%s\nwant exit 2 after %v, saying it still waited", took, err, stderr.String(), cmdutil.InterruptGrace)
				}
			} else {
				ws, ok := ee.Sys().(syscall.WaitStatus)
				if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM || took > cmdutil.InterruptGrace {
					t.Errorf("after %v: %v, want ended by the second SIGTERM at once", took, err)
				}
			}
		})
	}
}
