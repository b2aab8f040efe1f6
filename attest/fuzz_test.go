package attest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// FuzzParseSIPA: ParseSIPA and the Windows state reader never panic;
// ParseSIPA returns events or an error, not both.
func FuzzParseSIPA(f *testing.F) {
	f.Add(sipa(0x40010001, append(sipa(sipaBootDebugging, []byte{0}), sipa(sipaCodeIntegrity, []byte{1})...)))
	f.Add(sipa(sipaLoadedModuleAggr, append(sipa(sipaFilePath, []byte{'a', 0, 0, 0}), sipa(sipaAuthenticodeHash, make([]byte, 32))...)))
	f.Add(sipa(sipaBootCounter, make([]byte, 8)))
	f.Add(sipa(0x40010001, sipa(0x40010001, sipa(0x40010001, nil))))
	f.Add(sipa(0x40010001, sipa(sipaSIPolicy, siPolicyPayload(0x000A000000000001, "{"+testCIPolicyGUID+"}", algSHA256, make([]byte, 32)))))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := ParseSIPA(data)
		panicerr.Check(t, err)
		if err != nil && evs != nil {
			t.Fatal("events and an error")
		}
		n := 0
		panicerr.Check(t, newWindowsState().read(data, 0, &n, map[string]bool{}))
	})
}

// FuzzParsePolicy: ParsePolicy never panics; it returns a policy or a
// *cipolicy.LoadError.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("format: csv-attest-policy/v1\nname: x\n"))
	f.Add([]byte("format: csv-attest-policy/v1\nname: x\nsecure_boot: any\npk: [{sha256: " + hexString(make([]byte, 32)) + "}]\ndb: {contains: [], not_contains: []}\ndbx: {includes: [{sha256: " + hexString(make([]byte, 32)) + "}]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("format: csv-attest-policy/v1\nname: x\nci_policies: [{id: '{" + testCIPolicyGUID + "}', min_version: 10.0.0.1, sha256: " + hexString(make([]byte, 32)) + "}, {file: x.cip, xml: x.xml}, {name: n}]\n"))
	// The Secure Boot rollover examples: kek as a mapping, contains_any,
	// not_trusted, from: dates.
	for _, name := range []string{"secureboot-2011.yaml", "secureboot-transition.yaml", "secureboot-2023.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "attest", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, "fuzz.yaml", PolicyOptions{ReadFile: func(string) ([]byte, error) { return data, nil }})
		panicerr.Check(t, err)
		var le *cipolicy.LoadError
		if (err == nil) == (p == nil) || (err != nil && !errors.As(err, &le)) {
			t.Fatalf("policy %v, err %v", p != nil, err)
		}
	})
}

// FuzzParseQuote: quotes and signatures never panic the decoder.
func FuzzParseQuote(f *testing.F) {
	ak := newRSAAK(f, 0x0014)
	q := ak.quote(f, quoteSpec{bank: 0x000B, pcrs: []int{0, 7}, values: nil, nonce: []byte("n")})
	f.Add(q.Attest, q.Signature)
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		p, err := parseQuote(Quote{Attest: attest, Signature: sig})
		panicerr.Check(t, err)
		if err != nil {
			return
		}
		_ = p.checkSignature(attest, ak.ak(t), true)
		if p.checkStructure() == nil {
			_, _ = p.selections()
		}
	})
}

// FuzzSignatureLists: EFI_SIGNATURE_LIST parsing never panics.
func FuzzSignatureLists(f *testing.F) {
	f.Add(sigList(guidCertSHA256, make([]byte, 32), make([]byte, 32)))
	f.Add(varData(guidImageSecurity, "db", sigList(guidCertSHA256, make([]byte, 32))))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseSignatureLists(data)
		_, _ = ParseSignatureDatabase(data)
		_, _ = parseVariableData(data)
		_, _ = imageName(data)
	})
}

// FuzzDecode: the hand decoder of TPMS_ATTEST and TPMT_SIGNATURE agrees
// with go-tpm: whatever it accepts re-marshals (with tpm2.Marshal) to
// exactly its input, and tpm2.Unmarshal reads the same structure.
func FuzzDecode(f *testing.F) {
	for _, ak := range []*softAK{newRSAAK(f, tpm2.TPMAlgRSASSA), newRSAAK(f, tpm2.TPMAlgRSAPSS), newECCAK(f)} {
		q := ak.quote(f, quoteSpec{bank: 0x000B, pcrs: []int{0, 7, 23}, nonce: []byte("nonce")})
		f.Add(q.Attest, q.Signature)
	}
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		if a, err := decodeAttest(attest); err == nil {
			got := tpm2.Marshal(a)
			if !bytes.Equal(got, attest) {
				t.Fatalf("TPMS_ATTEST round trip: %x, input %x", got, attest)
			}
			u, uerr := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
			if uerr == nil && !bytes.Equal(tpm2.Marshal(u), got) && a.Magic == tpm2.TPMGeneratedValue {
				t.Fatalf("go-tpm reads TPMS_ATTEST %x differently", attest)
			}
		}
		if s, err := decodeSignature(sig); err == nil {
			got := tpm2.Marshal(s)
			if !bytes.Equal(got, sig) {
				t.Fatalf("TPMT_SIGNATURE round trip: %x, input %x", got, sig)
			}
			u, uerr := tpm2.Unmarshal[tpm2.TPMTSignature](sig)
			if uerr != nil || !bytes.Equal(tpm2.Marshal(u), got) {
				t.Fatalf("go-tpm reads TPMT_SIGNATURE %x differently: %v", sig, uerr)
			}
		}
	})
}

// FuzzDecodePublic: what the TPMT_PUBLIC decoder accepts re-marshals to
// exactly its input, as go-tpm reads it.
func FuzzDecodePublic(f *testing.F) {
	f.Add(tpm2.Marshal(newRSAAK(f, tpm2.TPMAlgRSASSA).pub))
	f.Add(tpm2.Marshal(newRSAAK(f, tpm2.TPMAlgRSAPSS).pub))
	f.Add(tpm2.Marshal(newECCAK(f).pub))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePublic(b)
		if err != nil {
			return
		}
		if got := tpm2.Marshal(p); !bytes.Equal(got, b) {
			t.Fatalf("round trip %x, input %x", got, b)
		}
		u, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
		if err != nil || !bytes.Equal(tpm2.Marshal(u), b) {
			t.Fatalf("go-tpm reads %x differently: %v", b, err)
		}
	})
}

// FuzzJudgeComponents: on any log, the boot state's components are judged
// without a panic, each once, as judging them with every authority would
// (everyAuthority: copies of a certificate, unreadable ones, hash
// authorities, long names, relabelled images), and the check passes
// exactly when none is blocked; past a cap none is judged.
func FuzzJudgeComponents(f *testing.F) {
	// Small seeds: every input the fuzzer finds new is minimised, which
	// costs a judgement per byte tried. TestBootCaps has the large shapes.
	certs := mintCerts(f, 5, func(i int) string { return fmt.Sprintf("Fuzz %d", i) })
	long := mintCerts(f, 1, func(int) string { return strings.Repeat("x", 300) })[0]
	apps := componentDigests(5)
	seed := func(auths [][]byte, apps [][]byte) []byte {
		w, _ := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA256)
		// Secure Boot off: PCR 7 reads strictly without PK, KEK and db, and
		// its authorities count.
		w.Append(7, eventlog.EvEFIVariableDriverConfig, varData(guidGlobalVariable, "SecureBoot", []byte{0}))
		authorityEvents(auths...)(w)
		for p := uint32(0); p < 8; p++ {
			w.Append(p, eventlog.EvSeparator, []byte{0, 0, 0, 0})
		}
		for i, d := range apps {
			typ := eventlog.EvEFIBootServicesApplication
			if i == 2 {
				typ = eventlog.EvEFIAction // an image relabelled
			}
			w.AppendDigests(4, typ, make([]byte, 32), eventlog.Digest{Alg: eventlog.SHA256, Value: d})
		}
		w.AppendDigests(2, eventlog.EvEFIBootServicesDriver, nil, eventlog.Digest{Alg: eventlog.SHA256, Value: apps[0]})
		return w.Bytes()
	}
	f.Add(seed(append(ders(certs[0], resigned(f, certs[0]), certs[1], certs[3]), unreadableCert("Broken"), apps[3]), apps))
	f.Add(seed(append(ders(certs[2], long), apps[1], apps[1]), apps))
	enforce := fmt.Sprintf(`format: csv-policy/v1
name: enforced
rules:
  - {id: signer, action: allow, signer: {certificate: %q, level: any}, except: [{authenticode_sha256: %s}]}
  - {id: denied, action: deny, signer: {tbs: %x}}
  - {id: app0, action: allow, authenticode_sha256: %s, paths: ["pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/*", "pcr2/**"]}
  - {id: app1, action: allow, authenticode_sha256: %s, except: [{signer: {certificate: %q}}]}
`, pemOf(certs[0]), hexs(apps[4]), certs[1].TBSHash, hexs(apps[0]), hexs(apps[1]), pemOf(certs[2]))
	audit := fmt.Sprintf("format: csv-policy/v1\nname: audited\nmode: audit\nrules:\n  - {id: audited, action: allow, signer: {certificate: %q}}\n", pemOf(certs[3]))
	var sets []*cipolicy.Set
	for _, srcs := range [][]string{{enforce}, {enforce, audit}} {
		var ps []*cipolicy.Policy
		for _, src := range srcs {
			p, err := cipolicy.Parse([]byte(src), "ci.yaml")
			if err != nil {
				f.Fatal(err)
			}
			ps = append(ps, p)
		}
		s, err := cipolicy.NewSet(cipolicy.SetOptions{}, ps...)
		if err != nil {
			f.Fatal(err)
		}
		sets = append(sets, s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := eventlog.Parse(data)
		panicerr.Check(t, err)
		if err != nil {
			return
		}
		r := l.Replay()
		m, _ := r.Match(r.Strict())
		v := &Verified{log: l, replay: r, matched: m}
		bs := extractBootState(&view{log: l, matched: m})
		v.boot = bs
		auths := bs.DistinctAuthorities()
		for _, set := range sets {
			comps, ok, detail, err := judgeComponents(context.Background(), v, bs, set)
			panicerr.Check(t, err)
			if err != nil || len(comps) != len(bs.Components) {
				t.Fatalf("%d claims of %d components, err %v", len(comps), len(bs.Components), err)
			}
			over := len(bs.Components) > limits.MaxBootComponents || len(auths) > limits.MaxBootAuthorities
			blocked := false
			for i, c := range comps {
				if over || len(uncovered(v, 2, 4)) > 0 {
					if c.Verdict != "not judged" {
						t.Fatalf("%s judged: %s", c.ID, detail)
					}
					continue
				}
				blocked = blocked || c.Verdict == string(cipolicy.Blocked)
				if len(comps) > 64 {
					continue // the reference is slow
				}
				want := everyAuthority(bs.Components[i], auths, set, pathScoped(set))
				verdict := string(want.Verdict)
				if want.Verdict == cipolicy.Blocked && !want.Enforced {
					verdict = "blocked (audit)"
				}
				if c.Verdict != verdict || c.Rule != want.Rule || c.Reason != want.Reason {
					t.Fatalf("%s: %s %s %q, every authority: %s %s %q", c.ID, c.Verdict, c.Rule, c.Reason, verdict, want.Rule, want.Reason)
				}
			}
			if !over && len(uncovered(v, 2, 4)) == 0 && ok == blocked {
				t.Fatalf("check %v with a component blocked: %v (%s)", ok, blocked, detail)
			}
		}
	})
}
