package service_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
)

// slowBodies opens n connections to e's server that each declare a body
// of size bytes and send one byte of it, and waits until the service has
// reserved room for all of them: the budget of bodies in flight is then
// full (the caller sizes it so). It returns the connections.
func slowBodies(t *testing.T, e *env, n int, size int64) []net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", service.PathAttest, size)
		conns = append(conns, c)
	}
	waitFor(t, "the slow bodies to fill the budget", func() bool { return !e.srv.BodyBudgetFree(1) })
	return conns
}

// waitFor polls cond (the service's own state, not the clock) until it
// holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBodyBudget: the bodies of attestation requests being read are
// bounded in total (MaxBodyBytesInFlight), counted at their declared size
// before a byte is read: slow clients declaring large bodies fill the
// budget and the next request waits QueueTimeout and gets 503 with
// Retry-After, instead of buffers of the declared sizes; nonce requests
// are not held up; room freed by a request that ends lets a normal
// attestation through, a queued one included.
func TestBodyBudget(t *testing.T) {
	const maxBody = 64 << 10
	e := newEnv(t, func(c *service.Config) {
		c.MaxBodyBytes, c.MaxBodyBytesInFlight, c.QueueTimeout = maxBody, 4*maxBody, 100*time.Millisecond
	})
	h := e.hosts[0]
	conns := slowBodies(t, e, 4, maxBody)

	req := e.evidence(t, h) // nonce requests are not counted: still served
	b, _ := json.Marshal(req)
	if len(b) >= maxBody {
		t.Fatalf("the evidence is %d bytes, over the test's body cap", len(b))
	}
	resp, err := http.Post(e.ts.URL+service.PathAttest, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var r service.AttestResponse
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(r.Error, "request bodies in flight") || r.Credential != nil {
		t.Fatalf("budget full: %d %q, Retry-After %q", resp.StatusCode, r.Error, resp.Header.Get("Retry-After"))
	}
	if d := e.log.decisions(t); d[len(d)-1]["decision"] != "busy" || d[len(d)-1]["status"] != float64(503) {
		t.Errorf("decision log %v", d[len(d)-1])
	}
	if e.srv.UsedNonces() != 0 {
		t.Error("a request refused before it was read used its nonce")
	}

	// One slow client goes: its reservation is given back when its
	// request ends, and a normal attestation (the same evidence) gets
	// through.
	conns[0].Close()
	waitFor(t, "the room of the closed request", func() bool { return e.srv.BodyBudgetFree(maxBody) })
	if r, st := e.attest(t, req); st != http.StatusOK || r.Credential == nil {
		t.Fatalf("after room freed: %d %v %q", st, failed(r), r.Error)
	}
	if !e.srv.BodyBudgetFree(maxBody) {
		t.Error("the attestation's reservation was not given back")
	}

	// A request that declares no length (chunked) reserves the cap: with
	// three slow clients left, one more fills the budget.
	c, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", service.PathAttest)
	waitFor(t, "the chunked request to fill the budget", func() bool { return !e.srv.BodyBudgetFree(1) })
}

// TestBodyBudgetIdleClients: clients that declare the largest body and
// send nothing hold only their first buffer's worth (64 KiB) of the budget,
// not what they declared: the number that would once fill the budget (its
// size over the body cap) leaves room for real hosts.
func TestBodyBudgetIdleClients(t *testing.T) {
	const maxBody, first = 4 << 20, 64 << 10
	e := newEnv(t, func(c *service.Config) {
		c.MaxBodyBytes, c.MaxBodyBytesInFlight, c.QueueTimeout = maxBody, 16*maxBody, 100*time.Millisecond
	})
	addr := strings.TrimPrefix(e.ts.URL, "http://")
	for i := 0; i < 16; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", service.PathAttest, maxBody)
	}
	waitFor(t, "16 first buffers reserved", func() bool { return !e.srv.BodyBudgetFree(16*maxBody - 16*first + 1) })
	if !e.srv.BodyBudgetFree(16*maxBody - 16*first) {
		t.Fatal("the idle clients hold more than their first buffers")
	}
	if r, st := e.attest(t, e.evidence(t, e.hosts[0])); st != http.StatusOK || r.Credential == nil {
		t.Fatalf("with idle clients: %d %v %q", st, failed(r), r.Error)
	}
}

// TestBodyBudgetQueue: a request that finds the budget full waits up to
// QueueTimeout for room, and is served when room frees up.
func TestBodyBudgetQueue(t *testing.T) {
	const maxBody = 64 << 10
	e := newEnv(t, func(c *service.Config) {
		c.MaxBodyBytes, c.MaxBodyBytesInFlight, c.QueueTimeout = maxBody, 2*maxBody, time.Minute
	})
	h := e.hosts[0]
	conns := slowBodies(t, e, 2, maxBody)
	req := e.evidence(t, h)
	got := make(chan int, 1)
	go func() {
		b, _ := json.Marshal(req)
		resp, err := http.Post(e.ts.URL+service.PathAttest, "application/json", bytes.NewReader(b))
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case st := <-got:
		t.Fatalf("answered %d while the budget was full", st)
	case <-time.After(100 * time.Millisecond):
	}
	conns[0].Close()
	if st := <-got; st != http.StatusOK {
		t.Fatalf("queued request: %d", st)
	}
}

// TestBodyLimits: a nonce request's body is capped at a few KiB; a
// budget below the body cap is a configuration error.
func TestBodyLimits(t *testing.T) {
	e := newEnv(t)
	big := `{"ak_name":"000b` + strings.Repeat("00", 32) + `","ek_key_sha256":"` + strings.Repeat("0", 8<<10) + `"}`
	resp, err := http.Post(e.ts.URL+service.PathNonce, "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("8 KiB nonce request: %d", resp.StatusCode)
	}
	b := secureBoot(t)
	ca, key, _ := servicetest.NewCA("CA", epoch)
	_, err = service.New(service.Config{LoadPolicy: loadPolicy(b.policy, b.ciPolicy), CA: ca, CAKey: key, TrustAnyEKUnsafe: true,
		Now: func() time.Time { return epoch }, MaxBodyBytes: 1 << 20, MaxBodyBytesInFlight: 1 << 19})
	if !errors.Is(err, service.ErrConfig) || !strings.Contains(err.Error(), "MaxBodyBytesInFlight") {
		t.Fatalf("budget below the body cap: %v", err)
	}
}

// TestNonceCacheUntrustedEK: submissions with an EK the service does not
// trust are refused before their nonce is marked used, so strangers
// cannot fill the used-nonce cache; replays and a full cache are still
// refused.
func TestNonceCacheUntrustedEK(t *testing.T) {
	stranger := newHost(t, servicetest.ECC, servicetest.ECC)
	e := newEnv(t, func(c *service.Config) { c.MaxUsedNonces = 3 })
	for _, h := range e.hosts {
		if h == stranger {
			t.Skip("host cache handed out an allowlisted host")
		}
	}
	for i := 0; i < 10; i++ {
		r, st := e.attest(t, e.evidence(t, stranger))
		if st != http.StatusForbidden || !slices.Equal(failed(r), []string{"ek"}) {
			t.Fatalf("untrusted EK: %d %v", st, failed(r))
		}
	}
	if n := e.srv.UsedNonces(); n != 0 {
		t.Fatalf("untrusted EKs left %d used nonces", n)
	}
	// The fleet is served; a replay is refused; a full cache fails closed.
	h := e.hosts[0]
	req := e.evidence(t, h)
	for i := 0; i < 2; i++ {
		r, st := e.attest(t, req)
		if want := []int{http.StatusOK, http.StatusForbidden}[i]; st != want {
			t.Fatalf("attempt %d: %d (want %d) %v", i, st, want, failed(r))
		}
	}
	for i := 0; i < 2; i++ {
		e.attest(t, e.evidence(t, e.hosts[i+1]))
	}
	r, st := e.attest(t, e.evidence(t, h))
	if st != http.StatusServiceUnavailable || !strings.Contains(r.Error, "used-nonce cache full") || r.Credential != nil {
		t.Fatalf("full cache: %d %q", st, r.Error)
	}
}

// TestNonceQuotaPerEK: an EK that used its share of the cache gets 429
// with Retry-After ("busy" in the decision log); another EK is served.
func TestNonceQuotaPerEK(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.MaxUsedNoncesPerEK = 2 })
	h, other := e.hosts[0], e.hosts[1]
	for i := 0; i < 2; i++ {
		if r, st := e.attest(t, e.evidence(t, h)); st != http.StatusOK {
			t.Fatalf("%d: %d %v", i, st, failed(r))
		}
	}
	b, _ := json.Marshal(e.evidence(t, h))
	resp, err := http.Post(e.ts.URL+service.PathAttest, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var r service.AttestResponse
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || retry < 1 || retry > 2*(2*60+5) || r.Credential != nil ||
		!strings.Contains(r.Error, "too many nonces used by this EK") {
		t.Fatalf("over the quota: %d %q, Retry-After %q", resp.StatusCode, r.Error, resp.Header.Get("Retry-After"))
	}
	d := e.log.decisions(t)
	if last := d[len(d)-1]; last["decision"] != "busy" || last["status"] != float64(http.StatusTooManyRequests) {
		t.Errorf("decision log %v", last)
	}
	if r, st := e.attest(t, e.evidence(t, other)); st != http.StatusOK {
		t.Fatalf("another EK: %d %v", st, failed(r))
	}
	// Once its entries expire, the EK is served again.
	e.clock.Advance(2 * (2*time.Minute + 5*time.Second))
	if r, st := e.attest(t, e.evidence(t, h)); st != http.StatusOK {
		t.Fatalf("after expiry: %d %v", st, failed(r))
	}
}

// TestNonceIDLogged: the nonce id of a nonce whose MAC does not verify is
// not logged as the nonce's id (it is the client's claim), nor echoed.
func TestNonceIDLogged(t *testing.T) {
	e := newEnv(t)
	req := e.evidence(t, e.hosts[0])
	raw, _ := base64.RawURLEncoding.DecodeString(req.Nonce)
	claimed := fmt.Sprintf("%x", raw[7:16])
	raw[len(raw)-1] ^= 1
	req.Nonce = base64.RawURLEncoding.EncodeToString(raw)
	r, st := e.attest(t, req)
	if st != http.StatusForbidden || r.NonceID != "" {
		t.Fatalf("forged nonce: %d, nonce_id %q", st, r.NonceID)
	}
	d := e.log.decisions(t)
	if last := d[len(d)-1]; last["nonce_id"] != "" || last["nonce_id_claimed"] != claimed {
		t.Fatalf("decision log %v", last)
	}
	// A verified nonce is logged as such.
	r, st = e.attest(t, e.evidence(t, e.hosts[0]))
	d = e.log.decisions(t)
	if last := d[len(d)-1]; st != http.StatusOK || last["nonce_id"] != r.NonceID || r.NonceID == "" || last["nonce_id_claimed"] != nil {
		t.Fatalf("good nonce: %d, decision log %v", st, last)
	}
}

// TestEKCertificateUse: an EK certificate must be an EK certificate, not
// just chain to an EK root: not a CA; keyEncipherment or keyAgreement when
// it has a key usage; tcg-kp-EKCertificate when it has extended key
// usages.
func TestEKCertificateUse(t *testing.T) {
	mfr, mfrKey, err := servicetest.NewCA("Test TPM Manufacturer Root", epoch)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *service.Config) { c.EKAllowlist, c.EKRoots = nil, []*x509.Certificate{mfr} })
	h := e.hosts[1]
	for _, tc := range []struct {
		name string
		edit func(*x509.Certificate)
		want string // "" trusted, or the reason it is not
	}{
		{"as manufacturers make them", nil, ""},
		{"keyAgreement, no EKU", func(c *x509.Certificate) { c.KeyUsage, c.UnknownExtKeyUsage = x509.KeyUsageKeyAgreement, nil }, ""},
		{"no key usage, no EKU", func(c *x509.Certificate) { c.KeyUsage, c.UnknownExtKeyUsage = 0, nil }, ""},
		{"EKU among others", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, ""},
		{"a CA", func(c *x509.Certificate) { c.IsCA = true }, "CA certificate"},
		{"signing only", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }, "key usage"},
		{"server EKU", func(c *x509.Certificate) {
			c.ExtKeyUsage, c.UnknownExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
		}, "tcg-kp-EKCertificate"},
		{"any EKU", func(c *x509.Certificate) {
			c.ExtKeyUsage, c.UnknownExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, nil
		}, "tcg-kp-EKCertificate"},
		{"another private EKU", func(c *x509.Certificate) { c.UnknownExtKeyUsage = []asn1.ObjectIdentifier{{2, 23, 133, 8, 3}} }, "tcg-kp-EKCertificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := h.CertifyEKWith(mfr, mfrKey.(*ecdsa.PrivateKey), epoch, tc.edit)
			if err != nil {
				t.Fatal(err)
			}
			req := e.evidence(t, h)
			req.EKCertificate = c.Raw
			r, st := e.attest(t, req)
			if tc.want == "" {
				if st != http.StatusOK {
					t.Fatalf("%d %v", st, r.Result)
				}
				return
			}
			if st != http.StatusForbidden || !slices.Equal(failed(r), []string{"ek"}) || r.Credential != nil {
				t.Fatalf("%d %v", st, failed(r))
			}
			if d := r.Result.Checks[len(r.Result.Checks)-1].Detail; !strings.Contains(d, tc.want) {
				t.Errorf("ek check %q, want %q", d, tc.want)
			}
		})
	}
}

// TestCAValidity: a credential CA that is expired or not yet valid is
// refused at start, and at issue time (500, no credential, an error in
// the decision log) if it expires while the service runs.
func TestCAValidity(t *testing.T) {
	b := secureBoot(t)
	ca, key, _ := servicetest.NewCA("Old CA", epoch) // valid epoch-1y to epoch+10y
	for name, now := range map[string]time.Time{
		"expired":       ca.NotAfter.Add(time.Second),
		"not yet valid": ca.NotBefore.Add(-time.Second),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := service.New(service.Config{LoadPolicy: loadPolicy(b.policy, b.ciPolicy), CA: ca, CAKey: key, TrustAnyEKUnsafe: true,
				Now: func() time.Time { return now }})
			if !errors.Is(err, service.ErrCAExpired) || !strings.Contains(err.Error(), "Old CA") {
				t.Fatalf("New: %v", err)
			}
		})
	}

	e := newEnv(t)
	e.clock.Advance(e.ca.NotAfter.Sub(epoch) + time.Hour)
	r, st := e.attest(t, e.evidence(t, e.hosts[0]))
	if st != http.StatusServiceUnavailable || r.Credential != nil || r.Trusted || !strings.Contains(r.Error, "CA is not valid now") {
		t.Fatalf("expired CA: %d trusted %v credential %v %q", st, r.Trusted, r.Credential != nil, r.Error)
	}
	d := e.log.decisions(t)
	if last := d[len(d)-1]; last["decision"] != "error" || last["level"] != "ERROR" || !strings.Contains(fmt.Sprint(last["reason"]), "not valid now") {
		t.Fatalf("decision log %v", last)
	}
}
