package service_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/cipolicy"
)

// TestReload: a good new policy is used by the requests that follow; a bad
// one (that does not parse, or that judges boot components without a code
// integrity policy) is refused and the old one stays; reloads during
// requests drop none of them (run with -race).
func TestReload(t *testing.T) {
	b := secureBoot(t)
	var current atomic.Value
	current.Store([2]string{b.policy, b.ciPolicy})
	e := newEnv(t, func(c *service.Config) {
		c.MaxUsedNoncesPerEK = 100 // one host attests some 45 times
		c.LoadPolicy = func() (*service.Policy, error) {
			p := current.Load().([2]string)
			return loadPolicy(p[0], p[1])()
		}
	})
	h := e.hosts[0]
	attestOnce := func() (*service.AttestResponse, int) { return e.attest(t, e.evidence(t, h)) }
	if _, st := attestOnce(); st != http.StatusOK {
		t.Fatal(st)
	}

	// A new CI policy that no longer allows the boot application.
	current.Store([2]string{strings.Replace(b.policy, "test-fleet", "test-fleet-v2", 1),
		"format: csv-policy/v1\nname: boot-v2\nrules:\n  - {id: other, action: allow, authenticode_sha256: " + strings.Repeat("ab", 32) + ", scenarios: [boot]}\n"})
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	r, st := attestOnce()
	if st != http.StatusForbidden || r.Result.Policy.Name != "test-fleet-v2" || failed(r)[0] != "policy.boot-components" {
		t.Fatalf("after reload: %d %v", st, failed(r))
	}

	// Bad policies are refused; v2 stays.
	for name, p := range map[string][2]string{
		"syntax":         {"format: csv-attest-policy/v1\nname: [\n", b.ciPolicy},
		"unknown field":  {b.policy + "secure_boot_please: yes\n", b.ciPolicy},
		"CI policy":      {b.policy, "format: csv-policy/v1\nname: x\nrules: 7\n"},
		"no CI for boot": {b.policy, ""},
	} {
		current.Store(p)
		err := e.srv.Reload()
		if err == nil {
			t.Fatalf("%s: Reload accepted a bad policy", name)
		}
		if name == "syntax" && !errors.Is(err, cipolicy.ErrInvalidPolicy) {
			t.Errorf("%s: %v is not ErrInvalidPolicy", name, err)
		}
		if got := e.srv.Policy().Attestation.Name; got != "test-fleet-v2" {
			t.Fatalf("%s: policy in use is %q", name, got)
		}
	}
	refused := 0
	for _, l := range e.log.Lines(t) {
		if l["msg"] == "policy reload refused: the policy in use stays" && l["level"] == "ERROR" && l["policy"] == "test-fleet-v2" {
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d refusals logged, want 4", refused)
	}

	// Reloads while requests run: every request is judged by a policy
	// that was loaded whole, none fails for another reason. The good
	// policy is in use before the requests start (v2 refuses them).
	current.Store([2]string{b.policy, b.ciPolicy})
	if err := e.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.srv.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var okCount atomic.Int32
	var wg2 sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for j := 0; j < 10; j++ {
				req, err := h.Evidence(e.nonce(t, h), b.log, b.pcrs)
				if err != nil {
					t.Error(err)
					return
				}
				if r, st := e.attest(t, req); st == http.StatusOK {
					okCount.Add(1)
				} else {
					t.Errorf("during reloads: %d %v %q", st, failed(r), r.Error)
				}
			}
		}()
	}
	wg2.Wait()
	close(stop)
	wg.Wait()
	if okCount.Load() != 40 {
		t.Errorf("%d of 40 trusted", okCount.Load())
	}
}

// TestReloadTrust: an EK taken off the allowlist by ReloadTrust is refused
// from the next request on, the others stay trusted; a Trust with no way
// to trust an EK is refused and the one in use stays.
func TestReloadTrust(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.MaxUsedNoncesPerEK = 100 })
	attest := func(i int) (*service.AttestResponse, int) { return e.attest(t, e.evidence(t, e.hosts[i])) }
	if _, st := attest(0); st != http.StatusOK {
		t.Fatalf("host 0 before: %d", st)
	}
	revoked := service.Trust{EKAllowlist: [][32]byte{e.hosts[1].EKKeySHA256(), e.hosts[2].EKKeySHA256()}}
	if err := e.srv.ReloadTrust(revoked); err != nil {
		t.Fatal(err)
	}
	if r, st := attest(0); st != http.StatusForbidden || len(failed(r)) == 0 || failed(r)[0] != "ek" {
		t.Fatalf("host 0 off the allowlist: %d %v", st, failed(r))
	}
	if _, st := attest(1); st != http.StatusOK {
		t.Fatalf("host 1, still on the allowlist: %d", st)
	}
	if err := e.srv.ReloadTrust(service.Trust{}); !errors.Is(err, service.ErrConfig) || !strings.Contains(err.Error(), "no way to trust an EK") {
		t.Fatalf("an empty trust: %v", err)
	}
	if _, st := attest(1); st != http.StatusOK {
		t.Fatalf("host 1 after a refused reload: %d", st)
	}
	if r, st := attest(0); st != http.StatusForbidden {
		t.Fatalf("host 0 after a refused reload: %d %v", st, failed(r))
	}
	msgs := map[string]bool{}
	for _, l := range e.log.Lines(t) {
		msgs[fmt.Sprint(l["msg"])] = true
	}
	if !msgs["trust reloaded"] || !msgs["trust reload refused: the trust in use stays"] {
		t.Errorf("log messages: %v", msgs)
	}
}
