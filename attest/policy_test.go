package attest

import (
	"context"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing"
)

// secureBootCert reads a certificate of go-tpm-tools/secure-boot.
func secureBootCert(t testing.TB, name string) *signing.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(attesttest.Dir(t), "go-tpm-tools/secure-boot", name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := signing.ParseCertificate(attesttest.PEMOrDER(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func varData(g GUID, name string, data []byte) []byte { return attesttest.VariableData(g, name, data) }

func sigList(typ GUID, entries ...[]byte) []byte { return attesttest.SignatureList(typ, entries...) }

func certLists(cs ...*signing.Certificate) []byte {
	var ders [][]byte
	for _, c := range cs {
		ders = append(ders, c.Raw)
	}
	return attesttest.CertLists(ders...)
}

func sipa(typ uint32, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// bootSpec describes a synthetic UEFI boot.
type bootSpec struct {
	secureBoot   byte
	pk, kek, db  []*signing.Certificate
	dbxHashes    [][]byte
	authority    *signing.Certificate
	apps         [][]byte // Authenticode SHA256 digests of boot applications
	debugMode    bool
	windows      [][]byte // SIPA events of one WBCL tagged event, if any
	pcr7Extra    func(w *eventlog.Writer)
	skipVariable string
	// after writes more events after the boot applications (and the
	// Windows events), before ExitBootServices.
	after func(w *eventlog.Writer)
}

// bootLog writes a boot's log (SHA256 bank) and quotes every PCR with a
// software AK.
func bootLog(t *testing.T, s bootSpec) (*Evidence, VerifyOptions) {
	t.Helper()
	w, _ := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA256)
	w.Append(0, eventlog.EvSCRTMVersion, []byte("v1"))
	vars := []struct {
		name string
		guid GUID
		data []byte
	}{
		{"SecureBoot", guidGlobalVariable, []byte{s.secureBoot}}, {"PK", guidGlobalVariable, certLists(s.pk...)},
		{"KEK", guidGlobalVariable, certLists(s.kek...)}, {"db", guidImageSecurity, certLists(s.db...)},
		{"dbx", guidImageSecurity, sigList(guidCertSHA256, s.dbxHashes...)},
	}
	for _, v := range vars {
		if v.name != s.skipVariable {
			w.Append(7, eventlog.EvEFIVariableDriverConfig, varData(v.guid, v.name, v.data))
		}
	}
	if s.debugMode {
		w.Append(7, eventlog.EvEFIAction, []byte("UEFI Debug Mode"))
	}
	if s.pcr7Extra != nil {
		s.pcr7Extra(w)
	}
	for p := uint32(0); p < 8; p++ {
		w.Append(p, eventlog.EvSeparator, []byte{0, 0, 0, 0})
	}
	for _, d := range s.apps {
		if s.authority != nil {
			w.Append(7, eventlog.EvEFIVariableAuthority, varData(guidImageSecurity, "db", append(make([]byte, 16), s.authority.Raw...)))
		}
		w.AppendDigests(4, eventlog.EvEFIBootServicesApplication, make([]byte, 32), eventlog.Digest{Alg: eventlog.SHA256, Value: d})
	}
	if s.windows != nil {
		var data []byte
		for _, e := range s.windows {
			data = append(data, e...)
		}
		w.Append(12, eventlog.EvEventTag, sipa(0x40010001, data))
		w.Append(12, eventlog.EvSeparator, []byte("WBCL"))
	}
	if s.after != nil {
		s.after(w)
	}
	w.Append(5, eventlog.EvEFIAction, []byte("Exit Boot Services Invocation"))
	all := make([]int, 24)
	for i := range all {
		all[i] = i
	}
	nonce := []byte("nonce-0123456789")
	ak := newRSAAK(t, tpm2.TPMAlgRSASSA)
	q := ak.quote(t, quoteSpec{bank: eventlog.SHA256, pcrs: all, values: w.PCRs(), nonce: nonce})
	return &Evidence{EventLog: w.Bytes(), Quotes: []Quote{q}}, VerifyOptions{AK: ak.ak(t), Nonce: nonce}
}

func mustPolicy(t *testing.T, src string, files map[string][]byte) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(src), "attest.yaml", PolicyOptions{ReadFile: func(name string) ([]byte, error) {
		if b, ok := files[name]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSet(t *testing.T, src string, roots ...*signing.Certificate) *cipolicy.Set {
	t.Helper()
	p, err := cipolicy.Parse([]byte(src), "ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: roots}, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemOf(c *signing.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func checkOf(r *Result, name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// TestEvaluateSynthetic: one focused boot per policy check.
func TestEvaluateSynthetic(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA, pca := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt"), secureBootCert(t, "MicWinProPCA2011_2011-10-19.crt")
	boothole := secureBootCert(t, "canonical-boothole.crt")
	shim, grub := eventlog.SHA256.Sum([]byte("shim image")), eventlog.SHA256.Sum([]byte("grub image"))
	revoked := eventlog.SHA256.Sum([]byte("revoked image"))
	good := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA, pca},
		dbxHashes: [][]byte{revoked}, authority: uefiCA, apps: [][]byte{shim, grub}}
	files := map[string][]byte{"pk.pem": pemOf(pk), "kek.pem": pemOf(kek), "uefica.pem": pemOf(uefiCA), "boothole.pem": pemOf(boothole)}
	policy := `format: csv-attest-policy/v1
name: synthetic
secure_boot: required
pk: [{certificate_file: pk.pem}]
kek: [{certificate_file: kek.pem}]
db:
  contains: [{certificate_file: uefica.pem}]
  not_contains: [{certificate_file: boothole.pem}]
dbx:
  includes: [{sha256: ` + hexs(revoked) + `}]
`
	// The db certificate expired in 2026: UEFI, and so the boot judging,
	// ignores dates (as firmware does for boot components).
	ci := `format: csv-policy/v1
name: boot
rules:
  - id: uefi-ca
    action: allow
    signer: {certificate: "` + strings.ReplaceAll(string(pemOf(uefiCA)), "\n", `\n`) + `", level: any}
    scenarios: [boot]
`
	tests := []struct {
		name   string
		spec   func(*bootSpec)
		policy string
		ci     string
		failed []string
	}{
		{name: "trusted"},
		{name: "secure boot off", spec: func(s *bootSpec) { s.secureBoot = 0; s.authority = nil },
			failed: []string{"policy.secure-boot", "policy.boot-components"}},
		{name: "PK not the one given", spec: func(s *bootSpec) { s.pk = []*signing.Certificate{kek} }, failed: []string{"policy.pk"}},
		{name: "KEK holds one more", spec: func(s *bootSpec) { s.kek = []*signing.Certificate{kek, pk} }, failed: []string{"policy.kek"}},
		{name: "db lacks a certificate", spec: func(s *bootSpec) { s.db = []*signing.Certificate{pca}; s.authority = pca },
			failed: []string{"policy.db", "policy.boot-components"}},
		{name: "db holds a forbidden certificate", spec: func(s *bootSpec) { s.db = append(s.db, boothole) }, failed: []string{"policy.db"}},
		{name: "dbx lacks a revocation", spec: func(s *bootSpec) { s.dbxHashes = [][]byte{eventlog.SHA256.Sum([]byte("another image"))} }, failed: []string{"policy.dbx"}},
		{name: "dbx not measured", spec: func(s *bootSpec) { s.skipVariable = "dbx" }, failed: []string{"policy.dbx"}},
		{name: "UEFI debug mode", spec: func(s *bootSpec) { s.debugMode = true }, failed: []string{"policy.debugging"}},
		{name: "unexpected PCR 7 event", spec: func(s *bootSpec) {
			s.pcr7Extra = func(w *eventlog.Writer) { w.Append(7, eventlog.EvEFIAction, []byte("Something Else")) }
		}, failed: []string{"policy.secure-boot", "policy.pk", "policy.kek", "policy.db", "policy.dbx", "policy.debugging", "policy.boot-components"}},
		{name: "variable measured twice", spec: func(s *bootSpec) {
			s.pcr7Extra = func(w *eventlog.Writer) {
				w.Append(7, eventlog.EvEFIVariableDriverConfig, varData(guidGlobalVariable, "SecureBoot", []byte{1}))
			}
		}, failed: []string{"policy.secure-boot", "policy.pk", "policy.kek", "policy.db", "policy.dbx", "policy.debugging", "policy.boot-components"}},
		{name: "windows: kernel debugging and test signing", spec: func(s *bootSpec) {
			s.windows = [][]byte{sipa(sipaOSKernelDebug, []byte{1}), sipa(sipaCodeIntegrity, []byte{1}), sipa(sipaTestSigning, []byte{1})}
		}, failed: []string{"policy.debugging", "policy.code-integrity"}},
		{name: "windows: code integrity off", spec: func(s *bootSpec) {
			s.windows = [][]byte{sipa(sipaCodeIntegrity, []byte{1}), sipa(sipaCodeIntegrity, []byte{0})}
		}, failed: []string{"policy.code-integrity"}},
		{name: "windows: malformed SIPA event", spec: func(s *bootSpec) { s.windows = [][]byte{sipa(sipaBootDebugging, []byte{0, 0})} },
			failed: []string{"policy.debugging", "policy.code-integrity"}},
		{name: "code integrity required of a non-Windows host", policy: policy + "code_integrity: required\n", failed: []string{"policy.code-integrity"}},
		{name: "a component allowed by hash only", ci: `format: csv-policy/v1
name: boot
wdac_compatible: true
rules:
  - {id: shim, action: allow, authenticode_sha256: ` + hexs(shim) + `}
`, failed: []string{"policy.boot-components"}},
		{name: "a component denied by hash", ci: ci + `  - {id: no-grub, action: deny, authenticode_sha256: ` + hexs(grub) + `}
`, failed: []string{"policy.boot-components"}},
		{name: "policy compares flat SHA-256", ci: ci + `  - {id: flat, action: deny, sha256: ` + hexs(grub) + `}
`, failed: []string{"policy.boot-components"}},
		{name: "boot components ignored", spec: func(s *bootSpec) { s.authority = pca }, policy: policy + "boot_components: ignore\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			if tt.spec != nil {
				tt.spec(&s)
			}
			ev, opts := bootLog(t, s)
			v, err := Verify(context.Background(), ev, opts)
			if err != nil {
				t.Fatal(err)
			}
			psrc, csrc := policy, ci
			if tt.policy != "" {
				psrc = tt.policy
			}
			if tt.ci != "" {
				csrc = tt.ci
			}
			r, err := Evaluate(context.Background(), v, mustPolicy(t, psrc, files), mustSet(t, csrc))
			if err != nil {
				t.Fatal(err)
			}
			var f []string
			for _, c := range r.Checks {
				if !c.Passed {
					f = append(f, c.Name)
				}
			}
			if !slices.Equal(f, tt.failed) || r.Trusted != (len(tt.failed) == 0) {
				t.Fatalf("failed %v, want %v:\n%v", f, tt.failed, r.Checks)
			}
		})
	}
}

func hexs(b []byte) string { return strings.ToLower(strings.TrimSpace(hexString(b))) }

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// TestAuthorityAmbiguity: which authority admitted which component is not
// proven, so a component is allowed only if every authority of the boot
// would admit it.
func TestAuthorityAmbiguity(t *testing.T) {
	uefiCA, pca := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt"), secureBootCert(t, "MicWinProPCA2011_2011-10-19.crt")
	app1, app2 := eventlog.SHA256.Sum([]byte("app 1")), eventlog.SHA256.Sum([]byte("app 2"))
	s := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pca}, kek: []*signing.Certificate{pca}, db: []*signing.Certificate{uefiCA, pca},
		apps: [][]byte{app1}, authority: pca}
	ev, opts := bootLog(t, s)
	v, err := Verify(context.Background(), ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	onlyPCA := `format: csv-policy/v1
name: boot
rules:
  - id: pca
    action: allow
    signer: {certificate: "` + strings.ReplaceAll(string(pemOf(pca)), "\n", `\n`) + `", level: any}
`
	p := mustPolicy(t, "format: csv-attest-policy/v1\nname: x\n", nil)
	r, err := Evaluate(context.Background(), v, p, mustSet(t, onlyPCA))
	if err != nil || !checkOf(r, "policy.boot-components").Passed {
		t.Fatalf("one authority: %v %v", err, r.Checks)
	}
	// A second image admitted by the UEFI CA: log order would pair app 1
	// with the PCA, but nothing proves it; both are judged with both.
	s.apps, s.authority = [][]byte{app1, app2}, nil
	ev, opts = bootLogTwoAuthorities(t, s, pca, uefiCA)
	v, err = Verify(context.Background(), ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	r, _ = Evaluate(context.Background(), v, p, mustSet(t, onlyPCA))
	c := checkOf(r, "policy.boot-components")
	if c.Passed || !strings.Contains(c.Detail, "2 of 2 boot components blocked") {
		t.Fatalf("%v", c)
	}
	for _, bc := range r.Claims.BootComponents {
		if len(bc.Authorities) != 2 || !strings.Contains(bc.Reason, "with authority db certificate \"Microsoft Corporation UEFI CA 2011\"") {
			t.Fatalf("%+v", bc)
		}
	}
}

// bootLogTwoAuthorities writes a boot whose two applications were
// admitted by two db certificates, each logged before its application.
func bootLogTwoAuthorities(t *testing.T, s bootSpec, a1, a2 *signing.Certificate) (*Evidence, VerifyOptions) {
	apps := s.apps
	s.apps = nil
	s.pcr7Extra = nil
	ev, _ := bootLog(t, s)
	l, err := eventlog.Parse(ev.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA256)
	for _, e := range l.Events[1:] {
		if e.PCR == 5 && e.Type == eventlog.EvEFIAction {
			for i, d := range apps {
				auth := []*signing.Certificate{a1, a2}[i%2]
				w.Append(7, eventlog.EvEFIVariableAuthority, varData(guidImageSecurity, "db", append(make([]byte, 16), auth.Raw...)))
				w.AppendDigests(4, eventlog.EvEFIBootServicesApplication, make([]byte, 32), eventlog.Digest{Alg: eventlog.SHA256, Value: d})
			}
		}
		w.AppendDigests(e.PCR, e.Type, e.Data, e.Digests...)
	}
	all := make([]int, 24)
	for i := range all {
		all[i] = i
	}
	nonce := []byte("nonce-0123456789")
	ak := newRSAAK(t, tpm2.TPMAlgRSASSA)
	q := ak.quote(t, quoteSpec{bank: eventlog.SHA256, pcrs: all, values: w.PCRs(), nonce: nonce})
	return &Evidence{EventLog: w.Bytes(), Quotes: []Quote{q}}, VerifyOptions{AK: ak.ak(t), Nonce: nonce}
}

// TestEvaluateRealGCE: the real GCE COS 85 attestation against a policy
// naming its own keys (taken from its verified PCR 7) and a code integrity
// policy allowing its db key.
func TestEvaluateRealGCE(t *testing.T) {
	a := attesttest.FindAttestation(t, "go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json")
	v, err := Verify(context.Background(), evidenceOf(a, true), optsOf(t, a))
	if err != nil {
		t.Fatal(err)
	}
	bs := v.BootState()
	dbKey := bs.DB.Certificates()[0]
	files := map[string][]byte{"pk.pem": pemOf(bs.PK.Certificates()[0]), "kek.pem": pemOf(bs.KEK.Certificates()[0]), "db.pem": pemOf(dbKey),
		"dbx0.pem": pemOf(bs.DBX.Certificates()[0]), "dbx3.pem": pemOf(bs.DBX.Certificates()[3]),
		"MicCorUEFCA2011_2011-06-27.crt": pemOf(secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt"))}
	p := mustPolicy(t, `format: csv-attest-policy/v1
name: gce-cos
pk: [{certificate_file: pk.pem}]
kek: [{certificate_file: kek.pem}]
db:
  contains: [{certificate_file: db.pem}]
  not_contains: [{certificate_file: MicCorUEFCA2011_2011-06-27.crt}]
dbx:
  includes:
    - certificate_file: dbx0.pem
    - certificate_file: dbx3.pem
`, files)
	ci := mustSet(t, `format: csv-policy/v1
name: cos-boot
rules:
  - id: cos-db-key
    action: allow
    signer: {certificate: "`+strings.ReplaceAll(string(pemOf(dbKey)), "\n", `\n`)+`", level: leaf}
    scenarios: [boot]
`)
	r, err := Evaluate(context.Background(), v, p, ci)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Trusted {
		t.Fatalf("%v", r.Checks)
	}
	cl := r.Claims
	if !cl.SecureBootEnabled || !cl.BootDebuggingDisabled || cl.CodeIntegrityEnabled != nil || len(cl.BootComponents) != 3 ||
		hexString(cl.PCRs.Get(eventlog.SHA256, 7)) != "3365d7fa2b024c852913c06e04ffbfa6ea5289f743bbf1a76f7ffdf21ed84793" || len(cl.KernelCmdlines) != 1 {
		t.Fatalf("claims %+v", cl)
	}
	for _, c := range cl.BootComponents {
		if c.Verdict != "allowed" || c.Rule != "cos-db-key" || !slices.Equal(c.Authorities, []string{`db certificate "UEFI DB Key v10"`}) {
			t.Fatalf("component %+v", c)
		}
	}
	var names []eventlog.Workaround
	for _, w := range r.Workarounds {
		names = append(names, w.Name)
	}
	if !slices.Equal(names, []eventlog.Workaround{eventlog.WorkaroundShimAuthorityByte}) {
		t.Fatalf("workarounds %v", names)
	}
	// A dbx update the host has not applied.
	b, err := os.ReadFile(filepath.Join(attesttest.Dir(t), "go-tpm-tools/secure-boot/dbxupdate_x64-2021-04-29.bin"))
	if err != nil {
		t.Fatal(err)
	}
	p2 := mustPolicy(t, "format: csv-attest-policy/v1\nname: x\ndbx:\n  includes: [{dbx_file: u.bin}]\n", map[string][]byte{"u.bin": b})
	if len(p2.DBXIncludes[0].SHA256) == 0 {
		t.Fatal("no hashes read from the dbx update")
	}
	r, _ = Evaluate(context.Background(), v, p2, ci)
	if c := checkOf(r, "policy.dbx"); c.Passed || !strings.Contains(c.Detail, "u.bin: ") || r.Trusted {
		t.Fatalf("%v", c)
	}
	if _, err := Evaluate(context.Background(), v, p, nil); !errors.Is(err, ErrNoCIPolicy) {
		t.Fatalf("no CI policy: %v", err)
	}
}

// TestEvaluateRealWindows: the Windows GCP attestation, its boot manager
// judged by the WDAC template AllowMicrosoft.xml, whose well-known root
// rule needs the operator to supply the root (here taken from the verified
// db).
func TestEvaluateRealWindows(t *testing.T) {
	a := attesttest.FindAttestation(t, "go-attestation/windows_gcp_shielded_vm.json")
	v, err := Verify(context.Background(), evidenceOf(a, true), optsOf(t, a))
	if err != nil {
		t.Fatal(err)
	}
	xml, err := os.ReadFile(filepath.Join(attesttest.Dir(t), "..", "wdac", "AllowMicrosoft.xml"))
	if err != nil {
		t.Skip("no WDAC templates:", err)
	}
	cp, err := cipolicy.Parse(xml, "AllowMicrosoft.xml")
	if err != nil {
		t.Fatal(err)
	}
	var root *signing.Certificate
	for _, c := range v.BootState().DB.Certificates() {
		if c.CommonName() == "Microsoft Root Certificate Authority 2010" {
			root = c
		}
	}
	p := mustPolicy(t, "format: csv-attest-policy/v1\nname: windows\ncode_integrity: required\n", nil)
	for _, tc := range []struct {
		roots   []*signing.Certificate
		trusted bool
	}{{[]*signing.Certificate{root}, true}, {nil, false}} {
		// The template audits; enforce it, so that a block counts.
		set, err := cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: tc.roots, Mode: cipolicy.Enforce}, cp)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Evaluate(context.Background(), v, p, set)
		if err != nil {
			t.Fatal(err)
		}
		if r.Trusted != tc.trusted {
			t.Fatalf("roots %d: %v %+v", len(tc.roots), r.Checks, r.Claims.BootComponents)
		}
		cl := r.Claims
		if *cl.CodeIntegrityEnabled != true || *cl.TestSigningDisabled != true || !cl.BootDebuggingDisabled || len(cl.BootComponents) != 1 {
			t.Fatalf("claims %+v", cl)
		}
	}
}

// TestParsePolicyErrors: strict decoding, every problem with its line.
func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		src  string
		line int
		msg  string
	}{
		{"format: csv-attest-policy/v1\nname: x\nsecureboot: required\n", 3, `unknown field "secureboot" in policy`},
		{"format: csv-attest-policy/v1\nname: x\nsecure_boot: maybe\n", 3, `secure_boot: unknown value "maybe"`},
		{"format: csv-attest-policy/v1\nname: x\nname: y\n", 3, `field "name" repeated (first at line 2)`},
		{"name: x\n", 1, `missing field "format"`},
		{"format: csv-attest-policy/v2\nname: x\n", 1, `unsupported format "csv-attest-policy/v2"`},
		{"format: csv-attest-policy/v1\nname: x\npk:\n  - {sha256: 00}\n", 4, "pk: entry 1: sha256 \"00\": want 64 hex digits"},
		{"format: csv-attest-policy/v1\nname: x\npk:\n  - {certificate_file: a.pem, sha256: " + strings.Repeat("0", 64) + "}\n", 4, "give exactly one of"},
		{"format: csv-attest-policy/v1\nname: x\ndb:\n  contains: [{certificate_file: a.pem}]\n", 4, "this policy was loaded without access to other files"},
		{"format: csv-attest-policy/v1\nname: &a x\ndebugging: *a\n", 3, "YAML aliases are not allowed"},
		{"format: [\n", 1, "YAML syntax"},
	}
	for _, tt := range tests {
		_, err := ParsePolicy([]byte(tt.src), "p.yaml", PolicyOptions{})
		var le *cipolicy.LoadError
		if !errors.As(err, &le) || !errors.Is(err, cipolicy.ErrInvalidPolicy) {
			t.Fatalf("%q: %v", tt.src, err)
		}
		if !slices.ContainsFunc(le.Problems, func(p cipolicy.Problem) bool { return p.Line == tt.line && strings.Contains(p.Message, tt.msg) }) {
			t.Errorf("%q: %+v, want line %d %q", tt.src, le.Problems, tt.line, tt.msg)
		}
	}
	p, err := ParsePolicy([]byte("format: csv-attest-policy/v1\nname: defaults\n"), "p.yaml", PolicyOptions{})
	if err != nil || p.SecureBoot != Required || p.Debugging != Forbidden || p.CodeIntegrity != RequiredWindows || p.BootComponents != JudgeCIPolicy {
		t.Fatalf("defaults %+v %v", p, err)
	}
}

// TestDBXUpdateFiles: Microsoft's dbx updates (authenticated variables)
// parse into their hashes.
func TestDBXUpdateFiles(t *testing.T) {
	for _, f := range []string{"dbxupdate-2014-08-11.bin", "dbxupdate_x64-2020-10-12.bin", "dbxupdate_x64-2021-04-29.bin"} {
		b, err := os.ReadFile(filepath.Join(attesttest.Dir(t), "go-tpm-tools/secure-boot", f))
		if err != nil {
			t.Fatal(err)
		}
		db, err := ParseSignatureDatabase(b)
		if err != nil || len(db.SHA256) == 0 || len(db.Others) != 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// TestREADMEExamples: the policies docs/attest.md shows
// parse, their files read from the shared Secure Boot certificates and dbx
// updates.
func TestREADMEExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "attest.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	if end := strings.Index(section, "\n## Attestation service"); end >= 0 {
		section = section[:end] // the service's configuration: internal/cli/attest tests it
	}
	var blocks []string
	for _, part := range strings.Split(section, "```yaml\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) != 4 { // the fourth, ci_policies: TestDocsCIPoliciesExample
		t.Fatalf("%d YAML examples", len(blocks))
	}
	// The smallest policy: format and name, every default the strict one;
	// with its commented line, boot components not judged.
	small, err := ParsePolicy([]byte(blocks[1]), "smallest.yaml", PolicyOptions{})
	if err != nil || small.SecureBoot != Required || small.Debugging != Forbidden || small.CodeIntegrity != RequiredWindows ||
		small.BootComponents != JudgeCIPolicy || small.PK != nil || small.DBContains != nil {
		t.Fatalf("the smallest policy: %+v %v", small, err)
	}
	ignore := strings.Replace(blocks[1], "# boot_components: ignore", "boot_components: ignore", 1)
	if p, err := ParsePolicy([]byte(ignore), "smallest.yaml", PolicyOptions{}); err != nil || p.BootComponents != Ignore {
		t.Fatalf("the smallest policy, boot components ignored: %+v %v", p, err)
	}
	dir := filepath.Join(attesttest.Dir(t), "go-tpm-tools/secure-boot")
	read := func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, filepath.Base(name)))
	}
	p, err := ParsePolicy([]byte(blocks[0]), "attest.yaml", PolicyOptions{ReadFile: read})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.PK) != 1 || len(p.DBNotContains) != 2 || len(p.DBXIncludes) != 3 || len(p.DBXIncludes[0].SHA256) == 0 ||
		p.DBNotContains[1].SHA256 != secureBootCert(t, "cisco-boothole.crt").SHA256 {
		t.Fatalf("%+v", p)
	}
	if _, err := cipolicy.ParseWith([]byte(blocks[2]), "boot-ci.yaml", cipolicy.ParseOptions{ReadFile: read}); err != nil {
		t.Fatal(err)
	}
}
