package service_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testenv"
)

// epoch is the tests' fixed time.
var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is an adjustable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct{ testenv.SyncBuffer }

// Lines returns the JSON log lines.
func (s *syncBuffer) Lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// decisions returns the "attestation decision" log lines.
func (s *syncBuffer) decisions(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, m := range s.Lines(t) {
		if m["msg"] == "attestation decision" {
			out = append(out, m)
		}
	}
	return out
}

// boot is a synthetic Secure Boot host state: its log, PCR values and the
// policies that trust it.
type boot struct {
	w        *eventlog.Writer
	log      []byte
	pcrs     eventlog.PCRs
	appSHA   []byte
	policy   string // attestation policy YAML
	ciPolicy string
}

var (
	bootOnce sync.Once
	theBoot  *boot
	bootErr  error
)

// secureBoot returns the synthetic boot (made once: the CA keys are slow
// to make only in RSA, but the log never changes).
func secureBoot(t testing.TB) *boot {
	t.Helper()
	bootOnce.Do(func() {
		pk, _, err := servicetest.NewCA("Test PK", epoch)
		if err != nil {
			bootErr = err
			return
		}
		db, _, err := servicetest.NewCA("Test DB", epoch)
		if err != nil {
			bootErr = err
			return
		}
		app := bytes.Repeat([]byte("boot application"), 4)
		a256 := sha256.Sum256(app)
		a1 := sha1.Sum(app)
		w, err := servicetest.SecureBootLog(servicetest.BootOptions{SecureBoot: true, PK: []*x509.Certificate{pk},
			KEK: []*x509.Certificate{pk}, DB: []*x509.Certificate{db}, Apps: []servicetest.App{{SHA256: a256[:], SHA1: a1[:]}}})
		if err != nil {
			bootErr = err
			return
		}
		pkSum := sha256.Sum256(pk.Raw)
		theBoot = &boot{w: w, log: w.Bytes(), pcrs: w.PCRs(), appSHA: a256[:],
			policy: fmt.Sprintf("format: csv-attest-policy/v1\nname: test-fleet\npk:\n  - sha256: %x\n", pkSum),
			ciPolicy: fmt.Sprintf("format: csv-policy/v1\nname: boot\nrules:\n  - {id: app, action: allow, authenticode_sha256: %x, scenarios: [boot]}\n",
				a256)}
	})
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	return theBoot
}

// loadPolicy returns a Config.LoadPolicy for YAML texts.
func loadPolicy(policy, ci string) func() (*service.Policy, error) {
	return func() (*service.Policy, error) {
		p, err := attest.ParsePolicy([]byte(policy), "attest.yaml", attest.PolicyOptions{})
		if err != nil {
			return nil, err
		}
		out := &service.Policy{Attestation: p}
		if ci != "" {
			cp, err := cipolicy.Parse([]byte(ci), "boot-ci.yaml")
			if err != nil {
				return nil, err
			}
			if out.CI, err = cipolicy.NewSet(cipolicy.SetOptions{}, cp); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
}

// env is a service under test with its hosts.
type env struct {
	srv   *service.Server
	ts    *httptest.Server
	log   *syncBuffer
	clock *clock
	boot  *boot
	ca    *x509.Certificate
	caKey crypto.Signer
	hosts []*servicetest.Host
}

type envOption func(*service.Config)

// newEnv starts a service trusting the synthetic boot, with a host of
// each EK type (RSA, ECC, ECC P-384) on its EK allowlist.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	b := secureBoot(t)
	e := &env{log: &syncBuffer{}, clock: &clock{t: epoch}, boot: b}
	var err error
	if e.ca, e.caKey, err = servicetest.NewCA("Test Attestation CA", epoch); err != nil {
		t.Fatal(err)
	}
	cfg := service.Config{
		LoadPolicy: loadPolicy(b.policy, b.ciPolicy),
		CA:         e.ca, CAKey: e.caKey,
		NonceKeys: [][]byte{bytes.Repeat([]byte{7}, 32)},
		Logger:    slog.New(slog.NewJSONHandler(e.log, nil)),
		Now:       e.clock.Now,
	}
	for _, k := range []servicetest.KeyType{servicetest.ECC, servicetest.RSA, servicetest.ECCP384} {
		h := newHost(t, k, servicetest.ECC)
		e.hosts = append(e.hosts, h)
		cfg.EKAllowlist = append(cfg.EKAllowlist, h.EKKeySHA256())
	}
	for _, o := range opts {
		o(&cfg)
	}
	if e.srv, err = service.New(cfg); err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

var (
	hostMu    sync.Mutex
	hostCache = map[[2]servicetest.KeyType][]*servicetest.Host{}
	hostUsed  = map[[2]servicetest.KeyType]int{}
)

// newHost returns a software host; RSA keys are slow to make, so hosts
// are made once per test binary and handed out in turn.
func newHost(t testing.TB, ek, ak servicetest.KeyType) *servicetest.Host {
	t.Helper()
	hostMu.Lock()
	defer hostMu.Unlock()
	k := [2]servicetest.KeyType{ek, ak}
	n := hostUsed[k] % 4
	hostUsed[k]++
	for len(hostCache[k]) <= n {
		h, err := servicetest.NewHost(ek, ak)
		if err != nil {
			t.Fatal(err)
		}
		hostCache[k] = append(hostCache[k], h)
	}
	return hostCache[k][n]
}

// post sends a JSON body and decodes the JSON answer into out (if not nil).
func (e *env) post(t *testing.T, path string, body any, out any) int {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(e.ts.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("%s: %d %q: %v", path, resp.StatusCode, rb, err)
		}
	}
	return resp.StatusCode
}

func (e *env) nonce(t *testing.T, h *servicetest.Host) *service.NonceResponse {
	t.Helper()
	var n service.NonceResponse
	if st := e.post(t, service.PathNonce, h.NonceRequest(), &n); st != http.StatusOK {
		t.Fatalf("nonce: status %d", st)
	}
	return &n
}

// evidence fetches a nonce and returns h's evidence of the synthetic boot.
func (e *env) evidence(t *testing.T, h *servicetest.Host) *service.AttestRequest {
	t.Helper()
	req, err := h.Evidence(e.nonce(t, h), e.boot.log, e.boot.pcrs)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (e *env) attest(t *testing.T, req *service.AttestRequest) (*service.AttestResponse, int) {
	t.Helper()
	var r service.AttestResponse
	st := e.post(t, service.PathAttest, req, &r)
	return &r, st
}

func failed(r *service.AttestResponse) []string {
	var out []string
	if r.Result == nil {
		return nil
	}
	for _, c := range r.Result.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

var _ = hex.EncodeToString
