package service_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/signing"
)

var testClaimsOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 42, 1}

// TestTrusted: a host whose evidence verifies and satisfies the policy gets
// a credential that its EK and AK, and only they, open: for each EK type
// (RSA-2048, ECC P-256, ECC P-384 with a SHA-384 name) and each payload
// format.
func TestTrusted(t *testing.T) {
	for _, format := range []service.CredentialFormat{service.FormatToken, service.FormatX509} {
		e := newEnv(t, func(c *service.Config) { c.CredentialFormat, c.ClaimsOID = format, testClaimsOID })
		for i, h := range e.hosts {
			t.Run(string(format)+"/"+[]string{"ecc", "rsa", "ecc384"}[i], func(t *testing.T) {
				r, st := e.attest(t, e.evidence(t, h))
				if st != http.StatusOK || !r.Trusted || r.Verdict != attest.VerdictTrusted || r.Credential == nil {
					t.Fatalf("status %d, verdict %q, failed %v, error %q", st, r.Verdict, failed(r), r.Error)
				}
				if r.Result.Claims == nil || !r.Result.Claims.SecureBootEnabled || len(r.Result.Claims.BootComponents) != 1 {
					t.Fatalf("claims: %+v", r.Result.Claims)
				}
				names := []string{}
				for _, c := range r.Result.Checks[:4] {
					names = append(names, c.Name)
				}
				if want := []string{"nonce", "ek", "pcr-selection", "ak"}; !slices.Equal(names, want) {
					t.Errorf("first checks %v, want %v", names, want)
				}
				payload, err := h.Open(r.Credential)
				if err != nil {
					t.Fatal(err)
				}
				checkPayload(t, e, format, payload, h, r)
				// Another host's EK and AK cannot open it.
				other := e.hosts[(i+1)%len(e.hosts)]
				if _, err := other.Open(r.Credential); err == nil {
					t.Error("another host opened the credential")
				}
				// The right secret with another AK Name does not decrypt.
				secret, err := h.ActivateCredential(r.Credential.IDObject, r.Credential.EncryptedSecret)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := service.Open(r.Credential, secret, other.AKName()); err == nil {
					t.Error("the payload decrypts for another AK Name")
				}
			})
		}
	}
}

func checkPayload(t *testing.T, e *env, format service.CredentialFormat, payload []byte, h *servicetest.Host, r *service.AttestResponse) {
	t.Helper()
	var cl *service.ClaimsJSON
	switch format {
	case service.FormatX509:
		c, err := x509.ParseCertificate(payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSignatureFrom(e.ca); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(e.ca)
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: epoch, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatal(err)
		}
		if got := c.NotAfter.Sub(epoch); got != time.Hour {
			t.Errorf("lifetime %s, want 1h", got)
		}
		if cl, err = service.ClaimsFromCertificate(c, testClaimsOID); err != nil {
			t.Fatal(err)
		}
		ak, err := attest.ParseAK(h.AKPublic())
		if err != nil {
			t.Fatal(err)
		}
		if !ak.Public.(*ecdsa.PublicKey).Equal(c.PublicKey) {
			t.Error("the certificate does not certify the AK")
		}
	case service.FormatToken:
		parts := strings.Split(string(payload), ".")
		if len(parts) != 3 {
			t.Fatalf("token %q", payload)
		}
		hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if !strings.Contains(string(hdr), `"alg":"ES256"`) {
			t.Errorf("header %s", hdr)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if len(sig) != 64 || !ecdsa.Verify(e.ca.PublicKey.(*ecdsa.PublicKey), d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("the token's signature does not verify with the CA key")
		}
		body, _ := base64.RawURLEncoding.DecodeString(parts[1])
		cl = &service.ClaimsJSON{}
		if err := json.Unmarshal(body, cl); err != nil {
			t.Fatal(err)
		}
		if cl.Expires != epoch.Add(time.Hour).Unix() || cl.Issuer != "Test Attestation CA" || cl.Subject != hex.EncodeToString(h.AKName()) {
			t.Errorf("registered claims %+v", cl)
		}
	}
	if cl.AKName != hex.EncodeToString(h.AKName()) || cl.Verdict != attest.VerdictTrusted || cl.NonceID != r.NonceID ||
		cl.Claims == nil || !cl.Claims.SecureBootEnabled || cl.Policy == nil || cl.Policy.Name != "test-fleet" {
		t.Errorf("claims %+v", cl)
	}
	sum := h.EKKeySHA256()
	if cl.EKKeySHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("ek_key_sha256 %s", cl.EKKeySHA256)
	}
}

// TestRefused: each way a host can fail gets 403, the failed check named,
// no credential, and a decision log line naming it.
func TestRefused(t *testing.T) {
	e := newEnv(t)
	h, other := e.hosts[0], e.hosts[1]
	tests := []struct {
		name   string
		req    func(t *testing.T) *service.AttestRequest
		failed string
	}{
		{"altered event data", func(t *testing.T) *service.AttestRequest {
			// The db variable's data, changed: the event's digest no longer
			// binds it, so PCR 7 cannot be read strictly.
			req := e.evidence(t, h)
			log := slices.Clone(e.boot.log)
			i := strings.LastIndex(string(log), "Test DB")
			log[i] = 'B'
			req.EventLog = log
			return req
		}, "policy.secure-boot"},
		{"altered event digest", func(t *testing.T) *service.AttestRequest {
			// The boot application's digest, changed (to one a policy would
			// allow, say): the log no longer replays to the quoted PCR 4.
			req := e.evidence(t, h)
			log := slices.Clone(e.boot.log)
			i := strings.Index(string(log), string(e.boot.appSHA))
			log[i] ^= 1
			req.EventLog = log
			return req
		}, "replay"},
		{"PCRs differ", func(t *testing.T) *service.AttestRequest {
			vals := e.boot.w.PCRs()
			v := vals.Get(eventlog.SHA256, 4)
			v[0] ^= 1
			req, err := h.Evidence(e.nonce(t, h), e.boot.log, vals)
			if err != nil {
				t.Fatal(err)
			}
			return req
		}, "replay"},
		{"PCRs differ, values not sent", func(t *testing.T) *service.AttestRequest {
			vals := e.boot.w.PCRs()
			vals.Get(eventlog.SHA256, 7)[0] ^= 1
			req, err := h.Evidence(e.nonce(t, h), e.boot.log, vals)
			if err != nil {
				t.Fatal(err)
			}
			req.PCRs = nil
			return req
		}, "quote[1].pcrs"},
		{"nonce of another host", func(t *testing.T) *service.AttestRequest {
			req := e.evidence(t, h)
			n := e.nonce(t, other)
			req2, err := h.Evidence(n, e.boot.log, e.boot.pcrs)
			if err != nil {
				t.Fatal(err)
			}
			_ = req
			return req2
		}, "nonce"},
		{"nonce expired", func(t *testing.T) *service.AttestRequest {
			req := e.evidence(t, h)
			e.clock.Advance(2*time.Minute + time.Second)
			t.Cleanup(func() { e.clock.Advance(-2*time.Minute - time.Second) })
			return req
		}, "nonce"},
		{"nonce forged", func(t *testing.T) *service.AttestRequest {
			req := e.evidence(t, h)
			raw, _ := base64.RawURLEncoding.DecodeString(req.Nonce)
			raw[len(raw)-1] ^= 1
			req.Nonce = base64.RawURLEncoding.EncodeToString(raw)
			return req
		}, "nonce"},
		{"another TPM's AK", func(t *testing.T) *service.AttestRequest {
			// h quotes with its AK, but presents other's AK (and asks for
			// the nonce in other's AK's name so the nonce binding holds).
			n := &service.NonceResponse{}
			nr := h.NonceRequest()
			nr.AKName = hex.EncodeToString(other.AKName())
			if st := e.post(t, service.PathNonce, nr, n); st != http.StatusOK {
				t.Fatal(st)
			}
			req, err := h.Evidence(n, e.boot.log, e.boot.pcrs)
			if err != nil {
				t.Fatal(err)
			}
			req.AKPublic = other.AKPublic()
			return req
		}, "quote[1].signature"},
		{"quote misses a PCR", func(t *testing.T) *service.AttestRequest {
			n := e.nonce(t, h)
			n.PCRSelections[0].PCRs = n.PCRSelections[0].PCRs[:8]
			req, err := h.Evidence(n, e.boot.log, e.boot.pcrs)
			if err != nil {
				t.Fatal(err)
			}
			return req
		}, "pcr-selection"},
		{"log does not parse", func(t *testing.T) *service.AttestRequest {
			req := e.evidence(t, h)
			req.EventLog = []byte("not an event log at all, not at all")
			return req
		}, "evidence"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, st := e.attest(t, tc.req(t))
			if st != http.StatusForbidden || r.Trusted || r.Credential != nil || r.Verdict != attest.VerdictNotTrusted {
				t.Fatalf("status %d, trusted %v, credential %v, error %q", st, r.Trusted, r.Credential != nil, r.Error)
			}
			if f := failed(r); !slices.Contains(f, tc.failed) {
				t.Fatalf("failed checks %v, want %s", f, tc.failed)
			}
			d := e.log.decisions(t)
			last := d[len(d)-1]
			if last["decision"] != "not_trusted" || last["level"] != "WARN" || !strings.Contains(toJSON(last["failed_checks"]), `"`+tc.failed+`"`) {
				t.Errorf("decision log %v", last)
			}
		})
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestReplay: a submission replayed (same nonce) is refused, even when the
// first was refused; the decision log has one line per decision with the
// nonce id.
func TestReplay(t *testing.T) {
	e := newEnv(t)
	h := e.hosts[0]
	req := e.evidence(t, h)
	r, st := e.attest(t, req)
	if st != http.StatusOK {
		t.Fatalf("first: %d %v", st, failed(r))
	}
	r2, st := e.attest(t, req)
	// The nonce is marked used after the EK check: the checks are the EK's
	// and then the nonce's, refused.
	if st != http.StatusForbidden || r2.Credential != nil || !slices.Equal(failed(r2), []string{"nonce"}) ||
		len(r2.Result.Checks) != 2 || r2.Result.Checks[0].Name != "ek" || !strings.Contains(r2.Result.Checks[1].Detail, "already used") {
		t.Fatalf("replay: %d %v %+v", st, failed(r2), r2.Result)
	}
	d := e.log.decisions(t)
	if len(d) != 2 || d[0]["decision"] != "trusted" || d[0]["nonce_id"] != r.NonceID || d[1]["nonce_id"] != r.NonceID ||
		d[0]["ak_name"] != hex.EncodeToString(h.AKName()) || d[0]["credential_id"] == "" || d[0]["level"] != "INFO" {
		t.Fatalf("decision log: %v", d)
	}
	if e.srv.UsedNonces() != 1 {
		t.Errorf("%d used nonces, want 1", e.srv.UsedNonces())
	}
}

// TestEKTrust: an EK off the allowlist is refused; an EK certificate
// chaining to a configured root is trusted (through the critical
// subjectAltName real EK certificates carry); one from another CA is not;
// TrustAnyEKUnsafe trusts any.
func TestEKTrust(t *testing.T) {
	stranger := newHost(t, servicetest.ECC, servicetest.ECC)
	e := newEnv(t)
	for _, h := range e.hosts {
		if h == stranger {
			t.Skip("host cache handed out an allowlisted host")
		}
	}
	r, st := e.attest(t, e.evidence(t, stranger))
	if st != http.StatusForbidden || !slices.Equal(failed(r), []string{"ek"}) {
		t.Fatalf("unlisted EK: %d %v", st, failed(r))
	}

	mfr, mfrKey, err := servicetest.NewCA("Test TPM Manufacturer Root", epoch)
	if err != nil {
		t.Fatal(err)
	}
	rogue, rogueKey, _ := servicetest.NewCA("Rogue", epoch)
	e2 := newEnv(t, func(c *service.Config) { c.EKAllowlist, c.EKRoots = nil, []*x509.Certificate{mfr} })
	for _, tc := range []struct {
		name    string
		ca      *x509.Certificate
		key     any
		onlyKey bool
		want    int
	}{
		{"certificate and public area", mfr, mfrKey, false, http.StatusOK},
		{"certificate only", mfr, mfrKey, true, http.StatusOK},
		{"rogue CA", rogue, rogueKey, false, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := e2.hosts[1] // RSA EK: a certificate alone stands for the L-1 template
			c, err := h.CertifyEK(tc.ca, tc.key.(*ecdsa.PrivateKey), epoch)
			if err != nil {
				t.Fatal(err)
			}
			req := e2.evidence(t, h)
			req.EKCertificate = c.Raw
			if tc.onlyKey {
				req.EKPublic = nil
			}
			r, st := e2.attest(t, req)
			if st != tc.want {
				t.Fatalf("status %d, want %d: %v %q", st, tc.want, failed(r), r.Error)
			}
			if st == http.StatusOK {
				if _, err := h.Open(r.Credential); err != nil {
					t.Fatal(err)
				}
				if d := r.Result.Checks[1].Detail; !strings.Contains(d, "chains to EK root") {
					t.Errorf("ek check: %s", d)
				}
			}
		})
	}

	e3 := newEnv(t, func(c *service.Config) { c.EKAllowlist, c.TrustAnyEKUnsafe = nil, true })
	r, st = e3.attest(t, e3.evidence(t, stranger))
	if st != http.StatusOK || !strings.Contains(r.Result.Checks[1].Detail, "TrustAnyEKUnsafe") {
		t.Fatalf("TrustAnyEKUnsafe: %d %v", st, failed(r))
	}
}

// TestConfig: New refuses configurations it cannot serve with.
func TestConfig(t *testing.T) {
	b := secureBoot(t)
	ca, key, _ := servicetest.NewCA("CA", epoch)
	good := func() service.Config {
		return service.Config{LoadPolicy: loadPolicy(b.policy, b.ciPolicy), CA: ca, CAKey: key, TrustAnyEKUnsafe: true}
	}
	if _, err := service.New(good()); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*service.Config){
		"no policy loader":       func(c *service.Config) { c.LoadPolicy = nil },
		"no EK trust":            func(c *service.Config) { c.TrustAnyEKUnsafe = false },
		"no CA":                  func(c *service.Config) { c.CA = nil },
		"short nonce key":        func(c *service.Config) { c.NonceKeys = [][]byte{make([]byte, 16)} },
		"x509 without OID":       func(c *service.Config) { c.CredentialFormat = service.FormatX509 },
		"unknown format":         func(c *service.Config) { c.CredentialFormat = "pem" },
		"SHA1 bank without opt":  func(c *service.Config) { c.PCRs = []service.PCRSelection{{Bank: "sha1", PCRs: []int{0}}} },
		"PCR 24":                 func(c *service.Config) { c.PCRs = []service.PCRSelection{{Bank: "sha256", PCRs: []int{24}}} },
		"bad policy":             func(c *service.Config) { c.LoadPolicy = loadPolicy("format: nope\n", "") },
		"policy needs CI policy": func(c *service.Config) { c.LoadPolicy = loadPolicy(b.policy, "") },
		"CA key mismatch": func(c *service.Config) {
			_, other, _ := servicetest.NewCA("other", epoch)
			c.CAKey = other
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := good()
			f(&c)
			if _, err := service.New(c); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

// TestAKCertificate: the AK certificate a FormatX509 credential carries
// is accepted as the AK's certificate in the next attestation when the
// service's CA is among the AK roots; a certificate for another key, or
// from another CA, is refused.
func TestAKCertificate(t *testing.T) {
	var caCert *x509.Certificate
	e := newEnv(t, func(c *service.Config) {
		c.CredentialFormat, c.ClaimsOID = service.FormatX509, testClaimsOID
		caCert = c.CA
	})
	h, other := e.hosts[0], e.hosts[1]
	issue := func(h *servicetest.Host) []byte {
		r, st := e.attest(t, e.evidence(t, h))
		if st != http.StatusOK {
			t.Fatalf("%d %v", st, failed(r))
		}
		der, err := h.Open(r.Credential)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	mine, theirs := issue(h), issue(other)
	root, err := signing.ParseCertificate(caCert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, func(c *service.Config) {
		c.AKRoots = []*signing.Certificate{root}
		c.EKAllowlist = append(c.EKAllowlist, h.EKKeySHA256())
	})
	for _, tc := range []struct {
		name   string
		cert   []byte
		want   int
		failed string
	}{
		{"its own", mine, http.StatusOK, ""},
		{"another AK's", theirs, http.StatusForbidden, "ak-certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := e2.evidence(t, h)
			req.AKCertificate = tc.cert
			r, st := e2.attest(t, req)
			if st != tc.want {
				t.Fatalf("%d %v", st, failed(r))
			}
			if tc.failed != "" && !slices.Contains(failed(r), tc.failed) {
				t.Fatalf("failed %v", failed(r))
			}
			if st == http.StatusOK {
				for _, c := range r.Result.Checks {
					if c.Name == "ak" && !strings.Contains(c.Detail, "chains to trusted root") {
						t.Errorf("ak check: %s", c.Detail)
					}
				}
			}
		})
	}
	// Without the CA among the AK roots, the certificate is refused.
	req := e.evidence(t, h)
	req.AKCertificate = mine
	r, st := e.attest(t, req)
	if st != http.StatusForbidden || !slices.Contains(failed(r), "ak") {
		t.Fatalf("no AK roots: %d %v", st, failed(r))
	}
}
