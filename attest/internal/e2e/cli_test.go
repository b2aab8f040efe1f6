//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/internal/swtpmtest"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// TestCLI runs csv attest serve and csv attest request as a fleet would:
// the service over HTTPS with its configuration file, the client on a
// swtpm host; then a policy change reloaded with SIGHUP turns the same
// host away; then SIGTERM's context ends the service cleanly.
func TestCLI(t *testing.T) {
	tpms := swtpmtest.NewLab(t)
	tp := tpms.New(t, "cli")
	fl := newFleet(t)
	dir := fl.dir
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, caKey, err := servicetest.NewCA("cli attestation CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caFile := put("ca.pem", testca.PEM(ca))
	put("ca.key", testca.KeyPEM(t, caKey))
	tc := tlsFor(t, ca, caKey)
	put("tls.pem", pemCert(tc.Certificate[0]))
	put("tls.key", testca.KeyPEM(t, tc.PrivateKey.(crypto.Signer)))
	roots, inter := tpms.EKRoots(t)
	put("ek-roots.pem", testca.PEM(roots...))
	put("ek-intermediates.pem", testca.PEM(inter...))
	put("nonce.key", bytes.Repeat([]byte("n"), 48))
	config := put("serve.yaml", []byte(`listen: 127.0.0.1:0
tls: {certificate: tls.pem, key: tls.key}
policy: attest.yaml
ci_policies: [boot-ci.yaml]
ek:
  roots: [ek-roots.pem]
  intermediates: [ek-intermediates.pem]
nonce:
  key_files: [nonce.key]
credential:
  format: token
  ca_certificate: ca.pem
  ca_key: ca.key
  lifetime: 15m
`))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveLog := &testenv.SyncBuffer{}
	served := make(chan int, 1)
	go func() {
		served <- cli.Run(ctx, &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: serveLog}, []string{"attest", "serve", "--config", config})
	}()
	addr := waitFor(t, serveLog, regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`), served)

	tp.Restart(t)
	tp.Extend(t, fl.log)
	request := func(out string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Run(context.Background(), &cmdutil.IOStreams{Out: &stdout, ErrOut: &stderr}, []string{"attest", "request",
			"--server", "https://" + addr, "--ca-file", caFile, "--tpm", tp.Socket, "--eventlog", fl.logFile,
			"--output", out, "--format", "json"})
		return code, stdout.String(), stderr.String()
	}

	out := filepath.Join(t.TempDir(), "host.token")
	code, stdout, stderr := request(out)
	if code != 0 {
		t.Fatalf("request exited %d\n%s\n%s\nservice:\n%s", code, stdout, stderr, serveLog)
	}
	var res struct {
		Verdict string `json:"verdict"`
		Claims  struct {
			PCRs map[string]map[string]string `json:"pcrs"`
		} `json:"claims"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Verdict != "trusted" || len(res.Claims.PCRs["sha256"]) != 13 {
		t.Fatalf("report %q: %v", stdout, err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credential file: %v %v", st, err)
	}
	tok, _ := os.ReadFile(out)
	if parts := strings.Split(strings.TrimSpace(string(tok)), "."); len(parts) != 3 || !strings.Contains(stderr, "trusted: credential (token") {
		t.Fatalf("token %q, stderr %q", tok, stderr)
	}

	// SIGHUP with EK roots that no longer include the TPM's manufacturer
	// (its EK revoked, no restart): the same host is refused (exit 1).
	put("ek-roots.pem", testca.PEM(testca.New(t).Root.Cert))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, serveLog, regexp.MustCompile(`"msg":"trust reloaded"`), served)
	code, stdout, stderr = request(filepath.Join(t.TempDir(), "revoked.token"))
	if code != 1 || !strings.Contains(stderr, "attestation refused") || !regexp.MustCompile(`"name":\s*"ek",\s*"passed":\s*false`).MatchString(stdout) {
		t.Fatalf("EK roots reloaded without the TPM's: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// SIGHUP with the EK roots back, and a code integrity policy that no
	// longer allows the boot application: the same host is refused (exit
	// 1), now by the policy, and gets nothing.
	put("ek-roots.pem", testca.PEM(roots...))
	put("boot-ci.yaml", []byte("format: csv-policy/v1\nname: e2e-boot-v2\nrules:\n  - {id: other, action: allow, authenticode_sha256: "+strings.Repeat("00", 32)+", scenarios: [boot]}\n"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The policy reloads first, then the trust: wait for the second trust
	// reload.
	waitFor(t, serveLog, regexp.MustCompile(`(?s)"msg":"trust reloaded".*"msg":"trust reloaded"`), served)
	out2 := filepath.Join(t.TempDir(), "refused.token")
	code, stdout, stderr = request(out2)
	if code != 1 || !strings.Contains(stdout, `"policy.boot-components"`) || !strings.Contains(stderr, "attestation refused") {
		t.Fatalf("after reload: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Fatal("a refused host got a credential file")
	}

	// SIGTERM (here: the context csv's main derives from it) shuts the
	// service down cleanly: exit 0.
	cancel()
	select {
	case code := <-served:
		if code != 0 {
			t.Fatalf("serve exited %d\n%s", code, serveLog)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(serveLog.String(), `"msg":"shut down"`) {
		t.Errorf("no shutdown line:\n%s", serveLog)
	}

	// Without the TPM (swtpm removes its socket when it stops): exit 2,
	// said clearly.
	tp.Stop()
	code, _, stderr = request(filepath.Join(t.TempDir(), "x"))
	if code != 2 || !strings.Contains(stderr, "csv: client: no TPM at "+tp.Socket) {
		t.Fatalf("no TPM: exit %d %q", code, stderr)
	}
}

// waitFor waits for a log line matching re and returns its first group.
func waitFor(t *testing.T, log *testenv.SyncBuffer, re *regexp.Regexp, exited chan int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return ""
		}
		select {
		case code := <-exited:
			t.Fatalf("serve exited %d:\n%s", code, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in:\n%s", re, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
