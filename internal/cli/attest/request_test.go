package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/wire"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testenv"
)

func TestRequestFlags(t *testing.T) {
	base := "--server https://attest.example.com --output cred"
	tests := []flagCase[RequestOptions]{
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
	checkFlags(t, tests, func(f *cmdutil.Factory, run func(*RequestOptions)) *cobra.Command {
		return NewCmdRequest(f, func(_ context.Context, o *RequestOptions) error { run(o); return nil })
	})
}

// TestRequestErrors: without a TPM, a readable event log or a listening
// simulator, request exits 2 with a message saying which, and writes no
// credential.
func TestRequestErrors(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	os.WriteFile(log, []byte("log"), 0o600)
	dead := testenv.DeadSocket(t, dir)
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

// TestWritePrivate: the credential is written to a temporary file, synced
// before it is renamed over the target and the directory synced after;
// a failed sync leaves the target as it was and no temporary file.
func TestWritePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cred")
	os.WriteFile(path, []byte("old"), 0o600)
	var steps []string
	syncFile := func(f *os.File) error {
		b, _ := os.ReadFile(f.Name())
		cur, _ := os.ReadFile(path)
		steps = append(steps, fmt.Sprintf("sync file %q, target %q", b, cur))
		return f.Sync()
	}
	syncDir := func(d string) error {
		cur, _ := os.ReadFile(path)
		steps = append(steps, fmt.Sprintf("sync dir %s, target %q", filepath.Base(d), cur))
		return nil
	}
	if err := writeDurable(path, []byte("new"), syncFile, syncDir); err != nil {
		t.Fatal(err)
	}
	want := []string{`sync file "new", target "old"`, `sync dir ` + filepath.Base(dir) + `, target "new"`}
	if strings.Join(steps, "; ") != strings.Join(want, "; ") {
		t.Fatalf("steps %q, want %q", steps, want)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("%v %v", fi.Mode(), err)
	}

	boom := errors.New("disk on fire")
	err := writeDurable(path, []byte("newer"), func(*os.File) error { return boom }, func(string) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("failed sync: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("target %q after a failed sync", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files left in the directory", len(ents))
	}
	// The real thing.
	if err := writePrivate(path, []byte("newest")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "newest" {
		t.Errorf("target %q", b)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("stdout closed") }

// TestDeliver: the credential is written before the report; when the
// report cannot be written after it, that is a warning naming the
// credential (exit 0), not an error that would hide a written credential.
// A credential that cannot be written is an error (exit 2).
func TestDeliver(t *testing.T) {
	dir := t.TempDir()
	out := &client.Outcome{Payload: []byte("header.claims.signature"), Response: &wire.AttestResponse{
		Verdict: "trusted", Trusted: true, Result: &wire.Result{Verdict: "trusted", Trusted: true},
		Credential: &service.Credential{Format: service.FormatToken, ExpiresAt: time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)}}}
	for _, tc := range []struct {
		name   string
		stdout io.Writer
		result bool
		warn   bool
	}{
		{"report written", &bytes.Buffer{}, true, false},
		{"stdout fails", failingWriter{}, true, true},
		{"no result to report", &bytes.Buffer{}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			stderr := &bytes.Buffer{}
			o := &RequestOptions{IO: &cmdutil.IOStreams{Out: tc.stdout, ErrOut: stderr}, Output: path, Format: "text"}
			resp := *out.Response
			if !tc.result {
				resp.Result = nil
			}
			if err := deliver(o, &client.Outcome{Payload: out.Payload, Response: &resp}); err != nil {
				t.Fatalf("deliver: %v", err)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != "header.claims.signature\n" {
				t.Fatalf("credential %q %v", b, err)
			}
			warned := strings.Contains(stderr.String(), "csv: warning: writing the report") && strings.Contains(stderr.String(), "credential was written to "+path)
			if warned != tc.warn || !strings.Contains(stderr.String(), "csv: trusted: credential (token, expires 2026-06-01T13:00:00Z) written to "+path) {
				t.Errorf("stderr %q", stderr)
			}
		})
	}
	o := &RequestOptions{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Output: filepath.Join(dir, "nope", "cred"), Format: "text"}
	if err := deliver(o, out); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "writing the credential") || cmdutil.ExitCode(err) != cmdutil.ExitError {
		t.Fatalf("unwritable credential: %v", err)
	}
}

// TestRequestAnswers: what request prints for each answer the service can
// give: never "attestation: TRUSTED" without a credential (a 200 without
// one contradicts itself: exit 2, no report), and a refusal always says
// why, or that the service gave no reason (exit 1).
func TestRequestAnswers(t *testing.T) {
	refusedReport := `{"verdict":"not trusted","result":{"verdict":"not trusted","checks":[{"name":"nonce","passed":false,"detail":"already used"}]}}`
	for _, tc := range []struct {
		name           string
		status         int
		body           string
		code           int
		stdout, stderr string // what they must hold ("" for stdout: empty)
	}{
		{"trusted without credential", 200, `{"verdict":"trusted","trusted":true,"result":{"verdict":"trusted","trusted":true,"checks":[{"name":"ek","passed":true,"detail":"ok"}]}}`,
			cmdutil.ExitError, "", "200 OK, but it holds no credential: no credential was received"},
		{"refused without a reason", 403, `{"verdict":"not trusted"}`, cmdutil.ExitBlocked, "",
			"csv: client: attestation refused (403 Forbidden), and the service gave no reason"},
		{"refused with a result but no failed check", 403, `{"verdict":"not trusted","result":{"verdict":"not trusted","checks":[]}}`, cmdutil.ExitBlocked,
			"attestation: NOT TRUSTED", "the service gave no reason"},
		{"refused", 403, refusedReport, cmdutil.ExitBlocked, "FAIL nonce: already used", "csv: client: attestation refused: nonce: already used"},
		{"403 that says trusted", 403, `{"verdict":"trusted","trusted":true,"result":{"verdict":"trusted","trusted":true}}`, cmdutil.ExitError, "",
			"403 Forbidden, but its verdict or result says trusted: the host is not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer ts.Close()
			stdout, stderr := &bytes.Buffer{}, &bytes.Buffer{}
			o := &RequestOptions{IO: &cmdutil.IOStreams{Out: stdout, ErrOut: stderr}, Output: filepath.Join(t.TempDir(), "cred"), Format: "text"}
			c := &client.Client{URL: ts.URL}
			_, err := c.Submit(context.Background(), &service.AttestRequest{})
			err = outcome(o, nil, err)
			if err != nil && !errors.Is(err, cmdutil.ErrFailed) {
				fmt.Fprintf(stderr, "csv: %v\n", err) // as cli.Main prints it
			}
			if code := cmdutil.ExitCode(err); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if strings.Contains(stdout.String(), "attestation: TRUSTED") || (tc.stdout == "") != (stdout.Len() == 0) || !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want %q", stdout, tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) || strings.HasSuffix(strings.TrimSpace(stderr.String()), ":") {
				t.Errorf("stderr %q, want %q", stderr, tc.stderr)
			}
			if _, err := os.Stat(o.Output); err == nil {
				t.Error("a credential was written")
			}
		})
	}
}

// TestReportPCRsOnce: the text report of a trusted answer lists the
// quoted PCR values once per bank, every value, in order (it printed the
// block twice: once from the claims, once more from the raw answer).
func TestReportPCRsOnce(t *testing.T) {
	v0, v7 := strings.Repeat("a0", 32), strings.Repeat("b7", 32)
	s1 := strings.Repeat("c1", 20)
	raw := `{"verdict":"trusted","trusted":true,"result":{"verdict":"trusted","trusted":true,"checks":[{"name":"ek","passed":true,"detail":"ok"}],` +
		`"claims":{"secureBootEnabled":true,"pcrs":{"sha256":{"7":"` + v7 + `","0":"` + v0 + `"},"sha1":{"4":"` + s1 + `"}}},"workarounds":[]}}`
	var resp wire.AttestResponse
	if err := json.Unmarshal([]byte(raw), &resp); err != nil {
		t.Fatal(err)
	}
	resp.Raw = json.RawMessage(raw)
	var b bytes.Buffer
	if err := report(&b, "text", &resp); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"  pcrs sha256:\n", "  pcrs sha1:\n", "     0: " + v0 + "\n", "     7: " + v7 + "\n", "     4: " + s1 + "\n"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("%q appears %d times in:\n%s", want, n, out)
		}
	}
	if i0, i7 := strings.Index(out, v0), strings.Index(out, v7); i0 > i7 {
		t.Errorf("PCR 7 before PCR 0:\n%s", out)
	}
}
