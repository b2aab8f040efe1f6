package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/redisstore"
	"github.com/codesignval/csv/attest/service/redisstore/redistest"
	"github.com/codesignval/csv/attest/service/servicetest"
)

// logBuffer is a concurrency-safe decision log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// decisions returns the decision log's lines.
func (l *logBuffer) decisions(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "attestation decision" {
			out = append(out, m)
		}
	}
	return out
}

// fleet is replicas of one service (same nonce key, CA and trust) sharing
// a replay store.
type fleet struct {
	urls []string
	logs []*logBuffer
}

func newFleet(t *testing.T, n int, store service.ReplayStore) (*fleet, *servicetest.Host, func(*servicetest.Host, *service.NonceResponse) *service.AttestRequest) {
	t.Helper()
	host, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := servicetest.NewCA("Fleet Attestation CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	app := sha256.Sum256([]byte("boot loader"))
	boot, err := servicetest.SecureBootLog(servicetest.BootOptions{SecureBoot: true, DB: []*x509.Certificate{ca},
		Apps: []servicetest.App{{SHA256: app[:], SHA1: app[:20]}}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{}
	for range n {
		lb := &logBuffer{}
		srv, err := service.New(service.Config{
			LoadPolicy: func() (*service.Policy, error) {
				p, err := attest.ParsePolicy([]byte("format: csv-attest-policy/v1\nname: fleet\nboot_components: ignore\n"),
					"fleet.yaml", attest.PolicyOptions{})
				return &service.Policy{Attestation: p}, err
			},
			EKAllowlist: [][32]byte{host.EKKeySHA256()},
			CA:          ca, CAKey: caKey,
			NonceKeys:   [][]byte{bytes.Repeat([]byte("k"), 32)}, // the same on every replica
			ReplayStore: store,
			Logger:      slog.New(slog.NewJSONHandler(lb, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		f.urls, f.logs = append(f.urls, ts.URL), append(f.logs, lb)
	}
	evidence := func(h *servicetest.Host, nr *service.NonceResponse) *service.AttestRequest {
		req, err := h.Evidence(nr, boot.Bytes(), boot.PCRs())
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	return f, host, evidence
}

func post(t *testing.T, url, path string, in, out any) (int, http.Header) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(rb, out); err != nil {
		t.Fatalf("%s: %d %q: %v", path, resp.StatusCode, rb, err)
	}
	return resp.StatusCode, resp.Header
}

func (f *fleet) attest(t *testing.T, replica int, req *service.AttestRequest) (*service.AttestResponse, int, http.Header) {
	t.Helper()
	var r service.AttestResponse
	st, h := post(t, f.urls[replica], service.PathAttest, req, &r)
	return &r, st, h
}

func (f *fleet) nonce(t *testing.T, replica int, h *servicetest.Host) *service.NonceResponse {
	t.Helper()
	var n service.NonceResponse
	if st, _ := post(t, f.urls[replica], service.PathNonce, h.NonceRequest(), &n); st != http.StatusOK {
		t.Fatalf("nonce: status %d", st)
	}
	return &n
}

func failedCheck(r *service.AttestResponse) string {
	if r.Result == nil {
		return ""
	}
	for _, c := range r.Result.Checks {
		if !c.Passed {
			return c.Name + ": " + c.Detail
		}
	}
	return ""
}

// TestReplicasShareReplayProtection is issue 19's acceptance test: two
// replicas of the service behind one redis-server. A submission judged at
// replica A and replayed to replica B is refused there (and at A); with
// the store down, submissions are refused with 503 (fail closed) and
// logged; with the store back, the same submission is judged, once.
func TestReplicasShareReplayProtection(t *testing.T) {
	rs := redistest.New(t)
	store := newStore(t, rs.URL(), redisstore.Options{})
	f, host, evidence := newFleet(t, 2, store)

	// A nonce minted by B, used at A: trusted; replayed to B and to A:
	// refused as used.
	req := evidence(host, f.nonce(t, 1, host))
	r, st, _ := f.attest(t, 0, req)
	if st != http.StatusOK || !r.Trusted || r.Credential == nil {
		t.Fatalf("first use at A: %d %s %q", st, failedCheck(r), r.Error)
	}
	for _, replica := range []int{1, 0} {
		r, st, _ = f.attest(t, replica, req)
		if st != http.StatusForbidden || r.Trusted || r.Credential != nil || !strings.HasPrefix(failedCheck(r), "nonce: ") ||
			!strings.Contains(failedCheck(r), "already judged") {
			t.Fatalf("replay at replica %d: %d trusted=%v %q", replica, st, r.Trusted, failedCheck(r))
		}
	}
	if d := f.logs[1].decisions(t); len(d) != 1 || d[0]["decision"] != "not_trusted" {
		t.Fatalf("B's decision log: %v", d)
	}

	// The store goes down: refused, 503 with Retry-After, logged.
	rs.Stop()
	req2 := evidence(host, f.nonce(t, 0, host))
	r, st, hdr := f.attest(t, 1, req2)
	if st != http.StatusServiceUnavailable || r.Trusted || r.Credential != nil || hdr.Get("Retry-After") == "" ||
		!strings.Contains(r.Error, "replay store") {
		t.Fatalf("store down: %d trusted=%v Retry-After %q %q", st, r.Trusted, hdr.Get("Retry-After"), r.Error)
	}
	d := f.logs[1].decisions(t)
	last := d[len(d)-1]
	if last["decision"] != "error" || last["level"] != "ERROR" || !strings.Contains(last["reason"].(string), "replay store unavailable") {
		t.Fatalf("store down, decision log: %v", last)
	}

	// Back (empty, as a restarted store without persistence is): the same
	// submission is judged once, then refused at either replica.
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	r, st, _ = f.attest(t, 1, req2)
	if st != http.StatusOK || !r.Trusted {
		t.Fatalf("store back: %d %s %q", st, failedCheck(r), r.Error)
	}
	for _, replica := range []int{0, 1} {
		if r, st, _ = f.attest(t, replica, req2); st != http.StatusForbidden || r.Trusted {
			t.Fatalf("store back, replay at replica %d: %d", replica, st)
		}
	}
}

// TestReplicasConcurrentReplay: one submission sent to both replicas at
// once, many times over: exactly one of each pair is trusted.
func TestReplicasConcurrentReplay(t *testing.T) {
	rs := redistest.New(t)
	store := newStore(t, rs.URL(), redisstore.Options{})
	f, host, evidence := newFleet(t, 2, store)
	for i := range 10 {
		req := evidence(host, f.nonce(t, i%2, host))
		var wg sync.WaitGroup
		status := make([]int, 2)
		for replica := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := json.Marshal(req)
				resp, err := http.Post(f.urls[replica]+service.PathAttest, "application/json", bytes.NewReader(b))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status[replica] = resp.StatusCode
			}()
		}
		wg.Wait()
		ok := 0
		for _, s := range status {
			if s == http.StatusOK {
				ok++
			} else if s != http.StatusForbidden {
				t.Fatalf("round %d: status %v", i, status)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of 2 trusted (%v)", i, ok, status)
		}
	}
}

// TestReplicaStoreTimeout: a store that accepts connections and never
// answers (a stopped process, a black-holed network) costs a submission
// the store's read timeout, not the verification timeout, and refuses it.
func TestReplicaStoreTimeout(t *testing.T) {
	ln := blackHole(t)
	store := newStore(t, "redis://"+ln, redisstore.Options{DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	f, host, evidence := newFleet(t, 1, store)
	start := time.Now()
	r, st, _ := f.attest(t, 0, evidence(host, f.nonce(t, 0, host)))
	if st != http.StatusServiceUnavailable || r.Trusted {
		t.Fatalf("black hole: %d %q", st, r.Error)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("black hole: the submission took %s", took)
	}
	if err := store.Ping(context.Background()); err == nil || errors.Is(err, service.ErrNonceReplayed) {
		t.Errorf("black hole: Ping %v", err)
	}
}

// blackHole listens on loopback and accepts connections without ever
// answering; it returns the address.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
