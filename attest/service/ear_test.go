package service_test

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/veraison/ear"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/eartest"
)

// TestEARCredential: with FormatEAR a trusted host's credential, once its
// TPM opens it, is an EAR the EAR library (github.com/veraison/ear)
// verifies with the CA's public key, stating an affirming boot with a
// genuine TPM (its EK is on the allowlist), bound to the service's nonce
// and the AK, and refused once a byte changes; with an EK trusted only
// through TrustAnyEKUnsafe it says nothing of the hardware. The service
// runs on the real clock here: the library checks the JWT's times against
// it.
func TestEARCredential(t *testing.T) {
	ca, caKey, err := servicetest.NewCA("Test EAR CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	useEAR := func(c *service.Config) {
		c.CredentialFormat, c.CA, c.CAKey, c.Now, c.VerifierBuild, c.TokenIssuer = service.FormatEAR, ca, caKey, time.Now, "csv test", "ear-issuer"
	}
	e := newEnv(t, useEAR)
	for i, h := range e.hosts {
		t.Run([]string{"ecc", "rsa", "ecc384"}[i], func(t *testing.T) {
			req := e.evidence(t, h)
			r, st := e.attest(t, req)
			if st != http.StatusOK || !r.Trusted || r.Credential == nil || r.Credential.Format != service.FormatEAR {
				t.Fatalf("status %d, verdict %q, failed %v, error %q", st, r.Verdict, failed(r), r.Error)
			}
			tok, err := h.Open(r.Credential)
			if err != nil {
				t.Fatal(err)
			}
			ar, err := eartest.Verify(t, tok, ca.PublicKey)
			if err != nil {
				t.Fatalf("the EAR library refuses the credential: %v\n%s", err, tok)
			}
			want := ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3, Hardware: 2}
			if got := eartest.Vector(t, ar, attest.EARSubmodule); got != want {
				t.Errorf("vector %+v, want %+v", got, want)
			}
			if got := eartest.Status(t, ar, attest.EARSubmodule); got != ear.TrustTierAffirming {
				t.Errorf("status %s", got)
			}
			raw, err := base64.RawURLEncoding.DecodeString(req.Nonce)
			if err != nil {
				raw, _ = base64.StdEncoding.DecodeString(req.Nonce)
			}
			if ar.Nonce == nil || *ar.Nonce != base64.RawURLEncoding.EncodeToString(raw) || *ar.VerifierID.Build != "csv test" {
				t.Errorf("eat_nonce %v (nonce %s), build %v", ar.Nonce, req.Nonce, *ar.VerifierID.Build)
			}
			if p := ar.Submods[attest.EARSubmodule].AppraisalPolicyID; p == nil || !strings.HasPrefix(*p, "csv:attest/test-fleet@sha256:") || !strings.Contains(*p, ";ci/") {
				t.Errorf("appraisal policy %v", p)
			}
			// The registered claims, read as any JWT library would.
			body, _ := base64.RawURLEncoding.DecodeString(strings.Split(string(tok), ".")[1])
			for _, c := range []string{`"iss":"ear-issuer"`, `"sub":"` + hex.EncodeToString(h.AKName()) + `"`, `"exp":`, `"nbf":`, `"jti":`} {
				if !strings.Contains(string(body), c) {
					t.Errorf("claims lack %s: %s", c, body)
				}
			}
			bad := []byte(string(tok))
			bad[strings.IndexByte(string(tok), '.')+20] ^= 0x01
			if _, err := eartest.Verify(t, bad, ca.PublicKey); err == nil {
				t.Error("a changed byte: accepted")
			}
			if _, err := eartest.Verify(t, tok, e.ca.PublicKey); err == nil {
				t.Error("accepted with another CA's key")
			}
		})
	}

	stranger := newHost(t, servicetest.ECC, servicetest.ECC)
	e2 := newEnv(t, useEAR, func(c *service.Config) { c.EKAllowlist, c.TrustAnyEKUnsafe = nil, true })
	r, st := e2.attest(t, e2.evidence(t, stranger))
	if st != http.StatusOK {
		t.Fatalf("TrustAnyEKUnsafe: %d %v", st, failed(r))
	}
	tok, err := stranger.Open(r.Credential)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := eartest.Verify(t, tok, ca.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if v := eartest.Vector(t, ar, attest.EARSubmodule); v.Hardware != ear.NoClaim || v.InstanceIdentity != 2 {
		t.Errorf("TrustAnyEKUnsafe: vector %+v, want no hardware claim", v)
	}
}
