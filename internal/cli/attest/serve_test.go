package attest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// serveFixture writes what serve needs: a synthetic boot's policies, a
// credential CA, and a configuration file (plaintext, any EK trusted)
// with extra YAML appended.
type serveFixture struct {
	dir, config, policy, ciPolicy string
	log                           []byte
	pcrs                          eventlog.PCRs
}

func newServeFixture(t *testing.T, extra string) *serveFixture {
	t.Helper()
	dir := t.TempDir()
	pk, _, err := servicetest.NewCA("PK", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	app := sha256.Sum256([]byte("app"))
	w, err := servicetest.SecureBootLog(servicetest.BootOptions{SecureBoot: true, PK: []*x509.Certificate{pk}, KEK: []*x509.Certificate{pk},
		DB: []*x509.Certificate{pk}, Apps: []servicetest.App{{SHA256: app[:], SHA1: app[:20]}}})
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := servicetest.NewCA("CLI CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := &serveFixture{dir: dir, config: filepath.Join(dir, "serve.yaml"), policy: filepath.Join(dir, "attest.yaml"),
		ciPolicy: filepath.Join(dir, "boot-ci.yaml"), log: w.Bytes(), pcrs: w.PCRs()}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", testca.PEM(ca))
	write("ca.key", testca.KeyPEM(t, caKey))
	write("nonce.key", bytes.Repeat([]byte("k"), 32))
	write("attest.yaml", []byte("format: csv-attest-policy/v1\nname: cli-fleet\n"))
	write("boot-ci.yaml", []byte(fmt.Sprintf("format: csv-policy/v1\nname: boot\nrules:\n  - {id: app, action: allow, authenticode_sha256: %x, scenarios: [boot]}\n", app)))
	write("serve.yaml", []byte(`listen: 127.0.0.1:0
plaintext_unsafe: true
policy: attest.yaml
ci_policies: [boot-ci.yaml]
ek:
  trust_any_unsafe: true
nonce:
  key_files: [nonce.key]
  ttl: 1m
credential:
  ca_certificate: ca.pem
  ca_key: ca.key
  lifetime: 10m
limits:
  max_concurrent_verifications: 2
  read_timeout: 5s
`+extra))
	return f
}

// startServe runs serve's run function with the fixture's configuration
// and returns the base URL, its log, and a stop function returning the
// run's error.
func startServe(t *testing.T, f *serveFixture) (string, *testenv.SyncBuffer, func() error) {
	t.Helper()
	return startServeWith(t, f, nil)
}

// startServeWith is startServe with the options changed by edit (if not
// nil).
func startServeWith(t *testing.T, f *serveFixture, edit func(*ServeOptions)) (string, *testenv.SyncBuffer, func() error) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	io := &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: logs}
	var opts *ServeOptions
	cmd := NewCmdServe(&cmdutil.Factory{IO: io}, func(_ context.Context, o *ServeOptions) error { opts = o; return nil })
	cmd.SetArgs([]string{"--config", f.config})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	opts.ready = func(a string) { addr <- a }
	if edit != nil {
		edit(opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, opts) }()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs)
	}
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(10 * time.Second):
				serr = errors.New("serve did not stop")
			}
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	// Wait until it answers.
	for i := 0; ; i++ {
		resp, err := http.Get(url + service.PathHealth)
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return url, logs, stop
}

// attestOnce attests a software host to url and returns the status.
func attestOnce(t *testing.T, url string, f *serveFixture, h *servicetest.Host) (int, *service.AttestResponse) {
	t.Helper()
	post := func(path string, in, out any) int {
		b, _ := json.Marshal(in)
		resp, err := http.Post(url+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	var n service.NonceResponse
	if st := post(service.PathNonce, h.NonceRequest(), &n); st != http.StatusOK {
		t.Fatalf("nonce: %d", st)
	}
	req, err := h.Evidence(&n, f.log, f.pcrs)
	if err != nil {
		t.Fatal(err)
	}
	var r service.AttestResponse
	return post(service.PathAttest, req, &r), &r
}

// TestServe: serve reads its configuration, serves, reloads its policies
// on SIGHUP (refusing a bad one and keeping the old), logs each decision
// as a JSON line, and shuts down cleanly when its context ends (SIGTERM
// in csv).
func TestServe(t *testing.T) {
	f := newServeFixture(t, "")
	url, logs, stop := startServe(t, f)
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		t.Fatal(err)
	}
	if st, r := attestOnce(t, url, f, h); st != http.StatusOK || r.Credential == nil || r.Credential.Format != service.FormatToken {
		t.Fatalf("attest: %d %+v", st, r)
	}
	if _, err := h.Open(mustCredential(t, url, f, h)); err != nil {
		t.Fatal(err)
	}

	hup := func(want string) {
		t.Helper()
		before := strings.Count(logs.String(), want)
		sendHUP(t)
		for i := 0; strings.Count(logs.String(), want) == before; i++ {
			if i > 200 {
				t.Fatalf("no %q after SIGHUP:\n%s", want, logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A policy that does not parse: refused, the old one stays.
	os.WriteFile(f.policy, []byte("format: csv-attest-policy/v1\nname: cli-fleet\nsecure_boot: maybe\n"), 0o600)
	hup("policy reload refused")
	if st, _ := attestOnce(t, url, f, h); st != http.StatusOK {
		t.Fatalf("after a refused reload: %d", st)
	}
	// A valid policy that the host does not satisfy: used from now on.
	os.WriteFile(f.policy, []byte("format: csv-attest-policy/v1\nname: cli-fleet-v2\nsecure_boot: required\npk: [{sha256: "+strings.Repeat("00", 32)+"}]\n"), 0o600)
	hup("policy reloaded")
	st, r := attestOnce(t, url, f, h)
	if st != http.StatusForbidden || r.Result.Policy.Name != "cli-fleet-v2" {
		t.Fatalf("after reload: %d %+v", st, r.Result.Policy)
	}

	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	// The log: JSON lines, the decisions with their verdicts.
	var decisions []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if m["msg"] == "attestation decision" {
			decisions = append(decisions, m["decision"].(string))
		}
	}
	if want := []string{"trusted", "trusted", "trusted", "not_trusted"}; strings.Join(decisions, ",") != strings.Join(want, ",") {
		t.Errorf("decisions %v, want %v", decisions, want)
	}
	if !strings.Contains(logs.String(), `"msg":"shut down"`) {
		t.Error("no shutdown line")
	}
}

func mustCredential(t *testing.T, url string, f *serveFixture, h *servicetest.Host) *service.Credential {
	t.Helper()
	st, r := attestOnce(t, url, f, h)
	if st != http.StatusOK {
		t.Fatalf("attest: %d", st)
	}
	return r.Credential
}

// TestServeTLS: with a TLS certificate, serve serves HTTPS only.
func TestServeTLS(t *testing.T) {
	// A self-signed certificate for 127.0.0.1 (testca's leaves have no IP
	// addresses).
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	f := newServeFixture(t, "")
	os.WriteFile(filepath.Join(f.dir, "tls.pem"), testca.PEM(cert), 0o600)
	os.WriteFile(filepath.Join(f.dir, "tls.key"), testca.KeyPEM(t, k), 0o600)
	cfg, _ := os.ReadFile(f.config)
	cfg = bytes.Replace(cfg, []byte("plaintext_unsafe: true\n"), []byte("tls: {certificate: tls.pem, key: tls.key}\n"), 1)
	os.WriteFile(f.config, cfg, 0o600)

	logs := &testenv.SyncBuffer{}
	var opts *ServeOptions
	cmd := NewCmdServe(&cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: logs}}, func(_ context.Context, o *ServeOptions) error { opts = o; return nil })
	cmd.SetArgs([]string{"--config", f.config})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	opts.ready = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, opts) }()
	a := <-addr
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = hc.Get("https://" + a + service.PathHealth); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d over TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + a + service.PathHealth); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served")
		}
	}
}

// TestServeConfig: the configuration file is strict, the flags override
// it, relative paths are the file's, and what serve cannot run with is a
// usage or configuration error (exit 2) before anything listens.
func TestServeConfig(t *testing.T) {
	f := newServeFixture(t, "")
	o := &ServeOptions{ConfigFile: f.config, Listen: ":8443", changed: func(string) bool { return false }}
	c, _, err := loadServeConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:0" || c.Policy != f.policy || c.CIPolicies[0] != f.ciPolicy || time.Duration(c.Nonce.TTL) != time.Minute ||
		c.Limits.MaxConcurrentVerifications != 2 || !c.EK.TrustAnyUnsafe {
		t.Fatalf("%+v", c)
	}
	sc, err := serviceConfig(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.NonceTTL != time.Minute || sc.CredentialLifetime != 10*time.Minute || len(sc.NonceKeys) != 1 || sc.CAKey == nil || sc.ReadTimeout != 5*time.Second {
		t.Fatalf("%+v", sc)
	}
	// Flags override.
	o2 := &ServeOptions{ConfigFile: f.config, Listen: "127.0.0.1:9999", Policy: "other.yaml",
		changed: func(n string) bool { return n == "listen" || n == "policy" }}
	c2, _, err := loadServeConfig(o2)
	if err != nil || c2.Listen != "127.0.0.1:9999" || c2.Policy != "other.yaml" {
		t.Fatalf("%v %+v", err, c2)
	}

	for name, tc := range map[string]struct {
		old, new, want string
		usage          bool
	}{
		"unknown field":     {"", "polcy: x\n", "field polcy not found", false},
		"repeated field":    {"", "policy: again.yaml\n", "already defined", false},
		"bad duration":      {"ttl: 1m", "ttl: soon", "not a duration", false},
		"two documents":     {"", "---\nlisten: x\n", "one YAML document", false},
		"no TLS":            {"plaintext_unsafe: true", "plaintext_unsafe: false", "no TLS certificate", true},
		"TLS and plaintext": {"", "tls: {certificate: a, key: b}\n", "both a TLS certificate and plaintext_unsafe", true},
		"half TLS":          {"plaintext_unsafe: true", "tls: {certificate: a}", "both the TLS certificate and key", true},
		"no CA":             {"ca_certificate: ca.pem", "", "credential CA is required", true},
		"no policy":         {"policy: attest.yaml", "", "no attestation policy", true},
	} {
		t.Run(name, func(t *testing.T) {
			base, _ := os.ReadFile(f.config)
			cfg := string(base) + tc.new
			if tc.old != "" {
				cfg = strings.Replace(string(base), tc.old, tc.new, 1)
			}
			p := filepath.Join(f.dir, "case.yaml")
			os.WriteFile(p, []byte(cfg), 0o600)
			_, _, err := loadServeConfig(&ServeOptions{ConfigFile: p, Listen: ":8443"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var fe *cmdutil.FlagError
			if tc.usage != errors.As(err, &fe) {
				t.Errorf("usage error %v: %v", tc.usage, err)
			}
			if cmdutil.ExitCode(err) != cmdutil.ExitError {
				t.Errorf("exit code %d", cmdutil.ExitCode(err))
			}
		})
	}
	// A configuration the service refuses: no way to trust EKs.
	cfg, _ := os.ReadFile(f.config)
	os.WriteFile(f.config, bytes.Replace(cfg, []byte("trust_any_unsafe: true"), []byte("trust_any_unsafe: false"), 1), 0o600)
	err = runServe(context.Background(), &ServeOptions{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, ConfigFile: f.config, Listen: ":8443"})
	if !errors.Is(err, service.ErrConfig) || !strings.Contains(err.Error(), "no way to trust an EK") || cmdutil.ExitCode(err) != cmdutil.ExitError {
		t.Fatalf("err = %v", err)
	}
	// Nothing to configure from: a usage error.
	cmd := NewCmdServe(&cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}, nil)
	cmd.SetArgs(nil)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	var fe *cmdutil.FlagError
	if err := cmd.Execute(); !errors.As(err, &fe) {
		t.Fatalf("no config: %v", err)
	}
}

func TestReadAllowlist(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ek-allowlist")
	os.WriteFile(p, []byte("# fleet\n"+strings.Repeat("ab", 32)+"  # host 1\n\n"+strings.Repeat("CD", 32)+"\n"), 0o600)
	l, err := readAllowlist(p)
	if err != nil || len(l) != 2 || l[0][0] != 0xab || l[1][31] != 0xcd {
		t.Fatalf("%v %x", err, l)
	}
	os.WriteFile(p, []byte("abcd\n"), 0o600)
	if _, err := readAllowlist(p); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("%v", err)
	}
}

func TestParseOID(t *testing.T) {
	if o, err := parseOID("1.3.6.1.4.1.99999.1"); err != nil || o.String() != "1.3.6.1.4.1.99999.1" {
		t.Fatal(o, err)
	}
	for _, bad := range []string{"", "1", "1.2", "3.1.2", "1.x.3", "2.25.120356861960077738550509283828244277924"} {
		if _, err := parseOID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestServeREADMEConfig: the configuration docs/attest.md shows decodes under
// the strict decoder and means what its comments say.
func TestServeREADMEConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "attest.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "### Configuration\n\n```yaml\n")
	if i < 0 {
		t.Fatal("docs/attest.md has no service configuration example")
	}
	s = s[i+len("### Configuration\n\n```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	dir := t.TempDir()
	p := filepath.Join(dir, "attest-serve.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := loadServeConfig(&ServeOptions{ConfigFile: p, Listen: ":1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8443" || c.Policy != filepath.Join(dir, "attest.yaml") || c.Nonce.KeyFiles[0] != "/run/secrets/nonce/key" ||
		time.Duration(c.Nonce.TTL) != 2*time.Minute || c.Credential.Format != "token" || c.Limits.MaxBodyBytes != 4194304 ||
		c.Nonce.MaxUsedPerEK != 64 || c.Limits.MaxBodyBytesInFlight != 0 || time.Duration(c.Limits.VerificationTimeout) != 10*time.Second ||
		len(c.PCRs["sha256"]) != 13 {
		t.Fatalf("%+v", c)
	}
}

// TestServeConfigLimits: the body budget, the per-EK nonce quota and the
// verification deadline are read from the configuration file.
func TestServeConfigLimits(t *testing.T) {
	f := newServeFixture(t, "  max_body_bytes_in_flight: 1048576\n  verification_timeout: 3s\n")
	cfg, _ := os.ReadFile(f.config)
	os.WriteFile(f.config, bytes.Replace(cfg, []byte("  ttl: 1m\n"), []byte("  ttl: 1m\n  max_used_per_ek: 7\n"), 1), 0o600)
	c, _, err := loadServeConfig(&ServeOptions{ConfigFile: f.config, Listen: ":1"})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := serviceConfig(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.MaxBodyBytesInFlight != 1<<20 || sc.MaxUsedNoncesPerEK != 7 || sc.VerificationTimeout != 3*time.Second {
		t.Fatalf("MaxBodyBytesInFlight %d, MaxUsedNoncesPerEK %d, VerificationTimeout %s", sc.MaxBodyBytesInFlight, sc.MaxUsedNoncesPerEK, sc.VerificationTimeout)
	}
}

// TestServeCAValidity: a credential CA certificate that expired, or is
// not valid yet, is a configuration error naming the file and its
// validity, before anything listens.
func TestServeCAValidity(t *testing.T) {
	for name, at := range map[string]time.Time{
		"expired":       time.Now().AddDate(-12, 0, 0), // valid from 13 to 2 years ago
		"not yet valid": time.Now().AddDate(2, 0, 0),   // valid from a year from now
	} {
		t.Run(name, func(t *testing.T) {
			f := newServeFixture(t, "")
			ca, key, err := servicetest.NewCA("Stale CA", at)
			if err != nil {
				t.Fatal(err)
			}
			caPath := filepath.Join(f.dir, "ca.pem")
			os.WriteFile(caPath, testca.PEM(ca), 0o600)
			os.WriteFile(filepath.Join(f.dir, "ca.key"), testca.KeyPEM(t, key), 0o600)
			listened := false
			err = runServe(context.Background(), &ServeOptions{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}},
				ConfigFile: f.config, Listen: ":8443", ready: func(string) { listened = true }})
			if !errors.Is(err, service.ErrCAExpired) || !strings.Contains(err.Error(), "credential CA "+caPath) || !strings.Contains(err.Error(), "valid from "+ca.NotBefore.UTC().Format(time.RFC3339)) ||
				cmdutil.ExitCode(err) != cmdutil.ExitError || listened {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
