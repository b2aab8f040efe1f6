package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/redisstore/redistest"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/cli/cmdutil"
)

// withReplayStore sets --replay-store as the command line would.
func withReplayStore(url string) func(*ServeOptions) {
	return func(o *ServeOptions) {
		o.ReplayStore = url
		changed := o.changed
		o.changed = func(name string) bool { return name == "replay-store" || changed(name) }
	}
}

// TestServeReplayStore: two csv attest serve replicas with --replay-store
// on one redis-server: a submission judged at one is refused at the other.
// A store that does not answer (or refuses the password) stops serve from
// starting, and the error does not show the password.
func TestServeReplayStore(t *testing.T) {
	rs := redistest.New(t, "--requirepass", "fleet-pw-42")
	f := newServeFixture(t, "")
	storeURL := "redis://:fleet-pw-42@" + rs.Addr()
	urlA, logsA, _ := startServeWith(t, f, withReplayStore(storeURL))
	urlB, _, _ := startServeWith(t, f, withReplayStore(storeURL))
	if strings.Contains(logsA.String(), "fleet-pw-42") || !strings.Contains(logsA.String(), `"url":"redis://:xxxxx@`) {
		t.Errorf("serve's log shows the password, or not the store: %s", logsA)
	}
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		t.Fatal(err)
	}
	post := func(url, path string, in, out any) int {
		t.Helper()
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
	if st := post(urlB, service.PathNonce, h.NonceRequest(), &n); st != http.StatusOK {
		t.Fatalf("nonce: %d", st)
	}
	req, err := h.Evidence(&n, f.log, f.pcrs)
	if err != nil {
		t.Fatal(err)
	}
	var r service.AttestResponse
	if st := post(urlA, service.PathAttest, req, &r); st != http.StatusOK || !r.Trusted {
		t.Fatalf("at A: %d %q", st, r.Error)
	}
	r = service.AttestResponse{}
	if st := post(urlB, service.PathAttest, req, &r); st != http.StatusForbidden || r.Trusted || r.Credential != nil {
		t.Fatalf("replayed at B: %d trusted=%v", st, r.Trusted)
	}

	for name, u := range map[string]string{
		"wrong password": "redis://:wrong-pw-77@" + rs.Addr(),
		"no server":      "redis://:wrong-pw-77@127.0.0.1:1",
	} {
		t.Run(name, func(t *testing.T) {
			var opts *ServeOptions
			cmd := NewCmdServe(&cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}},
				func(_ context.Context, o *ServeOptions) error { opts = o; return nil })
			cmd.SetArgs([]string{"--config", f.config, "--replay-store", u})
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			err := runServe(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), "replay store") || strings.Contains(err.Error(), "wrong-pw-77") {
				t.Fatalf("serve: %v", err)
			}
		})
	}
}

// TestServeReplayStoreConfig: nonce: replay_store and replay_store_ca in
// the configuration file (the CA files relative to it), and a CA without a
// store refused.
func TestServeReplayStoreConfig(t *testing.T) {
	f := newServeFixture(t, "")
	b, err := os.ReadFile(f.config)
	if err != nil {
		t.Fatal(err)
	}
	write := func(extra string) {
		t.Helper()
		if err := os.WriteFile(f.config, bytes.Replace(b, []byte("  ttl: 1m\n"), []byte("  ttl: 1m\n"+extra), 1), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  replay_store: rediss://cache.example:6380/3\n  replay_store_ca: [redis-ca.pem]\n")
	c, _, err := loadServeConfig(&ServeOptions{ConfigFile: f.config, Listen: ":8443"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Nonce.ReplayStore != "rediss://cache.example:6380/3" || len(c.Nonce.ReplayStoreCA) != 1 ||
		c.Nonce.ReplayStoreCA[0] != filepath.Join(f.dir, "redis-ca.pem") {
		t.Fatalf("nonce: %+v", c.Nonce)
	}
	write("  replay_store_ca: [redis-ca.pem]\n")
	if _, _, err := loadServeConfig(&ServeOptions{ConfigFile: f.config, Listen: ":8443"}); err == nil || !strings.Contains(err.Error(), "replay_store_ca without a replay_store") {
		t.Fatalf("a CA without a store: %v", err)
	}
}
