package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testca"
)

// TestFIFOs: every file csv opens by a name the user, a policy or a
// configuration gives is refused at once, with exit status 2 and the
// reason, when the name leads to a named pipe. Opening a FIFO for reading
// waits for a writer (and neither Ctrl-C nor SIGTERM ended that wait), so
// each case runs with a deadline.
func TestFIFOs(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("named pipes are a Unix thing")
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "pipe")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "build")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := testca.New(t)
	root := write("root.pem", testca.PEM(ca.Root.Cert))
	policy := write("policy.yaml", []byte("format: csv-policy/v1\nname: p\nrules:\n  - id: any\n    action: allow\n    sha256: "+strings.Repeat("ab", 32)+"\n"))
	certRef := write("certref.yaml", []byte("format: csv-policy/v1\nname: p\nrules:\n  - id: pca\n    action: allow\n    signer: {certificate_file: pipe}\n"))
	leaf := ca.Leaf(t, testca.LeafOptions{})
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := ca.WriteFiles(t, filepath.Join(dir, "keys"), leaf)
	appendRoot(t, files, ca)

	tests := []struct {
		name string
		args []string
		want string // in stderr; "not a regular file (named pipe)" if empty
	}{
		{"validate --policy", []string{"validate", "--policy", fifo, tree}, ""},
		{"validate --certs", []string{"validate", "--policy", policy, "--certs", fifo, tree}, ""},
		{"certificate_file", []string{"validate", "--policy", certRef, tree}, ""},
		{"policy lint", []string{"policy", "lint", fifo}, ""},
		{"policy new --certs", []string{"policy", "new", "--level", "hash", "--certs", fifo, tree}, ""},
		{"inspect --certs", []string{"inspect", "--certs", fifo, policy}, ""},
		{"sign --key", []string{"sign", "--key", fifo, "--cert", files.Chain, tree}, ""},
		{"sign --cert", []string{"sign", "--key", files.Key, "--cert", fifo, tree}, ""},
		// The directory of the journals of earlier runs.
		{"sign --out", []string{"sign", "--key", files.Key, "--cert", files.Chain, "--out", fifo, tree}, "not a directory"},
		{"validate --sign --out", []string{"validate", "--policy", policy, "--sign", "--key", files.Key, "--cert", files.Chain, "--out", fifo, tree}, "not a directory"},
		{"verify-manifest --manifest", []string{"verify-manifest", "--manifest", fifo, "--certs", root, tree}, ""},
		{"verify-manifest --tsa-certs", []string{"verify-manifest", "--manifest", policy, "--certs", root, "--tsa-certs", fifo, tree}, ""},
		{"report merge", []string{"report", "merge", fifo}, ""},
		{"triage --policy", []string{"triage", "--policy", fifo, policy}, ""},
		{"triage --manifest", []string{"triage", "--manifest", fifo, "--certs", root, policy}, ""},
		{"triage --certs", []string{"triage", "--manifest", policy, "--certs", fifo, policy}, ""},
		// An export that cannot be read is an error finding in the report.
		{"triage EVENTS", []string{"triage", "--policy", policy, fifo}, "could not be read"},
		{"attest verify --eventlog", []string{"attest", "verify", "--eventlog", fifo, "--ak", root, "--policy", policy,
			"--quote", policy, "--signature", policy, "--nonce", "00"}, ""},
		{"attest verify --policy", []string{"attest", "verify", "--eventlog", policy, "--ak", root, "--policy", fifo,
			"--quote", policy, "--signature", policy, "--nonce", "00"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- cli.Run(context.Background(), &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, tt.args)
			}()
			var code int
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				// Give the waiting open(2) a writer, so the run ends.
				if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
					w.Close()
				}
				<-done
				t.Fatalf("csv %s waited on a named pipe", strings.Join(tt.args, " "))
			}
			want := tt.want
			if want == "" {
				want = "not a regular file (named pipe)"
			}
			if code != cmdutil.ExitError || !strings.Contains(errOut.String(), want) {
				t.Errorf("exit %d, stderr:\n%s\nwant 2 and the named pipe refused", code, errOut.String())
			}
		})
	}
}
