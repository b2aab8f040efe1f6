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
	"github.com/codesignval/csv/internal/testenv"
)

// TestOpenErrors: what goes wrong opening a TPM is said clearly and can be
// told apart with errors.Is.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("not a TPM"), 0o600)
	// A socket nothing listens on.
	dead := testenv.DeadSocket(t, dir)
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
// from a request the service did not judge (busy, malformed, internal) and
// from an answer that contradicts itself (a 200 without a credential or
// that is not trusted, a 403 that says trusted), which is never a trusted
// outcome. A refusal always says why, or that the service did not.
func TestSubmitAnswers(t *testing.T) {
	const cred = `"credential":{"format":"token","id_object":"AA==","encrypted_secret":"AA==","ciphertext":"AA=="}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // refused, invalid, trusted or http
		msg    string
		retry  string
	}{
		{"refused", 403, `{"verdict":"not trusted","result":{"checks":[{"name":"nonce","passed":false,"detail":"already used"}]}}`, "refused",
			"client: attestation refused: nonce: already used", ""},
		{"refused without a reason", 403, `{"verdict":"not trusted"}`, "refused",
			"client: attestation refused (403 Forbidden), and the service gave no reason: its answer names no failed check and no error", ""},
		{"refused with an error only", 403, `{"verdict":"not trusted","error":"no"}`, "refused", "client: attestation refused: no", ""},
		{"trusted", 200, `{"verdict":"trusted","trusted":true,"result":{"verdict":"trusted","trusted":true},` + cred + `}`, "trusted", "", ""},
		{"trusted without credential", 200, `{"verdict":"trusted","trusted":true}`, "invalid",
			"client: the service's answer contradicts itself: 200 OK, but it holds no credential: no credential was received", ""},
		{"200 not trusted", 200, `{"verdict":"not trusted","result":{"verdict":"not trusted"},` + cred + `}`, "invalid",
			`200 OK, but its verdict is "not trusted" (trusted: false), its result's verdict is "not trusted"`, ""},
		{"200 whose result is not trusted", 200, `{"verdict":"trusted","trusted":true,"result":{"verdict":"not trusted"},` + cred + `}`, "invalid",
			`200 OK, but its result's verdict is "not trusted"`, ""},
		{"403 that says trusted", 403, `{"verdict":"trusted","trusted":true,"result":{"verdict":"trusted","trusted":true}}`, "invalid",
			"403 Forbidden, but its verdict or result says trusted: the host is not trusted", ""},
		{"403 whose result says trusted", 403, `{"verdict":"not trusted","result":{"verdict":"trusted","trusted":true}}`, "invalid",
			"403 Forbidden, but its verdict or result says trusted", ""},
		{"busy", 503, `{"error":"busy"}`, "http", "", "1"},
		{"bad request", 400, `{"error":"ak_public is required"}`, "http", "", ""},
		{"not JSON", 500, `oops`, "http", "", ""},
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
			if tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
				t.Errorf("err = %v, want %q", err, tc.msg)
			}
			var re *client.RefusedError
			var he *client.HTTPError
			switch tc.want {
			case "refused":
				if !errors.As(err, &re) || !errors.Is(err, client.ErrRefused) || errors.Is(err, client.ErrInvalidAnswer) || r == nil || r.Trusted {
					t.Fatalf("err = %v", err)
				}
			case "invalid":
				if !errors.Is(err, client.ErrInvalidAnswer) || errors.Is(err, client.ErrRefused) || errors.As(err, &he) || r != nil {
					t.Fatalf("err = %v, answer %+v", err, r)
				}
			case "trusted":
				if err != nil || r == nil || !r.Trusted || r.Credential == nil {
					t.Fatalf("err = %v", err)
				}
			default:
				if !errors.As(err, &he) || he.Status != tc.status || he.RetryAfter != tc.retry || errors.Is(err, client.ErrRefused) {
					t.Fatalf("err = %v", err)
				}
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
