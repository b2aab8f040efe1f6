package tsahttp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

func TestNewRefusesURLs(t *testing.T) {
	for _, u := range []string{"ftp://tsa.example.com", "tsa.example.com", "http://", "file:///etc/passwd", "%zz"} {
		if _, err := tsahttp.New(u, nil); !errors.Is(err, signing.ErrTimestamp) || !strings.Contains(err.Error(), "not an http or https URL") {
			t.Errorf("New(%q) = %v, want a timestamp error saying the URL is not http", u, err)
		}
	}
}

// TestRoundTrip checks what the client sends and refuses: the RFC 3161
// content types, a non-200 answer, an answer over MaxResponse, and that
// errors name the TSA without its credentials.
func TestRoundTrip(t *testing.T) {
	var status, size int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/timestamp-query" || r.Header.Get("Accept") != "application/timestamp-reply" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
		w.Write(make([]byte, size))
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:secret@", 1)
	c, err := tsahttp.New(u, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.String(), "secret") {
		t.Errorf("String() = %q shows the password", c.String())
	}
	status, size = http.StatusOK, 100
	if body, err := c.RoundTrip(t.Context(), []byte{0x30, 0}); err != nil || len(body) != 100 {
		t.Errorf("RoundTrip = %d bytes, %v; want 100, nil", len(body), err)
	}
	for _, tc := range []struct {
		status, size int
		says         string
	}{
		{http.StatusInternalServerError, 10, "HTTP 500"},
		{http.StatusOK, 1<<20 + 1, "over"},
	} {
		status, size = tc.status, tc.size
		_, err := c.RoundTrip(t.Context(), []byte{0x30, 0})
		if !errors.Is(err, signing.ErrTimestamp) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "secret") {
			t.Errorf("status %d, %d bytes: %v; want a timestamp error saying %q without the password", tc.status, tc.size, err, tc.says)
		}
	}
	// Stamp refuses what is not a TimeStampResp (the rest of Stamp is
	// tested with real TSAs in authenticode/pe, bundle and manifest).
	status, size = http.StatusOK, 10
	if _, _, err := tsahttp.Request(t.Context(), u, srv.Client(), []byte("signature")); !errors.Is(err, signing.ErrTimestamp) || !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("Request on zeros: %v, want ErrTimestamp and ErrMalformed", err)
	}
}
