package service_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/service"
)

// TestMalformed: requests that cannot be judged get 4xx with a reason,
// never a credential, and a decision log line.
func TestMalformed(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.MaxBodyBytes = 64 << 10 })
	h := e.hosts[0]
	good := e.evidence(t, h)
	goodJSON, _ := json.Marshal(good)
	with := func(f func(r *service.AttestRequest)) string {
		var r service.AttestRequest
		json.Unmarshal(goodJSON, &r)
		f(&r)
		b, _ := json.Marshal(r)
		return string(b)
	}
	tests := []struct {
		name, method, ctype, body string
		want                      int
		msg                       string
	}{
		{"GET", http.MethodGet, "", "", http.StatusMethodNotAllowed, "use POST"},
		{"wrong content type", "POST", "text/plain", string(goodJSON), http.StatusUnsupportedMediaType, "application/json"},
		{"empty body", "POST", "application/json", "", http.StatusBadRequest, "empty body"},
		{"not JSON", "POST", "application/json", "{nope", http.StatusBadRequest, "malformed JSON"},
		{"unknown field", "POST", "application/json", `{"nonce":"x","admin":true}`, http.StatusBadRequest, `unknown field "admin"`},
		{"trailing data", "POST", "application/json", string(goodJSON) + `{}`, http.StatusBadRequest, "data after the JSON object"},
		{"wrong type", "POST", "application/json", `{"quotes":"all of them"}`, http.StatusBadRequest, "malformed JSON"},
		{"bad base64", "POST", "application/json", `{"event_log":"@@@"}`, http.StatusBadRequest, "malformed JSON"},
		{"oversized body", "POST", "application/json", `{"event_log":"` + strings.Repeat("A", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "limit"},
		{"no AK", "POST", "application/json", with(func(r *service.AttestRequest) { r.AKPublic = nil }), http.StatusBadRequest, "ak_public is required"},
		{"AK not a key", "POST", "application/json", with(func(r *service.AttestRequest) { r.AKPublic = []byte{0, 1, 2} }), http.StatusBadRequest, "ak_public"},
		{"no EK", "POST", "application/json", with(func(r *service.AttestRequest) { r.EKPublic = nil }), http.StatusBadRequest, "ek_public or ek_certificate"},
		{"EK certificate garbage", "POST", "application/json", with(func(r *service.AttestRequest) { r.EKCertificate = []byte("x") }), http.StatusBadRequest, "ek_certificate"},
		{"no nonce", "POST", "application/json", with(func(r *service.AttestRequest) { r.Nonce = "" }), http.StatusBadRequest, "nonce is required"},
		{"no quotes", "POST", "application/json", with(func(r *service.AttestRequest) { r.Quotes = nil }), http.StatusBadRequest, "quotes"},
		{"too many quotes", "POST", "application/json", with(func(r *service.AttestRequest) {
			for len(r.Quotes) < 9 {
				r.Quotes = append(r.Quotes, r.Quotes[0])
			}
		}), http.StatusBadRequest, "quotes"},
		{"quote too big", "POST", "application/json", with(func(r *service.AttestRequest) { r.Quotes[0].Attest = make([]byte, 17<<10) }), http.StatusBadRequest, "quotes[0]"},
		{"PCR index", "POST", "application/json", with(func(r *service.AttestRequest) { r.PCRs["sha256"]["24"] = strings.Repeat("00", 32) }), http.StatusBadRequest, "PCR index"},
		{"PCR index not canonical", "POST", "application/json", with(func(r *service.AttestRequest) { r.PCRs["sha256"]["07"] = strings.Repeat("00", 32) }), http.StatusBadRequest, "PCR index"},
		{"PCR value", "POST", "application/json", with(func(r *service.AttestRequest) { r.PCRs["sha256"]["0"] = "00" }), http.StatusBadRequest, "32 bytes of hex"},
		{"PCR bank", "POST", "application/json", with(func(r *service.AttestRequest) { r.PCRs["md5"] = map[string]string{} }), http.StatusBadRequest, "unknown bank"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.ts.URL+service.PathAttest, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var r service.AttestResponse
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.want || !strings.Contains(r.Error, tc.msg) || r.Credential != nil || r.Trusted {
				t.Fatalf("status %d (want %d), error %q (want %q)", resp.StatusCode, tc.want, r.Error, tc.msg)
			}
			d := e.log.decisions(t)
			if last := d[len(d)-1]; last["decision"] != "bad_request" || last["status"] != float64(tc.want) {
				t.Errorf("decision log %v", last)
			}
		})
	}
	// A body over the cap without Content-Length (chunked) is cut off too.
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"event_log":"`))
		for i := 0; i < 80; i++ {
			pw.Write(bytes.Repeat([]byte("A"), 1<<10))
		}
		pw.Write([]byte(`"}`))
		pw.Close()
	}()
	resp, err := http.Post(e.ts.URL+service.PathAttest, "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversized body: %d", resp.StatusCode)
	}
	// Nonce requests are checked too.
	for body, want := range map[string]string{
		`{"ak_name":"zz","ek_key_sha256":""}`:                       "ak_name",
		`{"ak_name":"000b` + strings.Repeat("00", 32) + `"}`:        "ek_key_sha256",
		`{"ak_name":"000b","ek_key_sha256":"` + zeros(32) + `"}`:    "ak_name",
		`{"ak_name":"000b` + zeros(32) + `","x":1}`:                 "unknown field",
		`{"ak_name":"000b` + zeros(600) + `","ek_key_sha256":"00"}`: "ak_name",
	} {
		resp, err := http.Post(e.ts.URL+service.PathNonce, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var er service.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(er.Error, want) {
			t.Errorf("nonce %s: %d %q, want 400 %q", body, resp.StatusCode, er.Error, want)
		}
	}
}

func zeros(n int) string { return strings.Repeat("00", n) }

// TestBusy: with every verification slot taken, a submission gets 503 and
// Retry-After at once (QueueTimeout < 0) or after QueueTimeout; and a
// queued one gets through when a slot frees.
func TestBusy(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.MaxConcurrentVerifications = 1; c.QueueTimeout = 500 * time.Millisecond })
	h := e.hosts[0]
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	var block atomic.Bool
	block.Store(true)
	e.srv.SetTestHook(func(context.Context) {
		if block.Load() {
			entered <- struct{}{}
			<-release
		}
	})
	first := make(chan int)
	req1 := e.evidence(t, h)
	go func() {
		_, st := e.attest(t, req1)
		first <- st
	}()
	<-entered
	block.Store(false)
	start := time.Now()
	b, _ := json.Marshal(e.evidence(t, h))
	resp, err := http.Post(e.ts.URL+service.PathAttest, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("answered after %s, before the queue timeout", waited)
	}
	// A queued request gets the slot when it frees.
	second := make(chan int)
	req2 := e.evidence(t, h)
	go func() {
		_, st := e.attest(t, req2)
		second <- st
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if st := <-first; st != http.StatusOK {
		t.Errorf("first: %d", st)
	}
	if st := <-second; st != http.StatusOK {
		t.Errorf("queued: %d", st)
	}
	d := e.log.decisions(t)
	busy := 0
	for _, l := range d {
		if l["decision"] == "busy" {
			busy++
		}
	}
	if busy != 1 {
		t.Errorf("%d busy decisions logged, want 1", busy)
	}
}

// TestPanic: a panic while judging is a 500 and a log line, and the
// service goes on.
func TestPanic(t *testing.T) {
	e := newEnv(t)
	var once sync.Once
	e.srv.SetTestHook(func(context.Context) { once.Do(func() { panic("boom") }) })
	r, st := e.attest(t, e.evidence(t, e.hosts[0]))
	if st != http.StatusInternalServerError || r.Credential != nil {
		t.Fatalf("status %d", st)
	}
	found := false
	for _, l := range e.log.Lines(t) {
		if l["msg"] == "internal error" && l["panic"] == "boom" && l["level"] == "ERROR" {
			found = true
		}
	}
	if !found {
		t.Error("no log line for the panic")
	}
	if _, st := e.attest(t, e.evidence(t, e.hosts[0])); st != http.StatusOK {
		t.Fatalf("after the panic: %d", st)
	}
}

// TestReplayCacheFull: when the used-nonce cache is full, submissions are
// refused with 503 (nothing is forgotten), until the nonces expire.
func TestReplayCacheFull(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.MaxUsedNonces = 2 })
	h := e.hosts[0]
	for i := 0; i < 2; i++ {
		if _, st := e.attest(t, e.evidence(t, h)); st != http.StatusOK {
			t.Fatalf("%d: %d", i, st)
		}
	}
	r, st := e.attest(t, e.evidence(t, h))
	if st != http.StatusServiceUnavailable || !strings.Contains(r.Error, "used-nonce cache full") {
		t.Fatalf("full cache: %d %q", st, r.Error)
	}
	// Two periods later the old entries are gone.
	e.clock.Advance(2 * (2*time.Minute + 5*time.Second))
	if _, st := e.attest(t, e.evidence(t, h)); st != http.StatusOK {
		t.Fatalf("after expiry: %d", st)
	}
}

// serve runs Serve on a loopback listener; it returns the address and a
// function that stops it and returns Serve's error.
func serve(t *testing.T, srv *service.Server) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(10 * time.Second):
				serr = errors.New("Serve did not return")
			}
		})
		return serr
	}
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop
}

// TestTimeouts: Serve drops a client that sends its headers too slowly
// (ReadHeaderTimeout) or its body too slowly (ReadTimeout); a healthy
// client is served meanwhile.
func TestTimeouts(t *testing.T) {
	e := newEnv(t, func(c *service.Config) {
		c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = 200*time.Millisecond, 400*time.Millisecond, time.Second, time.Second
	})
	addr, _ := serve(t, e.srv)
	dropped := func(t *testing.T, send func(c net.Conn)) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		send(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("served: %d", resp.StatusCode)
			}
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("dropped after %s", took)
		}
	}
	t.Run("slow headers", func(t *testing.T) {
		dropped(t, func(c net.Conn) {
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n", service.PathAttest) // and nothing more
		})
	})
	t.Run("slow body", func(t *testing.T) {
		dropped(t, func(c net.Conn) {
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", service.PathAttest)
		})
	})
	t.Run("healthy", func(t *testing.T) {
		resp, err := http.Get("http://" + addr + service.PathHealth)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})
}

// TestGracefulShutdown: on cancel, /healthz turns 503, a verification in
// progress completes with its credential, and Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	addr, stop := serve(t, e.srv)
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	e.srv.SetTestHook(func(context.Context) {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	h := e.hosts[0]
	req := e.evidence(t, h)
	b, _ := json.Marshal(req)
	type result struct {
		status int
		r      service.AttestResponse
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+addr+service.PathAttest, "application/json", bytes.NewReader(b))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var r service.AttestResponse
		err = json.NewDecoder(resp.Body).Decode(&r)
		got <- result{resp.StatusCode, r, err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Draining: new connections are refused once the listener closes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections while shutting down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	r := <-got
	if r.err != nil || r.status != http.StatusOK || r.r.Credential == nil {
		t.Fatalf("request in progress: %v %d", r.err, r.status)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The draining health check, on the handler directly.
	if !draining(t, e) {
		t.Error("/healthz does not report draining after shutdown")
	}
}

func draining(t *testing.T, e *env) bool {
	resp, err := http.Get(e.ts.URL + service.PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusServiceUnavailable
}
