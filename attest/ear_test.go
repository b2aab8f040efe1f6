package attest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veraison/ear"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/eartest"
	"github.com/codesignval/csv/signing"
)

// earHost is a synthetic boot with minted Secure Boot certificates, its
// attestation policy and code integrity policy: the trusted host of the
// EAR tests, which each case changes.
type earHost struct {
	spec       bootSpec
	policy, ci string
}

func newEARHost(t *testing.T) earHost {
	t.Helper()
	cs := mintCerts(t, 3, func(i int) string { return []string{"Test PK", "Test KEK", "Test UEFI CA"}[i] })
	pk, kek, ca := cs[0], cs[1], cs[2]
	shim, grub := eventlog.SHA256.Sum([]byte("shim image")), eventlog.SHA256.Sum([]byte("grub image"))
	return earHost{
		spec: bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek},
			db: []*signing.Certificate{ca}, authority: ca, apps: [][]byte{shim, grub}},
		policy: "format: csv-attest-policy/v1\nname: ear test\nsecure_boot: required\n",
		ci: `format: csv-policy/v1
name: boot
rules:
  - id: uefi-ca
    action: allow
    signer: {certificate: "` + strings.ReplaceAll(string(pemOf(ca)), "\n", `\n`) + `", level: any}
    scenarios: [boot]
`,
	}
}

func (h earHost) result(t *testing.T) *Result {
	t.Helper()
	ev, opts := bootLog(t, h.spec)
	p := mustPolicy(t, h.policy, nil)
	v, err := Verify(context.Background(), ev, opts)
	if ve, ok := err.(*VerificationError); ok {
		return NotVerifiedResult(ve, p)
	}
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(context.Background(), v, p, mustSet(t, h.ci))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEARMapping: the trustworthiness vector and status of hosts that pass
// and fail each group of checks, as the EAR library decodes them from
// csv's JSON claims set.
func TestEARMapping(t *testing.T) {
	grub := eventlog.SHA256.Sum([]byte("grub image"))
	tests := []struct {
		name   string
		change func(*earHost)
		// checks, if set, changes the result's checks.
		checks  func(*Result)
		trusted bool
		status  ear.TrustTier
		vector  ear.TrustVector
	}{
		{name: "trusted", trusted: true, status: ear.TrustTierAffirming,
			vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3}},
		{name: "secure boot off", change: func(h *earHost) { h.spec.secureBoot = 0; h.spec.authority = nil },
			status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 96, Executables: 96}},
		{name: "UEFI debug mode", change: func(h *earHost) {
			h.spec.debugMode = true
			h.policy += "debugging: forbidden\n"
		}, status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 96, Executables: 3}},
		{name: "blocked boot component", change: func(h *earHost) {
			h.ci += "  - {id: no-grub, action: deny, authenticode_sha256: " + hexs(grub) + "}\n"
		}, status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 96}},
		{name: "boot component blocked in audit mode", change: func(h *earHost) {
			h.ci = strings.Replace(h.ci, "name: boot\n", "name: boot\nmode: audit\n", 1) +
				"  - {id: no-grub, action: deny, authenticode_sha256: " + hexs(grub) + "}\n"
		}, trusted: true, status: ear.TrustTierWarning, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 33}},
		{name: "boot components not judged", change: func(h *earHost) { h.policy += "boot_components: ignore\n" },
			trusted: true, status: ear.TrustTierAffirming, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2}},
		{name: "quote of another nonce", checks: func(r *Result) {
			for i := range r.Checks {
				if r.Checks[i].Name == "quote[1].nonce" {
					r.Checks[i].Passed = false
				}
			}
			r.Claims = nil
			r.finish()
		}, status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 99, Configuration: 2, Executables: 3}},
		{name: "a required code integrity policy not booted", change: func(h *earHost) {
			h.policy += "ci_policies: [{id: '{" + testCIPolicyGUID + "}', min_version: 10.0.0.1}]\n"
		}, status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 96, Executables: 3}},
		{name: "a boot component the host's dbx revokes", checks: func(r *Result) {
			found := false
			for i := range r.Checks {
				if r.Checks[i].Name == "policy.not-revoked" {
					r.Checks[i].Passed, found = false, true
				}
			}
			if !found {
				t.Fatal("no policy.not-revoked check")
			}
			r.finish()
		}, status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 96}},
		{name: "a failed check the table does not know", checks: func(r *Result) {
			r.Checks = append(r.Checks, Check{Name: "policy.from-the-future", Detail: "failed"})
			r.finish()
		}, status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newEARHost(t)
			if tt.change != nil {
				tt.change(&h)
			}
			r := h.result(t)
			if tt.checks != nil {
				tt.checks(r)
			}
			if r.Trusted != tt.trusted {
				t.Fatalf("trusted %v, want %v: %v", r.Trusted, tt.trusted, r.Checks)
			}
			now := time.Now()
			e, err := NewEAR(r, EAROptions{Build: "csv test", Nonce: []byte("nonce-0123456789"), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			ar, err := eartest.Parse(t, b)
			if err != nil {
				t.Fatalf("the EAR library refuses csv's claims set: %v\n%s", err, b)
			}
			if got := eartest.Status(t, ar, EARSubmodule); got != tt.status {
				t.Errorf("status %s, want %s", got, tt.status)
			}
			if got := eartest.Vector(t, ar, EARSubmodule); got != tt.vector {
				t.Errorf("vector %+v, want %+v\nchecks: %v", got, tt.vector, r.Checks)
			}
			if *ar.Profile != ear.EatProfile || *ar.IssuedAt != now.Unix() || *ar.VerifierID.Build != "csv test" ||
				*ar.VerifierID.Developer != EARDeveloper || *ar.Nonce != base64.RawURLEncoding.EncodeToString([]byte("nonce-0123456789")) {
				t.Errorf("claims: %s", b)
			}
			want := "csv:attest/ear%20test@sha256:" + r.Policy.SHA256 + ";ci/" + r.CIPolicies[0].Name + "@sha256:" + r.CIPolicies[0].SHA256
			if got := ar.Submods[EARSubmodule].AppraisalPolicyID; got == nil || *got != want {
				t.Errorf("appraisal policy ID %v, want %s", got, want)
			}
		})
	}
}

// TestEARNotVerified: evidence that fails verification (a quote signed by
// another AK) gives no claim but the failed instance identity, and the
// status contraindicated.
func TestEARNotVerified(t *testing.T) {
	h := newEARHost(t)
	ev, opts := bootLog(t, h.spec)
	opts.AK = newECCAK(t).ak(t)
	_, err := Verify(context.Background(), ev, opts)
	ve, ok := err.(*VerificationError)
	if !ok {
		t.Fatalf("Verify: %v, want a VerificationError", err)
	}
	e, err := NewEAR(NotVerifiedResult(ve, mustPolicy(t, h.policy, nil)), EAROptions{Build: "csv test"})
	if err != nil {
		t.Fatal(err)
	}
	a := e.Submods[EARSubmodule]
	if a.Status != TierContraindicated || a.TrustVector.InstanceIdentity != CryptoValidationFailed || a.TrustVector.Executables != NoClaim {
		t.Fatalf("status %s, vector %+v", a.Status, *a.TrustVector)
	}
	if e.Nonce != "" {
		t.Errorf("eat_nonce %q without a nonce", e.Nonce)
	}
}

// TestEARSigned: the EAR library's Verify accepts csv's signed EAR with
// each key type csv signs with, decodes the same claims, and refuses the
// token once any byte of it changes or with another key.
func TestEARSigned(t *testing.T) {
	r := newEARHost(t).result(t)
	e, err := NewEAR(r, EAROptions{Build: "csv test"})
	if err != nil {
		t.Fatal(err)
	}
	gen := map[string]func() (crypto.Signer, error){
		"ES256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"ES384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"ES512": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"PS256": func() (crypto.Signer, error) { return testRSAKey(t), nil },
		"EdDSA": func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err },
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for alg, g := range gen {
		t.Run(alg, func(t *testing.T) {
			key, err := g()
			if err != nil {
				t.Fatal(err)
			}
			tok, err := e.Sign(key, "kid-1")
			if err != nil {
				t.Fatal(err)
			}
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(string(tok), ".")[0])
			if want := `{"alg":"` + alg + `","kid":"kid-1","typ":"JWT"}`; string(hdr) != want {
				t.Errorf("header %s, want %s", hdr, want)
			}
			ar, err := eartest.Verify(t, tok, key.Public())
			if err != nil {
				t.Fatalf("the EAR library refuses csv's EAR: %v", err)
			}
			if eartest.Status(t, ar, EARSubmodule) != ear.TrustTierAffirming || eartest.Vector(t, ar, EARSubmodule).Executables != ear.ApprovedBootClaim {
				t.Errorf("claims: %+v", ar.Submods[EARSubmodule])
			}
			// Every byte that changes what the token says: the last
			// character of a segment may carry unused bits, which
			// decoders (jwx's too) ignore, so a change there can decode
			// alike and verify.
			for i := 0; i < len(tok); i++ {
				bad := []byte(string(tok))
				bad[i] ^= 0x01
				if sameSegments(tok, bad) {
					continue
				}
				if _, err := eartest.Verify(t, bad, key.Public()); err == nil {
					t.Fatalf("byte %d changed (%q): accepted", i, bad[i])
				}
				if i > 200 && i < len(tok)-100 {
					i += 37 // enough of the payload
				}
			}
			if alg == "ES256" {
				if _, err := eartest.Verify(t, tok, other.Public()); err == nil {
					t.Fatal("accepted with another key")
				}
			}
		})
	}
}

// sameSegments reports whether two compact JWS decode to the same three
// segments.
func sameSegments(a, b []byte) bool {
	pa, pb := strings.Split(string(a), "."), strings.Split(string(b), ".")
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i := range pa {
		da, err1 := base64.RawURLEncoding.DecodeString(pa[i])
		db, err2 := base64.RawURLEncoding.DecodeString(pb[i])
		if err1 != nil || err2 != nil || string(da) != string(db) {
			return false
		}
	}
	return true
}

func TestEARAlgorithmRefuses(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &EAR{Submods: map[string]*EARAppraisal{EARSubmodule: {Status: TierAffirming}}}
	for _, k := range []crypto.Signer{small, p224} {
		if _, err := e.Sign(k, ""); err == nil || !strings.Contains(err.Error(), "cannot sign an EAR") {
			t.Errorf("%s: %v", keyName(k.Public()), err)
		}
	}
	if _, err := NewEAR(&Result{}, EAROptions{}); err == nil {
		t.Error("NewEAR without a build: no error")
	}
	if _, err := json.Marshal(TrustTier(5)); err == nil {
		t.Error("TrustTier(5) marshals")
	}
}

func TestTrustClaimTier(t *testing.T) {
	for c, want := range map[TrustClaim]TrustTier{-128: TierContraindicated, -97: TierContraindicated, -96: TierWarning, -33: TierWarning,
		-32: TierAffirming, -2: TierAffirming, -1: TierNone, 0: TierNone, 1: TierNone,
		2: TierAffirming, 31: TierAffirming, 32: TierWarning, 95: TierWarning, 96: TierContraindicated, 127: TierContraindicated} {
		if got := c.Tier(); got != want {
			t.Errorf("%d: %s, want %s", c, got, want)
		}
		// The library agrees.
		if got := ear.TrustClaim(c).GetTier(); int8(got) != int8(want) {
			t.Errorf("%d: the EAR library says %s, csv %s", c, got, want)
		}
	}
	var tt TrustTier
	for _, s := range []string{`"warning"`, `32`} {
		if err := json.Unmarshal([]byte(s), &tt); err != nil || tt != TierWarning {
			t.Errorf("%s: %v %s", s, err, tt)
		}
	}
	if err := json.Unmarshal([]byte(`"fine"`), &tt); err == nil {
		t.Error(`"fine" is a tier`)
	}
}

// FuzzEAR: whatever checks a result holds (names the table knows and
// names it does not, passed or failed, audit-blocked components), the
// EAR the library parses has status contraindicated unless the result is
// trusted, never better than its worst claim, and affirming for a trusted
// result without audit findings. The same bytes, read as an "ear.status"
// value, give a tier that marshals back to itself, or an error.
func FuzzEAR(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0x80, 0x81, 0x92, 0x13, 0xff})
	f.Add([]byte(`"warning"`))
	f.Add([]byte(`96`))
	names := make([]string, 0, len(earTable)+3)
	for n := range earTable {
		names = append(names, strings.Replace(n, "quote.", "quote[2].", 1))
	}
	slices.Sort(names)
	names = append(names, "policy.from-the-future", "quote[x].nonce", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		var tt TrustTier
		if err := json.Unmarshal(b, &tt); err == nil {
			out, err := json.Marshal(tt)
			if err != nil {
				t.Fatalf("%q read as %d, which does not marshal: %v", b, tt, err)
			}
			var back TrustTier
			if err := json.Unmarshal(out, &back); err != nil || back != tt {
				t.Fatalf("%q: %s does not read back: %v", b, out, err)
			}
		}
		r := &Result{Policy: &PolicyRef{Name: string(b), SHA256: "00"}, Claims: &Claims{}}
		audit := false
		for _, c := range b {
			if c&0x40 != 0 && c&0x20 != 0 {
				r.Claims.BootComponents = append(r.Claims.BootComponents, ComponentClaim{Verdict: "blocked (audit)"})
				audit = true
				continue
			}
			r.Checks = append(r.Checks, Check{Name: names[int(c&0x3f)%len(names)], Passed: c&0x80 == 0})
		}
		r.finish()
		e, err := NewEAR(r, EAROptions{Build: "csv fuzz", Nonce: b})
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		ar, err := eartest.Parse(t, js)
		if err != nil {
			t.Fatalf("the EAR library refuses %s: %v", js, err)
		}
		status := eartest.Status(t, ar, EARSubmodule)
		if !r.Trusted && status != ear.TrustTierContraindicated {
			t.Fatalf("not trusted, status %s: %v", status, r.Checks)
		}
		for name, c := range eartest.Vector(t, ar, EARSubmodule).AsMap() {
			if TrustTier(c.GetTier()).rank() > TrustTier(status).rank() {
				t.Fatalf("status %s better than %s %d", status, name, c)
			}
		}
		executes := slices.ContainsFunc(r.Checks, func(c Check) bool { return c.Name == "policy.boot-components" })
		if r.Trusted && !(audit && executes) && status != ear.TrustTierAffirming {
			t.Fatalf("trusted, status %s: %v", status, r.Checks)
		}
	})
}
