package service_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/limits"
)

// flood is a host that sends what costs a verifier most for its size: a
// Secure Boot log with many boot components (PCR 4 images, each with its
// own digest) and many distinct Secure Boot authorities (PCR 7), judged
// by a code integrity policy with a signer rule (every component is
// judged with the authorities) and a path-scoped rule (every component
// is judged under each image load type). Anyone with a trusted EK (EK
// certificates are public) and a software AK can send it.
type flood struct {
	srv  *service.Server
	h    *servicetest.Host
	log  []byte
	pcrs eventlog.PCRs
}

// floodOptions shape a flood.
type floodOptions struct {
	// components boot components, authorities distinct authority
	// certificates besides db's.
	components, authorities int
	// named: the code integrity policy has a signer rule for each
	// authority, so that no two are judged alike (the most judging work
	// per component).
	named bool
	// bodyBytes, if set, pads the submission to about that size with
	// authority events repeating the distinct ones (distinct authorities
	// are capped, repeated ones are not).
	bodyBytes int
	// cfg changes the service's configuration.
	cfg func(*service.Config)
}

// newFlood makes a service and a flooding host.
func newFlood(tb testing.TB, fo floodOptions) *flood {
	tb.Helper()
	pk, _, err := servicetest.NewCA("Flood PK", epoch)
	if err != nil {
		tb.Fatal(err)
	}
	db, _, err := servicetest.NewCA("Flood DB", epoch)
	if err != nil {
		tb.Fatal(err)
	}
	o := servicetest.BootOptions{Banks: []eventlog.HashAlg{eventlog.SHA256}, SecureBoot: true,
		PK: []*x509.Certificate{pk}, KEK: []*x509.Certificate{pk}, DB: []*x509.Certificate{db}}
	for i := range fo.components {
		d := sha256.Sum256(fmt.Appendf(nil, "boot component %d", i))
		o.Apps = append(o.Apps, servicetest.App{SHA256: d[:]})
	}
	certs := manyCertificates(tb, fo.authorities)
	o.Authorities = certs
	if fo.bodyBytes > 0 && len(certs) > 0 {
		w, err := servicetest.SecureBootLog(o)
		if err != nil {
			tb.Fatal(err)
		}
		// A body is the log in base64 and about 2 KB more; an authority
		// event is its certificate and 102 bytes.
		room := (fo.bodyBytes-4<<10)*3/4 - len(w.Bytes())
		for i := 0; room > 102+len(certs[i%len(certs)]); i++ {
			room -= 102 + len(certs[i%len(certs)])
			o.Authorities = append(o.Authorities, certs[i%len(certs)])
		}
	}
	w, err := servicetest.SecureBootLog(o)
	if err != nil {
		tb.Fatal(err)
	}
	first := sha256.Sum256([]byte("boot component 0"))
	var rules strings.Builder
	fmt.Fprintf(&rules, "format: csv-policy/v1\nname: boot\nrules:\n")
	signer := func(id string, der []byte) {
		fmt.Fprintf(&rules, "  - {id: %s, action: allow, signer: {certificate: %q, level: any}, scenarios: [boot]}\n", id,
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	signer("db", db.Raw)
	if fo.named {
		for i, der := range certs {
			signer(fmt.Sprintf("authority-%d", i), der)
		}
	}
	fmt.Fprintf(&rules, "  - {id: first, action: allow, authenticode_sha256: %x, paths: [\"pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/*\"], scenarios: [boot]}\n", first)
	h := newHost(tb, servicetest.ECC, servicetest.ECC)
	ca, caKey, err := servicetest.NewCA("Flood Attestation CA", epoch)
	if err != nil {
		tb.Fatal(err)
	}
	c := service.Config{
		LoadPolicy: loadPolicy("format: csv-attest-policy/v1\nname: flood\n", rules.String()),
		CA:         ca, CAKey: caKey, EKAllowlist: [][32]byte{h.EKKeySHA256()},
		MaxUsedNoncesPerEK: 1 << 20,
		Logger:             slog.New(slog.NewJSONHandler(io.Discard, nil)),
		// The judging at the caps is what is tested, not its speed: the
		// default 10 s is too short under the race detector on a loaded
		// machine (BenchmarkAttestFlood measures the time).
		VerificationTimeout: 2 * time.Minute,
	}
	if fo.cfg != nil {
		fo.cfg(&c)
	}
	srv, err := service.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	return &flood{srv: srv, h: h, log: w.Bytes(), pcrs: w.PCRs()}
}

// manyCertificates mints n distinct small certificates (one key, one
// serial each).
func manyCertificates(tb testing.TB, n int) [][]byte {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: fmt.Sprintf("A%d", i)},
			NotBefore: epoch.AddDate(-1, 0, 0), NotAfter: epoch.AddDate(1, 0, 0)}
		if out[i], err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// post sends a body to the service's handler.
func (f *flood) post(path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	return w
}

// body fetches a nonce and returns the submission.
func (f *flood) body(tb testing.TB) []byte {
	tb.Helper()
	nr, _ := json.Marshal(f.h.NonceRequest())
	var n service.NonceResponse
	if err := json.Unmarshal(f.post(service.PathNonce, nr).Body.Bytes(), &n); err != nil {
		tb.Fatal(err)
	}
	req, err := f.h.Evidence(&n, f.log, f.pcrs)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestFlood: a host that claims thousands of boot components and
// authorities (the 6,000 and 600) is refused at once, the check
// saying which cap; at the caps it is judged. Neither gets a credential
// it should not.
func TestFlood(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fo     floodOptions
		status int
		detail string
	}{
		{"over the caps", floodOptions{components: 6000, authorities: 600}, http.StatusForbidden,
			fmt.Sprintf("the log holds 6000 boot components, over the limit of %d: not judged", limits.MaxBootComponents)},
		{"authorities over the cap", floodOptions{components: 3, authorities: limits.MaxBootAuthorities}, http.StatusForbidden,
			fmt.Sprintf("PCR 7 names %d distinct Secure Boot authorities, over the limit of %d", limits.MaxBootAuthorities+1, limits.MaxBootAuthorities)},
		{"at the caps, unknown authorities", floodOptions{components: limits.MaxBootComponents, authorities: limits.MaxBootAuthorities - 1}, http.StatusForbidden,
			fmt.Sprintf("%d of %d boot components blocked", limits.MaxBootComponents, limits.MaxBootComponents)},
		{"at the caps, every authority allowed", floodOptions{components: limits.MaxBootComponents, authorities: limits.MaxBootAuthorities - 1, named: true},
			http.StatusOK, fmt.Sprintf("allows all %d boot components", limits.MaxBootComponents)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlood(t, tc.fo)
			w := f.post(service.PathAttest, f.body(t))
			var r service.AttestResponse
			if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || r.Result == nil || (tc.status == http.StatusOK) != (r.Credential != nil) {
				t.Fatalf("%d %.300s", w.Code, w.Body)
			}
			for _, c := range r.Result.Checks {
				if c.Name == "policy.boot-components" && strings.Contains(c.Detail, tc.detail) {
					return
				}
			}
			t.Fatalf("no policy.boot-components check saying %q: %+v", tc.detail, r.Result.Checks)
		})
	}
}

// TestVerificationStops: a verification stops when its client goes away
// and when its time is up (VerificationTimeout): 503, no credential, and
// the decision log says which.
func TestVerificationStops(t *testing.T) {
	t.Run("client gone", func(t *testing.T) {
		e := newEnv(t)
		arrived := make(chan struct{})
		e.srv.SetTestHook(func(ctx context.Context) {
			close(arrived)
			<-ctx.Done() // the work in progress when the client goes
		})
		b, _ := json.Marshal(e.evidence(t, e.hosts[0]))
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.ts.URL+service.PathAttest, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		<-arrived
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("client: %v", err)
		}
		var d map[string]any
		for deadline := time.Now().Add(10 * time.Second); d == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if ds := e.log.decisions(t); len(ds) > 0 {
				d = ds[0]
			}
		}
		if d == nil || d["decision"] != "canceled" || d["status"] != float64(http.StatusServiceUnavailable) || d["credential_id"] != nil ||
			!strings.Contains(fmt.Sprint(d["reason"]), "the client went away") {
			t.Fatalf("decision %v", d)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		e := newEnv(t, func(c *service.Config) { c.VerificationTimeout = 50 * time.Millisecond })
		e.srv.SetTestHook(func(ctx context.Context) { <-ctx.Done() })
		r, st := e.attest(t, e.evidence(t, e.hosts[0]))
		if st != http.StatusServiceUnavailable || r.Credential != nil || r.Trusted ||
			r.Error != "the verification did not finish within the service's limit of 50ms: the evidence is too large to judge, or the service is overloaded" {
			t.Fatalf("%d %+v", st, r)
		}
		if d := e.log.decisions(t); len(d) != 1 || d[0]["decision"] != "timeout" || !strings.Contains(fmt.Sprint(d[0]["reason"]), "deadline exceeded") {
			t.Fatalf("decisions %v", d)
		}
	})
	t.Run("a flood past its time", func(t *testing.T) {
		f := newFlood(t, floodOptions{components: limits.MaxBootComponents, authorities: limits.MaxBootAuthorities - 1, named: true,
			bodyBytes: 4 << 20, cfg: func(c *service.Config) { c.VerificationTimeout = time.Millisecond }})
		w := f.post(service.PathAttest, f.body(t))
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "did not finish within the service's limit of 1ms") {
			t.Fatalf("%d %.300s", w.Code, w.Body)
		}
	})
	if _, err := service.New(service.Config{VerificationTimeout: -time.Second, LoadPolicy: func() (*service.Policy, error) { return nil, nil }}); !errors.Is(err, service.ErrConfig) ||
		!strings.Contains(err.Error(), "negative limit") {
		t.Errorf("a negative VerificationTimeout: %v", err)
	}
}
