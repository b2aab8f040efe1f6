//go:build unix

package attest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/service/servicetest"
)

// TestServeSIGHUPWhileStarting: a SIGHUP that arrives while serve is
// still reading its configuration and policies does not end it (SIGHUP's
// default action): serve starts, serves, and does the reload once up.
func TestServeSIGHUPWhileStarting(t *testing.T) {
	f := newServeFixture(t, "")
	url, logs, stop := startServeWith(t, f, func(o *ServeOptions) {
		o.starting = func() { sendHUP(t) }
	})
	for i := 0; !strings.Contains(logs.String(), `"msg":"policy reloaded"`); i++ {
		if i > 500 {
			t.Fatalf("no reload after the SIGHUP at start:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := attestOnce(t, url, f, h); st != http.StatusOK {
		t.Fatalf("attest: %d", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
