package attest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/verifiedby"
	"github.com/codesignval/csv/signing"
)

// mintCerts returns n distinct small certificates (one key, a serial and
// a name each); name gives the i-th one's common name.
func mintCerts(t testing.TB, n int, name func(int) string) []*signing.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]*signing.Certificate, n)
	for i := range out {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: name(i)},
			NotBefore: at, NotAfter: at.AddDate(1, 0, 0)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = signing.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// resigned returns c with another signature value: the same
// TBSCertificate, other DER bytes (another authority to the log).
func resigned(t testing.TB, c *signing.Certificate) *signing.Certificate {
	t.Helper()
	raw := bytes.Clone(c.Raw)
	raw[len(raw)-1] ^= 0x55
	r, err := signing.ParseCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// unreadableCert returns DER that reads as far as the subject's common
// name (so the log's authority is a certificate) and no further.
func unreadableCert(cn string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(2) })
			b.AddASN1Int64(1)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
			})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidCommonName)
						b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(cn)) })
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// authorityEvents logs each DER certificate as a db authority.
func authorityEvents(ders ...[]byte) func(w *eventlog.Writer) {
	return func(w *eventlog.Writer) {
		for _, d := range ders {
			w.Append(7, eventlog.EvEFIVariableAuthority, varData(guidImageSecurity, "db", append(make([]byte, 16), d...)))
		}
	}
}

func ders(cs ...*signing.Certificate) [][]byte {
	out := make([][]byte, len(cs))
	for i, c := range cs {
		out[i] = c.Raw
	}
	return out
}

// componentDigests returns n distinct Authenticode digests.
func componentDigests(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = eventlog.SHA256.Sum(fmt.Appendf(nil, "boot component %d", i))
	}
	return out
}

// everyAuthority judges a component as Evaluate judged them before
// authorities were judged per key: with each authority that could have
// admitted it, in order, under its ID and (path-scoped rules) under each
// image load type's; the first enforced block, else the first block,
// else the first allow counts. It is the reference the judging is held
// to.
func everyAuthority(c Component, auths []Authority, ci *cipolicy.Set, scoped bool) cipolicy.Decision {
	judgeAs := func(id string) cipolicy.Decision {
		var cands []Authority
		for _, a := range auths {
			if a.CertDER != nil || (a.SHA256 != nil && string(a.SHA256) == string(c.AuthenticodeSHA256)) {
				cands = append(cands, a)
			}
		}
		base := cipolicy.Subject{Path: id, Format: cipolicy.FormatPE, Scenario: cipolicy.ScenarioBoot}
		base.Digests = cipolicy.Digests{cipolicy.AuthenticodeSHA256: c.AuthenticodeSHA256}
		if len(cands) == 0 {
			return ci.Evaluate(base)
		}
		if !ci.Needs(id, cipolicy.FormatPE, cipolicy.ScenarioBoot).Signatures {
			base.Signed = slices.ContainsFunc(cands, func(a Authority) bool { return a.CertDER != nil })
			return ci.Evaluate(base)
		}
		var allow, block *cipolicy.Decision
		for _, a := range cands {
			s := base
			if cert := a.Certificate(); cert != nil {
				s.Signed = true
				s.Signatures = []*signing.Signature{verifiedby.Firmware(cert, sigAlg(cert))}
			} else if a.CertDER != nil {
				s.Problem = fmt.Errorf("the certificate of authority %s (event %d) cannot be read", a.Name(), a.Event)
			}
			d := ci.Evaluate(s)
			switch {
			case d.Verdict == cipolicy.Allowed:
				if allow == nil {
					allow = &d
				}
			case block == nil || (d.Enforced && !block.Enforced):
				dd := d
				if len(cands) > 1 {
					dd.Reason = fmt.Sprintf("with authority %s: %s", a.Name(), d.Reason)
				}
				block = &dd
			}
		}
		if block != nil {
			return *block
		}
		return *allow
	}
	d := judgeAs(c.ID)
	if !scoped || c.position == 0 {
		return d
	}
	var block *cipolicy.Decision
	if d.Verdict != cipolicy.Allowed {
		block = &d
	}
	for _, typ := range imageLoadTypes {
		id := fmt.Sprintf("pcr%d/%s/%d", c.PCR, typ, c.position)
		if id == c.ID {
			continue
		}
		dd := judgeAs(id)
		if dd.Verdict != cipolicy.Allowed && (block == nil || (dd.Enforced && !block.Enforced)) {
			dd.Reason = fmt.Sprintf("judged as %s (the event type is the host's claim): %s", id, dd.Reason)
			block = &dd
		}
	}
	if block != nil {
		return *block
	}
	return d
}

func mustSetOf(t *testing.T, srcs ...string) *cipolicy.Set {
	t.Helper()
	var ps []*cipolicy.Policy
	for i, src := range srcs {
		p, err := cipolicy.Parse([]byte(src), fmt.Sprintf("ci%d.yaml", i))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	s, err := cipolicy.NewSet(cipolicy.SetOptions{}, ps...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJudgeLikeEveryAuthority: judging each component once per kind of
// authority decides exactly what judging it with every authority did —
// the same verdict, deciding policy, rule and reason — with authorities
// the policy allows, denies, names in an exception or does not know,
// copies of a named certificate with other signatures, an unreadable
// certificate, a hash authority, path-scoped rules and an auditing
// policy beside an enforcing one.
func TestJudgeLikeEveryAuthority(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	minted := mintCerts(t, 6, func(i int) string { return fmt.Sprintf("Authority %d", i) })
	allowed, denied, excepted, audited := minted[0], minted[1], minted[2], minted[3]
	apps := componentDigests(6)
	hashAuthority := apps[3] // a db entry that is an image's hash
	orders := map[string][][]byte{
		"allowed first": append(ders(uefiCA, allowed, resigned(t, allowed), minted[4], denied, excepted, audited, minted[5], resigned(t, uefiCA)), unreadableCert("Broken")),
		"denied first":  ders(denied, uefiCA, allowed, minted[4], minted[5], excepted, resigned(t, denied)),
		"unknown only":  ders(minted[4], minted[5], resigned(t, minted[4])),
		"unreadable":    {unreadableCert("Broken one"), uefiCA.Raw, unreadableCert("Broken two")},
		"named only":    ders(uefiCA, resigned(t, uefiCA), allowed),
	}
	enforce := fmt.Sprintf(`format: csv-policy/v1
name: enforced
rules:
  - {id: uefi-ca, action: allow, signer: {certificate: %q, level: any}}
  - {id: allowed, action: allow, signer: {certificate: %q, level: leaf}, except: [{authenticode_sha256: %s}]}
  - {id: denied, action: deny, signer: {tbs: %x}}
  - {id: app0, action: allow, authenticode_sha256: %s, paths: ["pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/*"]}
  - {id: app1, action: allow, authenticode_sha256: %s, except: [{signer: {certificate: %q}}]}
  - {id: app2-deny, action: deny, authenticode_sha256: %s}
`, pemOf(uefiCA), pemOf(allowed), hexs(apps[4]), denied.TBSHash, hexs(apps[0]), hexs(apps[1]), pemOf(excepted), hexs(apps[2]))
	audit := fmt.Sprintf(`format: csv-policy/v1
name: audited
mode: audit
rules:
  - {id: audited, action: allow, signer: {certificate: %q}}
  - {id: app5, action: allow, authenticode_sha256: %s}
`, pemOf(audited), hexs(apps[5]))
	sets := map[string]*cipolicy.Set{"enforce": mustSetOf(t, enforce), "enforce and audit": mustSetOf(t, enforce, audit),
		"unscoped": mustSetOf(t, strings.ReplaceAll(enforce, `, paths: ["pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/*"]`, ""))}
	p := mustPolicy(t, "format: csv-attest-policy/v1\nname: t\nsecure_boot: any\n", nil)
	judged := 0
	seen := map[string]bool{}
	for order, auths := range orders {
		spec := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA},
			apps: apps, pcr7Extra: authorityEvents(append(auths, hashAuthority)...)}
		ev, opts := bootLog(t, spec)
		v, err := Verify(context.Background(), ev, opts)
		if err != nil {
			t.Fatal(err)
		}
		bs := v.BootState()
		if bs.SecureBoot.Problem != "" || len(bs.Components) != len(apps) {
			t.Fatalf("%s: %q, %d components", order, bs.SecureBoot.Problem, len(bs.Components))
		}
		for name, set := range sets {
			r, err := Evaluate(context.Background(), v, p, set)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range bs.Components {
				want := everyAuthority(c, bs.DistinctAuthorities(), set, pathScoped(set))
				got := r.Claims.BootComponents[i]
				verdict := string(want.Verdict)
				if want.Verdict == cipolicy.Blocked && !want.Enforced {
					verdict = "blocked (audit)"
				}
				if got.Verdict != verdict || got.Rule != want.Rule || got.Policy != want.Policy || got.Reason != want.Reason {
					t.Errorf("%s, %s, %s:\n got  %s %s %s %q\n want %s %s %s %q", order, name, c.ID,
						got.Verdict, got.Policy, got.Rule, got.Reason, verdict, want.Policy, want.Rule, want.Reason)
				}
				judged++
				seen[verdict+" "+want.Rule+" "+string(want.Kind)] = true
			}
		}
	}
	if judged != len(orders)*len(sets)*len(apps) {
		t.Fatalf("%d judgements", judged)
	}
	// Every way a decision can go was met.
	for _, want := range []string{"allowed uefi-ca allowed-by-signer", "blocked denied denied",
		"blocked app2-deny denied", "blocked  not-allowed", "blocked  malformed", "blocked (audit)  not-allowed"} {
		if !seen[want] {
			t.Errorf("no decision %q among %v", want, slices.Sorted(maps.Keys(seen)))
		}
	}
}

// TestJudgeLinear: judging boot components costs what the log holds, not
// its components times its authorities. Twice as many authorities the
// policy does not know (an attacker mints them) cost a few allocations
// per authority, not one judgement per component and authority. The
// count of allocations measures the work without a clock.
func TestJudgeLinear(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	const components = 300
	apps := componentDigests(components)
	ci := mustSet(t, fmt.Sprintf(`format: csv-policy/v1
name: boot
rules:
  - {id: uefi-ca, action: allow, signer: {certificate: %q, level: any}}
  - {id: app0, action: allow, authenticode_sha256: %s, paths: ["pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/*"]}
`, pemOf(uefiCA), hexs(apps[0])))
	p := mustPolicy(t, "format: csv-attest-policy/v1\nname: t\n", nil)
	certs := mintCerts(t, 30, func(i int) string { return fmt.Sprintf("Minted %d", i) })
	allocs := func(n int) float64 {
		spec := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA},
			authority: uefiCA, apps: apps, pcr7Extra: authorityEvents(ders(certs[:n]...)...)}
		ev, opts := bootLog(t, spec)
		v, err := Verify(context.Background(), ev, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(v.BootState().DistinctAuthorities()); got != n+1 {
			t.Fatalf("%d distinct authorities, want %d", got, n+1)
		}
		var r *Result
		a := testing.AllocsPerRun(2, func() {
			if r, err = Evaluate(context.Background(), v, p, ci); err != nil {
				t.Fatal(err)
			}
		})
		if c := checkOf(r, "policy.boot-components"); c == nil || c.Passed || len(r.Claims.BootComponents[1].Authorities) != n+1 {
			t.Fatalf("%+v", c)
		}
		return a
	}
	few, many := allocs(10), allocs(30)
	t.Logf("%d components: %.0f allocations with 11 authorities, %.0f with 31", components, few, many)
	if extra := many - few; extra > components*20 {
		t.Fatalf("20 more authorities cost %.0f more allocations: the judging grows with components times authorities", extra)
	}
}

// TestBootCaps: a boot with more components or distinct authorities than
// the caps is not judged: the check fails, saying which cap, and no
// component claims an authority or a verdict. Repeating an authority does
// not count against the cap.
func TestBootCaps(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	many := mintCerts(t, limits.MaxBootAuthorities, func(i int) string { return fmt.Sprintf("Minted %d", i) })
	ci := mustSet(t, fmt.Sprintf("format: csv-policy/v1\nname: boot\nrules:\n  - {id: uefi-ca, action: allow, signer: {certificate: %q, level: any}}\n", pemOf(uefiCA)))
	p := mustPolicy(t, "format: csv-attest-policy/v1\nname: t\n", nil)
	base := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA},
		authority: uefiCA, apps: componentDigests(3)}
	tests := []struct {
		name   string
		spec   func(*bootSpec)
		detail string // "" if trusted
	}{
		{"at the caps", func(s *bootSpec) {
			s.apps = componentDigests(limits.MaxBootComponents)
			s.pcr7Extra = authorityEvents(ders(many[:limits.MaxBootAuthorities-1]...)...)
		}, "policy.boot-components: " + fmt.Sprint(limits.MaxBootComponents) + " of " + fmt.Sprint(limits.MaxBootComponents) + " boot components blocked"},
		{"one component over", func(s *bootSpec) { s.apps = componentDigests(limits.MaxBootComponents + 1) },
			fmt.Sprintf("the log holds %d boot components, over the limit of %d: not judged", limits.MaxBootComponents+1, limits.MaxBootComponents)},
		{"one authority over", func(s *bootSpec) { s.pcr7Extra = authorityEvents(ders(many...)...) },
			fmt.Sprintf("PCR 7 names %d distinct Secure Boot authorities, over the limit of %d", limits.MaxBootAuthorities+1, limits.MaxBootAuthorities)},
		{"an authority repeated", func(s *bootSpec) {
			var again [][]byte
			for range 2 * limits.MaxBootAuthorities {
				again = append(again, uefiCA.Raw)
			}
			s.pcr7Extra = authorityEvents(again...)
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.spec(&s)
			ev, opts := bootLog(t, s)
			v, err := Verify(context.Background(), ev, opts)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Evaluate(context.Background(), v, p, ci)
			if err != nil {
				t.Fatal(err)
			}
			c := checkOf(r, "policy.boot-components")
			if tc.detail == "" {
				if !r.Trusted {
					t.Fatalf("not trusted: %v", failedChecks(r))
				}
				return
			}
			if c == nil || c.Passed || !strings.Contains(c.String(), tc.detail) {
				t.Fatalf("check %v, want %q", c, tc.detail)
			}
			if strings.Contains(tc.detail, "over the limit") {
				for _, bc := range r.Claims.BootComponents {
					if bc.Verdict != "not judged" || len(bc.Authorities) != 0 {
						t.Fatalf("%+v", bc)
					}
				}
			}
		})
	}
}

// TestAuthorityNamesShortened: an authority's names, which the host
// chooses and which are repeated for every component, are cut in claims
// and reasons.
func TestAuthorityNamesShortened(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	long := strings.Repeat("é", 20<<10)
	c := mintCerts(t, 1, func(int) string { return long })[0]
	ci := mustSet(t, fmt.Sprintf("format: csv-policy/v1\nname: boot\nrules:\n  - {id: uefi-ca, action: allow, signer: {certificate: %q, level: any}}\n", pemOf(uefiCA)))
	ev, opts := bootLog(t, bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek},
		db: []*signing.Certificate{uefiCA}, authority: uefiCA, apps: componentDigests(4), pcr7Extra: authorityEvents(c.Raw)})
	v, err := Verify(context.Background(), ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(context.Background(), v, mustPolicy(t, "format: csv-attest-policy/v1\nname: t\n", nil), ci)
	if err != nil {
		t.Fatal(err)
	}
	for _, bc := range r.Claims.BootComponents {
		n := 0
		for _, a := range bc.Authorities {
			n += len(a)
		}
		if len(bc.Reason) > 2<<10 || n > 2<<10 || !strings.Contains(bc.Reason, "… (40960 bytes)") {
			t.Fatalf("%d bytes of authority names, reason %.300q", n, bc.Reason)
		}
	}
	if !slices.ContainsFunc(v.BootState().Authorities, func(a Authority) bool { return a.Subject == long }) {
		t.Error("the boot state's subject was cut")
	}
}

// TestStopped: Verify and Evaluate stop when their context is done and say
// so with the context's error.
func TestStopped(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	ev, opts := bootLog(t, bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek},
		db: []*signing.Certificate{uefiCA}, authority: uefiCA, apps: componentDigests(4)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, ev, opts); !errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalidEvidence) {
		t.Fatalf("Verify: %v", err)
	}
	v, err := Verify(context.Background(), ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	ci := mustSet(t, fmt.Sprintf("format: csv-policy/v1\nname: boot\nrules:\n  - {id: uefi-ca, action: allow, signer: {certificate: %q, level: any}}\n", pemOf(uefiCA)))
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	r, err := Evaluate(dctx, v, mustPolicy(t, "format: csv-attest-policy/v1\nname: t\n", nil), ci)
	if !errors.Is(err, context.DeadlineExceeded) || r != nil || !strings.Contains(err.Error(), "attest: evaluation stopped") {
		t.Fatalf("Evaluate: %v, %v", r, err)
	}
}
