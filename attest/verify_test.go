package attest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
)

func failed(err error) []string {
	var ve *VerificationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, c := range ve.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestRealQuotes: every real quote verifies, its quoted values are those
// the source states, and it fails with a wrong nonce or another AK.
func TestRealQuotes(t *testing.T) {
	for _, a := range attesttest.Attestations(t) {
		t.Run(a.Name, func(t *testing.T) {
			opts := optsOf(t, a)
			v, err := Verify(context.Background(), evidenceOf(a, true), opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range v.Checks() {
				if !c.Passed {
					t.Fatalf("check %v", c)
				}
			}
			if len(v.Quotes()) != len(a.Quotes) {
				t.Fatalf("%d quotes", len(v.Quotes()))
			}
			// The quoted values are the stated ones; the log accounts for
			// every one of them but the unlogged.
			for _, q := range a.Quotes {
				if q.Bank == eventlog.SHA1 && !opts.AllowSHA1Unsafe {
					// Checked, but the SHA1 bank vouches for nothing.
					if v.QuotedPCRs()[eventlog.SHA1] != nil {
						t.Fatal("SHA1 PCRs used without AllowSHA1Unsafe")
					}
					continue
				}
				for p := 0; p < eventlog.NumPCRs; p++ {
					want := q.PCRs.Get(q.Bank, p)
					if want == nil {
						continue
					}
					if !bytes.Equal(v.QuotedPCRs().Get(q.Bank, p), want) {
						t.Errorf("%s PCR %d quoted %x, stated %x", q.Bank, p, v.QuotedPCRs().Get(q.Bank, p), want)
					}
					if !v.matched.Verified(q.Bank, p) && !slices.Contains(v.Unlogged(), eventlog.PCRRef{Alg: q.Bank, PCR: p}) {
						t.Errorf("%s PCR %d neither verified nor unlogged", q.Bank, p)
					}
				}
			}
			// A wrong nonce: every quote's nonce check fails.
			bad := opts
			bad.Nonce = []byte{1, 2, 3, 4, 5, 6, 7, 8}
			_, err = Verify(context.Background(), evidenceOf(a, true), bad)
			if f := failed(err); len(f) != len(a.Quotes) || !strings.HasSuffix(f[0], ".nonce") || !errors.Is(err, ErrNotVerified) {
				t.Fatalf("wrong nonce: %v", err)
			}
			// Another AK: no signature verifies.
			other := opts
			other.AK = newRSAAK(t, tpm2.TPMAlgRSASSA).ak(t)
			_, err = Verify(context.Background(), evidenceOf(a, true), other)
			if f := failed(err); len(f) != len(a.Quotes) || !strings.HasSuffix(f[0], ".signature") {
				t.Fatalf("other AK: %v", err)
			}
		})
	}
}

// TestQuoteOptionsFailClosed: SHA-1 and empty nonces need an explicit
// opt-in; an AK certificate must chain to a given root, valid now.
func TestQuoteOptionsFailClosed(t *testing.T) {
	win := attesttest.FindAttestation(t, "go-attestation/windows_gcp_shielded_vm.json")
	opts := optsOf(t, win)
	opts.AllowSHA1Unsafe = false
	_, err := Verify(context.Background(), evidenceOf(win, true), opts)
	var ve *VerificationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "signed with SHA-1, which is refused") {
		t.Fatalf("SHA-1: %v", err)
	}
	opts = optsOf(t, win)
	opts.AllowEmptyNonceUnsafe = false
	if _, err := Verify(context.Background(), evidenceOf(win, true), opts); err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "no nonce given") {
		t.Fatalf("empty nonce: %v", err)
	}
	if _, err := Verify(context.Background(), evidenceOf(win, true), VerifyOptions{Nonce: []byte{1}}); err == nil {
		t.Fatal("no AK")
	}

	gce := attesttest.FindAttestation(t, "go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json")
	akc, err := ParseAK(gce.AKCert)
	if err != nil || akc.Source != AKFromCertificate {
		t.Fatalf("AK certificate: %v", err)
	}
	now := func() time.Time { return time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) }
	base := VerifyOptions{AK: akc, Nonce: gce.Nonce, Roots: certs(t, gce.Roots), Intermediates: certs(t, gce.Intermediates), Now: now}
	v, err := Verify(context.Background(), evidenceOf(gce, true), base)
	if err != nil {
		t.Fatal(err)
	}
	if ch := v.AKChain(); len(ch) != 3 || !strings.HasPrefix(ch[2].CommonName(), "tpm_ek_v1_cloud_host_root-signer") ||
		!strings.HasPrefix(ch[1].CommonName(), "tpm_ek_v1_cloud_host-signer-0-2020-10-22") {
		var names []string
		for _, c := range ch {
			names = append(names, c.CommonName())
		}
		t.Fatalf("chain %q", names)
	}
	for name, mod := range map[string]func(*VerifyOptions){
		"no roots":     func(o *VerifyOptions) { o.Roots = nil },
		"another root": func(o *VerifyOptions) { o.Roots = certs(t, gce.Roots[1:]) },
		"expired by now": func(o *VerifyOptions) {
			o.Now = func() time.Time { return time.Date(2070, 1, 1, 0, 0, 0, 0, time.UTC) }
		},
	} {
		o := base
		mod(&o)
		if f := failed(func() error { _, err := Verify(context.Background(), evidenceOf(gce, true), o); return err }()); !slices.Equal(f, []string{"ak"}) {
			t.Errorf("%s: failed %v", name, f)
		}
	}
	// Without the PCR values read from the TPM, the quotes cover PCR 10,
	// which the kernel's IMA measured into a log of its own: the replay
	// alone cannot give the quoted digest.
	if f := failed(func() error {
		_, err := Verify(context.Background(), evidenceOf(gce, false), optsOf(t, gce))
		return err
	}()); len(f) != 3 || !strings.HasSuffix(f[0], ".pcrs") {
		t.Fatalf("without PCRs: %v", f)
	}
	// The Windows quote covers only PCRs the log accounts for.
	if _, err := Verify(context.Background(), evidenceOf(win, false), optsOf(t, win)); err != nil {
		t.Fatalf("Windows without PCRs: %v", err)
	}
}

// rewriteLog re-serialises a log after mutate changed its events (the
// Spec ID header excluded).
func rewriteLog(t *testing.T, raw []byte, mutate func([]eventlog.Event) []eventlog.Event) []byte {
	t.Helper()
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var algs []eventlog.HashAlg
	evs := l.Events
	if l.Format == eventlog.FormatCryptoAgile {
		algs, evs = l.Algs, evs[1:]
	}
	w, err := eventlog.NewWriter(l.Format, algs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mutate(slices.Clone(evs)) {
		w.AppendDigests(e.PCR, e.Type, e.Data, e.Digests...)
	}
	return w.Bytes()
}

func indexOf(evs []eventlog.Event, pred func(*eventlog.Event) bool, nth int) int {
	for i := range evs {
		if pred(&evs[i]) {
			if nth == 0 {
				return i
			}
			nth--
		}
	}
	return -1
}

// TestTamperedEvidence: the real GCE attestation, its log or quotes
// changed. Each change is caught by a named check or makes the evidence
// unusable.
func TestTamperedEvidence(t *testing.T) {
	a := attesttest.FindAttestation(t, "go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json")
	app := func(e *eventlog.Event) bool { return e.Type == eventlog.EvEFIBootServicesApplication }
	dbVar := func(e *eventlog.Event) bool {
		return e.PCR == 7 && e.Type == eventlog.EvEFIVariableDriverConfig && bytes.Contains(e.Data, []byte{'d', 0, 'b', 0})
	}
	tests := []struct {
		name    string
		log     func([]eventlog.Event) []eventlog.Event
		ev      func(*Evidence)
		opts    func(*VerifyOptions)
		failed  []string // failed checks; nil: verifies
		invalid bool     // ErrInvalidEvidence
		boot    func(*testing.T, *BootState)
	}{
		{name: "untouched", failed: nil},
		{name: "event data changed", log: func(e []eventlog.Event) []eventlog.Event {
			i := indexOf(e, dbVar, 0)
			e[i].Data = bytes.Clone(e[i].Data)
			e[i].Data[len(e[i].Data)-1] ^= 1
			return e
		}, boot: func(t *testing.T, bs *BootState) {
			// The replay does not read data; the boot state does.
			if bs.SecureBoot.Enabled || !strings.Contains(bs.SecureBoot.Problem, `variable "db" does not match its digest`) || bs.DB != nil {
				t.Fatalf("%+v", bs.SecureBoot)
			}
		}},
		{name: "two events swapped", log: func(e []eventlog.Event) []eventlog.Event {
			i, j := indexOf(e, app, 0), indexOf(e, app, 1)
			e[i], e[j] = e[j], e[i]
			return e
		}, failed: []string{"replay"}},
		{name: "event removed", log: func(e []eventlog.Event) []eventlog.Event {
			return slices.Delete(e, indexOf(e, app, 1), indexOf(e, app, 1)+1)
		}, failed: []string{"replay"}},
		{name: "extra event appended", log: func(e []eventlog.Event) []eventlog.Event {
			return append(e, e[indexOf(e, app, 0)])
		}, failed: []string{"replay"}},
		{name: "boot application events moved across PCRs", log: func(e []eventlog.Event) []eventlog.Event {
			i := indexOf(e, app, 2)
			e[i].PCR = 2
			return e
		}, failed: []string{"replay"}},
		{name: "truncated log", ev: func(ev *Evidence) { ev.EventLog = ev.EventLog[:len(ev.EventLog)-3] }, invalid: true},
		{name: "digest for a bank not in the header", ev: func(ev *Evidence) {
			w, _ := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA256)
			w.AppendDigests(4, eventlog.EvSeparator, []byte{0, 0, 0, 0}, eventlog.Digest{Alg: eventlog.SHA1, Value: make([]byte, 20)})
			ev.EventLog = w.Bytes()
		}, invalid: true},
		{name: "PCR value given differs from the quoted", ev: func(ev *Evidence) {
			v := bytes.Clone(ev.PCRs.Get(eventlog.SHA256, 4))
			v[0] ^= 1
			ev.PCRs.Set(eventlog.SHA256, 4, v)
		}, failed: []string{"quote[2].pcrs"}},
		{name: "quote and signature of different quotes", ev: func(ev *Evidence) {
			ev.Quotes[0].Signature = ev.Quotes[1].Signature
		}, failed: []string{"quote[1].signature"}},
		{name: "quote bytes altered", ev: func(ev *Evidence) {
			ev.Quotes[2].Attest = bytes.Clone(ev.Quotes[2].Attest)
			ev.Quotes[2].Attest[len(ev.Quotes[2].Attest)-1] ^= 1
		}, failed: []string{"quote[3].signature"}},
		{name: "replayed old quote (no nonce) for a fresh nonce", ev: func(ev *Evidence) {
			old := attesttest.FindAttestation(t, "go-tpm-tools/attestations/gce-cos-85-no-nonce.derived.json")
			for i, q := range old.Quotes {
				ev.Quotes[i] = Quote{Attest: q.Attest, Signature: q.Signature}
			}
		}, failed: []string{"quote[1].nonce", "quote[2].nonce", "quote[3].nonce"}},
		{name: "the quote replayed for a new nonce", opts: func(o *VerifyOptions) { o.Nonce = []byte("fresh nonce 0001") },
			failed: []string{"quote[1].nonce", "quote[2].nonce", "quote[3].nonce"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := evidenceOf(a, true)
			if tt.log != nil {
				ev.EventLog = rewriteLog(t, ev.EventLog, tt.log)
			}
			if tt.ev != nil {
				tt.ev(ev)
			}
			opts := optsOf(t, a)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			v, err := Verify(context.Background(), ev, opts)
			switch {
			case tt.invalid:
				if !errors.Is(err, ErrInvalidEvidence) || v != nil {
					t.Fatalf("err = %v", err)
				}
			case tt.failed == nil:
				if err != nil {
					t.Fatal(err)
				}
				if tt.boot != nil {
					tt.boot(t, v.BootState())
				}
			default:
				if f := failed(err); !slices.Equal(f, tt.failed) || v != nil {
					t.Fatalf("failed %v (%v), want %v", f, err, tt.failed)
				}
			}
		})
	}
}

// TestSyntheticQuotes: quotes made by a software AK over a log the Writer
// built, one focused case per quote check.
func TestSyntheticQuotes(t *testing.T) {
	w, _ := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA1, eventlog.SHA256)
	w.Append(0, eventlog.EvSCRTMVersion, []byte("v1"))
	for p := uint32(0); p < 8; p++ {
		w.Append(p, eventlog.EvSeparator, []byte{0, 0, 0, 0})
	}
	log, vals := w.Bytes(), w.PCRs()
	all := make([]int, 24)
	for i := range all {
		all[i] = i
	}
	nonce := []byte("a fresh nonce 0123456789")
	rsassa, pss, ecc := newRSAAK(t, tpm2.TPMAlgRSASSA), newRSAAK(t, tpm2.TPMAlgRSAPSS), newECCAK(t)
	spec := quoteSpec{bank: eventlog.SHA256, pcrs: all, values: vals, nonce: nonce}
	tests := []struct {
		name    string
		ak      *softAK
		verify  *softAK // the AK given to Verify (default: ak)
		spec    func(*quoteSpec)
		quote   func(*Quote)
		opts    func(*VerifyOptions)
		failed  []string
		invalid bool
		noPCRs  bool // verifies, but vouches for no PCR
	}{
		{name: "RSASSA", ak: rsassa},
		{name: "RSA-PSS", ak: pss},
		{name: "ECDSA", ak: ecc},
		{name: "scheme the AK does not allow", ak: pss, verify: rsassa, failed: []string{"quote[1].signature"}},
		{name: "ECDSA quote, RSA AK", ak: ecc, verify: rsassa, failed: []string{"quote[1].signature"}},
		{name: "not TPM_GENERATED", ak: rsassa, spec: func(q *quoteSpec) { q.magic = 0x12345678 }, failed: []string{"quote[1].attest"}},
		{name: "not a quote", ak: rsassa, spec: func(q *quoteSpec) { q.typ = tpm2.TPMSTAttestCertify }, failed: []string{"quote[1].attest"}},
		{name: "PCR digest of other values", ak: rsassa, spec: func(q *quoteSpec) { q.digest = bytes.Repeat([]byte{7}, 32) }, failed: []string{"quote[1].pcrs"}},
		{name: "SHA1 bank checked but not used", ak: rsassa, spec: func(q *quoteSpec) { q.bank = eventlog.SHA1 }, noPCRs: true},
		{name: "SHA1 bank accepted when allowed", ak: rsassa, spec: func(q *quoteSpec) { q.bank = eventlog.SHA1 },
			opts: func(o *VerifyOptions) { o.AllowSHA1Unsafe = true }},
		{name: "bytes after the TPMS_ATTEST", ak: rsassa, quote: func(q *Quote) { q.Attest = append(q.Attest, 0) }, invalid: true},
		{name: "bytes after the TPMT_SIGNATURE", ak: rsassa, quote: func(q *Quote) { q.Signature = append(q.Signature, 0) }, invalid: true},
		{name: "garbage signature", ak: rsassa, quote: func(q *Quote) { q.Signature = []byte{0xff, 0xff} }, invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec
			if tt.spec != nil {
				tt.spec(&s)
			}
			q := tt.ak.quote(t, s)
			if tt.quote != nil {
				tt.quote(&q)
			}
			vak := tt.ak
			if tt.verify != nil {
				vak = tt.verify
			}
			opts := VerifyOptions{AK: vak.ak(t), Nonce: nonce}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			v, err := Verify(context.Background(), &Evidence{EventLog: log, Quotes: []Quote{q}}, opts)
			switch {
			case tt.invalid:
				if !errors.Is(err, ErrInvalidEvidence) {
					t.Fatalf("err = %v", err)
				}
			case tt.failed == nil:
				if err != nil {
					t.Fatal(err)
				}
				if got := v.Quotes()[0]; got.Clock != 1234 || got.FirmwareVersion != 42 {
					t.Fatalf("quote info %+v", got)
				}
				if n := countPCRs(v.PCRs()); (n == 0) != tt.noPCRs {
					t.Fatalf("%d PCRs verified", n)
				}
				if tt.noPCRs && !strings.Contains(v.BootState().SecureBoot.Problem, "PCR 7 is not covered") {
					t.Fatalf("boot state %+v", v.BootState().SecureBoot)
				}
			default:
				if f := failed(err); !slices.Equal(f, tt.failed) {
					t.Fatalf("failed %v (%v), want %v", f, err, tt.failed)
				}
			}
		})
	}
}

// TestParseAK: the AK forms, and keys that must not be AKs.
func TestParseAK(t *testing.T) {
	s := newRSAAK(t, tpm2.TPMAlgRSASSA)
	if ak, err := ParseAK(tpm2.Marshal(s.pub)); err != nil || ak.Source != AKFromTPMTPublic {
		t.Fatalf("TPMT_PUBLIC: %v", err)
	}
	sized := append([]byte{0, 0}, tpm2.Marshal(s.pub)...)
	sized[0], sized[1] = byte((len(sized)-2)>>8), byte(len(sized)-2)
	if _, err := ParseAK(sized); err != nil {
		t.Fatalf("TPM2B_PUBLIC: %v", err)
	}
	unrestricted := *s
	unrestricted.pub.ObjectAttributes.Restricted = false
	if _, err := ParseAK(tpm2.Marshal(unrestricted.pub)); !errors.Is(err, ErrInvalidAK) || !strings.Contains(err.Error(), "could sign a forged quote") {
		t.Fatalf("unrestricted: %v", err)
	}
	decrypt := *s
	decrypt.pub.ObjectAttributes.Decrypt = true
	if _, err := ParseAK(tpm2.Marshal(decrypt.pub)); !errors.Is(err, ErrInvalidAK) {
		t.Fatalf("decrypt: %v", err)
	}
	// The real AKs decode to the TPMT_PUBLIC go-tpm reads.
	for _, a := range attesttest.Attestations(t) {
		p, err := decodePublic(a.AKPublic)
		if err != nil || !bytes.Equal(tpm2.Marshal(p), a.AKPublic) {
			t.Fatalf("%s: %v", a.Name, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("not a key"), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")} {
		if _, err := ParseAK(bad); !errors.Is(err, ErrInvalidAK) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}
