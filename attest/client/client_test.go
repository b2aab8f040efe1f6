package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/service"
)

// TestOpenErrors: what goes wrong opening a TPM is said clearly and can be
// told apart with errors.Is.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("not a TPM"), 0o600)
	// A socket nothing listens on: bound, then the listener closed
	// without removing the file.
	dead := filepath.Join(dir, "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	// A socket that accepts and answers garbage.
	liar := filepath.Join(dir, "liar.sock")
	l2, err := net.Listen("unix", liar)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	go func() {
		for {
			c, err := l2.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	for _, tc := range []struct {
		path string
		want error
		msg  string
	}{
		{filepath.Join(dir, "nothing"), client.ErrNoTPM, "no TPM at"},
		{client.DefaultDevice + "-absent", client.ErrNoTPM, "check the path"},
		{dead, client.ErrNotListening, "is swtpm running?"},
		{regular, client.ErrNotTPM, "neither a character device nor a socket"},
		{liar, client.ErrNotTPM, "not a TPM 2.0"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			c, err := client.Open(tc.path)
			if err == nil {
				c.Close()
				t.Fatal("opened")
			}
			var oe *client.OpenError
			if !errors.Is(err, tc.want) || !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked")
		os.Mkdir(locked, 0o700)
		l3, err := net.Listen("unix", filepath.Join(locked, "tpm.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer l3.Close()
		os.Chmod(filepath.Join(locked, "tpm.sock"), 0)
		if _, err := client.Open(filepath.Join(locked, "tpm.sock")); !errors.Is(err, client.ErrPermission) {
			t.Errorf("socket without permission: %v", err)
		}
	}
}

// TestSubmitAnswers: the client tells a refusal (403, with the checks)
// from a request the service did not judge (busy, malformed, internal).
func TestSubmitAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		refused bool
		retry   string
	}{
		{"refused", 403, `{"verdict":"not trusted","result":{"checks":[{"name":"nonce","passed":false,"detail":"already used"}]}}`, true, ""},
		{"trusted without credential", 200, `{"verdict":"trusted","trusted":true}`, true, ""},
		{"busy", 503, `{"error":"busy"}`, false, "1"},
		{"bad request", 400, `{"error":"ak_public is required"}`, false, ""},
		{"not JSON", 500, `oops`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != service.PathAttest || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("%s %s", r.URL.Path, r.Header.Get("Content-Type"))
				}
				if tc.retry != "" {
					w.Header().Set("Retry-After", tc.retry)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer ts.Close()
			c := &client.Client{URL: ts.URL + "/"}
			r, err := c.Submit(context.Background(), &service.AttestRequest{})
			if tc.refused {
				var re *client.RefusedError
				if !errors.As(err, &re) || !errors.Is(err, client.ErrRefused) || r == nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var he *client.HTTPError
			if !errors.As(err, &he) || he.Status != tc.status || he.RetryAfter != tc.retry || errors.Is(err, client.ErrRefused) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestNoRedirects: the client does not follow a redirect (it would post
// the evidence again, wherever the answer points), whatever the HTTP
// client's own CheckRedirect says, and the error says where it led.
func TestNoRedirects(t *testing.T) {
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"verdict":"trusted","trusted":true}`))
	}))
	defer elsewhere.Close()
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, status)
		}))
		for _, hc := range []*http.Client{nil, {CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}} {
			c := &client.Client{URL: svc.URL, HTTP: hc}
			_, err := c.Submit(context.Background(), &service.AttestRequest{Nonce: "n"})
			if !errors.Is(err, client.ErrRedirected) || !strings.Contains(err.Error(), "redirected") ||
				!strings.Contains(err.Error(), elsewhere.URL+"/v1/attest") {
				t.Errorf("%d: err = %v", status, err)
			}
		}
		svc.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the evidence was sent %d times where the redirect pointed", n)
	}
}
