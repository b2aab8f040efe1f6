package attest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing"
)

// The Secure Boot CA rollover of 2023-2026 (docs/secureboot-2023.md):
// hosts in each state, the example policies of examples/attest judging
// them.
//
// The 2011 certificates are Microsoft's own (the shared test data's
// go-tpm-tools/secure-boot). The 2023 certificates are not in the test
// data, so stand-ins with the same subjects are made here: policies
// compare certificates by their DER bytes, so a stand-in behaves as the
// real one would for everything but its fingerprint.

var standInSerial atomic.Int64

// standIn returns a self-signed RSA certificate with the subject of one of
// Microsoft's 2023 Secure Boot CAs ("CN=Windows UEFI CA 2023,
// O=Microsoft Corporation, C=US"), valid as the real ones are from
// 2023-06-13 for twelve years. It is not Microsoft's certificate.
func standIn(t testing.TB, cn string) *signing.Certificate {
	t.Helper()
	k := testRSAKey(t)
	from := time.Date(2023, 6, 13, 18, 58, 29, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x3300000000 + standInSerial.Add(1)),
		Subject:   pkix.Name{CommonName: cn, Organization: []string{"Microsoft Corporation"}, Country: []string{"US"}},
		NotBefore: from, NotAfter: from.AddDate(12, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := signing.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rolloverCAs are Microsoft's Secure Boot CAs of both generations, and an
// OEM's PK.
type rolloverCAs struct {
	pk                          *signing.Certificate
	kek2011, pca2011, uefi2011  *signing.Certificate
	kek2023, win2023, uefi2023  *signing.Certificate
	oprom2023                   *signing.Certificate
	files                       map[string][]byte // certs/NAME, as the example policies name them
	bootmgr2011, bootmgr2023    []byte            // Authenticode SHA-256 of boot managers signed under each
	shim2011, optionROM2023     []byte
	blackLotusBootmgr, otherBad []byte
}

func newRolloverCAs(t *testing.T) *rolloverCAs {
	t.Helper()
	ca := &rolloverCAs{
		pk:      standIn(t, "csv test OEM Platform Key"),
		kek2011: secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt"), pca2011: secureBootCert(t, "MicWinProPCA2011_2011-10-19.crt"),
		uefi2011: secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt"),
		kek2023:  standIn(t, "Microsoft Corporation KEK 2K CA 2023"), win2023: standIn(t, "Windows UEFI CA 2023"),
		uefi2023: standIn(t, "Microsoft UEFI CA 2023"), oprom2023: standIn(t, "Microsoft Option ROM UEFI CA 2023"),
		bootmgr2011:   eventlog.SHA256.Sum([]byte("bootmgfw.efi signed under the Windows Production PCA 2011")),
		bootmgr2023:   eventlog.SHA256.Sum([]byte("bootmgfw.efi signed under the Windows UEFI CA 2023")),
		shim2011:      eventlog.SHA256.Sum([]byte("shimx64.efi signed under the Microsoft UEFI CA 2011")),
		optionROM2023: eventlog.SHA256.Sum([]byte("a GPU option ROM signed under the Option ROM UEFI CA 2023")),
		otherBad:      eventlog.SHA256.Sum([]byte("some revoked image")),
	}
	// A BlackLotus-era boot manager: Microsoft's dbx_info_msft_latest.json
	// lists this Authenticode SHA-256 of a PCA 2011-signed bootmgfw.efi
	// ("Black Lotus Microsoft Windows 8.1").
	ca.blackLotusBootmgr = mustHexT(t, "07b6d3aa86d0a8d5f46bdd5886d8f20fa2dd9377898d1139bd74b41f5e7ae44b")
	ca.files = map[string][]byte{
		"certs/MicCorKEKCA2011_2011-06-24.der":           ca.kek2011.Raw,
		"certs/MicWinProPCA2011_2011-10-19.der":          ca.pca2011.Raw,
		"certs/MicCorUEFCA2011_2011-06-27.der":           ca.uefi2011.Raw,
		"certs/microsoft corporation kek 2k ca 2023.der": ca.kek2023.Raw,
		"certs/windows uefi ca 2023.der":                 ca.win2023.Raw,
		"certs/microsoft uefi ca 2023.der":               ca.uefi2023.Raw,
		"certs/microsoft option rom uefi ca 2023.der":    ca.oprom2023.Raw,
	}
	return ca
}

// bootApp is a boot component and the db certificate that admitted it.
type bootApp struct {
	authority *signing.Certificate
	digest    []byte
	pcr       uint32 // 4 (boot application) or 2 (option ROM)
}

// sbHost is a host's Secure Boot state and what it booted.
type sbHost struct {
	kek, db   []*signing.Certificate
	dbxCerts  []*signing.Certificate
	dbxHashes [][]byte
	boot      []bootApp
}

// The rollover's states (KB5025885; docs/secureboot-2023.md).
func (ca *rolloverCAs) hosts() map[string]sbHost {
	dbx2011 := [][]byte{ca.otherBad}
	both := func(boot ...bootApp) sbHost {
		return sbHost{kek: []*signing.Certificate{ca.kek2011, ca.kek2023},
			db:        []*signing.Certificate{ca.pca2011, ca.uefi2011, ca.win2023, ca.uefi2023, ca.oprom2023},
			dbxHashes: dbx2011, boot: boot}
	}
	revoked := func(boot ...bootApp) sbHost {
		h := both(boot...)
		h.dbxCerts = []*signing.Certificate{ca.pca2011}
		h.dbxHashes = [][]byte{ca.otherBad, ca.blackLotusBootmgr}
		return h
	}
	old := bootApp{authority: ca.pca2011, digest: ca.bootmgr2011, pcr: 4}
	cur := bootApp{authority: ca.win2023, digest: ca.bootmgr2023, pcr: 4}
	rom := bootApp{authority: ca.oprom2023, digest: ca.optionROM2023, pcr: 2}
	return map[string]sbHost{
		// (1) 2011 only: the 2011 KEK, PCA and UEFI CA; a 2011 boot manager.
		"2011": {kek: []*signing.Certificate{ca.kek2011}, db: []*signing.Certificate{ca.pca2011, ca.uefi2011},
			dbxHashes: dbx2011, boot: []bootApp{old}},
		// (2) both: the 2023 KEK and CAs added; a boot manager of either.
		"both/bootmgr-2011": both(old),
		"both/bootmgr-2023": both(rom, cur),
		// (3) 2023 only: the PCA 2011 revoked by dbx (left in db), with the
		// BlackLotus hashes; a 2023 boot manager.
		"revoked/bootmgr-2023": revoked(rom, cur),
		// (3') new firmware that never held the 2011 CAs.
		"new-firmware": {kek: []*signing.Certificate{ca.kek2023}, db: []*signing.Certificate{ca.win2023, ca.uefi2023, ca.oprom2023},
			dbxHashes: dbx2011, boot: []bootApp{rom, cur}},
		// A host that revoked the PCA 2011 and booted a PCA 2011-signed
		// boot manager all the same (its firmware does not honour dbx).
		"revoked/bootmgr-2011": revoked(old),
		// And one that booted the BlackLotus boot manager dbx revokes by
		// hash, under the PCA 2011 it left trusted.
		"both/blacklotus": func() sbHost {
			h := both(bootApp{authority: ca.pca2011, digest: ca.blackLotusBootmgr, pcr: 4})
			h.dbxHashes = append(h.dbxHashes, ca.blackLotusBootmgr)
			return h
		}(),
	}
}

// sbLog writes the host's evidence (sbEvidence) and verifies it at now.
func (ca *rolloverCAs) sbLog(t *testing.T, h sbHost, now time.Time) *Verified {
	t.Helper()
	ev, opts := ca.sbEvidence(t, h)
	opts.Now = func() time.Time { return now }
	v, err := Verify(context.Background(), ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Time().Equal(now) {
		t.Fatalf("verified at %v, want %v", v.Time(), now)
	}
	return v
}

// sbEvidence writes the host's log (SHA256 bank: the Secure Boot
// variables, each authority before the first component it admitted,
// option ROMs in PCR 2, boot applications in PCR 4) and quotes every PCR
// with a software AK.
func (ca *rolloverCAs) sbEvidence(t *testing.T, h sbHost) (*Evidence, VerifyOptions) {
	t.Helper()
	w, err := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	w.Append(0, eventlog.EvSCRTMVersion, []byte("v1"))
	dbx := append(certLists(h.dbxCerts...), sigList(guidCertSHA256, h.dbxHashes...)...)
	for _, v := range []struct {
		name string
		guid GUID
		data []byte
	}{
		{"SecureBoot", guidGlobalVariable, []byte{1}}, {"PK", guidGlobalVariable, certLists(ca.pk)},
		{"KEK", guidGlobalVariable, certLists(h.kek...)}, {"db", guidImageSecurity, certLists(h.db...)},
		{"dbx", guidImageSecurity, dbx},
	} {
		w.Append(7, eventlog.EvEFIVariableDriverConfig, varData(v.guid, v.name, v.data))
	}
	logged := map[*signing.Certificate]bool{}
	authority := func(c *signing.Certificate) {
		if !logged[c] {
			logged[c] = true
			w.Append(7, eventlog.EvEFIVariableAuthority, varData(guidImageSecurity, "db", append(make([]byte, 16), c.Raw...)))
		}
	}
	// Option ROMs load before the separators, boot applications after.
	for _, a := range h.boot {
		if a.pcr == 2 {
			authority(a.authority)
			w.AppendDigests(2, eventlog.EvEFIBootServicesDriver, make([]byte, 32), eventlog.Digest{Alg: eventlog.SHA256, Value: a.digest})
		}
	}
	for p := uint32(0); p < 8; p++ {
		w.Append(p, eventlog.EvSeparator, []byte{0, 0, 0, 0})
	}
	for _, a := range h.boot {
		if a.pcr == 4 {
			authority(a.authority)
			w.AppendDigests(4, eventlog.EvEFIBootServicesApplication, make([]byte, 32), eventlog.Digest{Alg: eventlog.SHA256, Value: a.digest})
		}
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

// examplePolicy loads an attestation policy of examples/attest, its
// certificates read from ca.files.
func (ca *rolloverCAs) examplePolicy(t *testing.T, name string) *Policy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "attest", name))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(b, name, PolicyOptions{ReadFile: ca.readFile})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// exampleCI loads a code integrity policy of examples/attest.
func (ca *rolloverCAs) exampleCI(t *testing.T, name string) *cipolicy.Set {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "attest", name))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cipolicy.ParseWith(b, name, cipolicy.ParseOptions{ReadFile: ca.readFile})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (ca *rolloverCAs) readFile(name string) ([]byte, error) {
	if b, ok := ca.files[name]; ok {
		return b, nil
	}
	return nil, os.ErrNotExist
}

func failedNames(r *Result) []string {
	f := []string{}
	for _, c := range r.Checks {
		if !c.Passed {
			f = append(f, c.Name)
		}
	}
	return f
}

// The transition policy's cutoff (examples/attest/secureboot-transition.yaml).
var (
	beforeCutoff = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	afterCutoff  = time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC) // the cutoff itself: required from then on
)

// TestSecureBootRollover: every example policy against a host in every
// state of the rollover, each verdict with the checks that failed.
func TestSecureBootRollover(t *testing.T) {
	ca := newRolloverCAs(t)
	hosts := ca.hosts()
	const (
		p2011, pTransition, p2023 = "secureboot-2011.yaml", "secureboot-transition.yaml", "secureboot-2023.yaml"
		ciBoth, ci2023            = "boot-ci.yaml", "boot-ci-2023.yaml"
	)
	const kek, db, revoked, comps = "policy.kek", "policy.db", "policy.not-revoked", "policy.boot-components"
	tests := []struct {
		host, policy, ci string
		now              time.Time
		failed           []string
	}{
		// The 2011 policy: any host that still holds the 2011 CAs, booting
		// what either generation signed; not new firmware.
		{"2011", p2011, ciBoth, beforeCutoff, nil},
		{"both/bootmgr-2011", p2011, ciBoth, beforeCutoff, nil},
		{"both/bootmgr-2023", p2011, ciBoth, beforeCutoff, nil},
		{"revoked/bootmgr-2023", p2011, ciBoth, beforeCutoff, nil},
		{"new-firmware", p2011, ciBoth, beforeCutoff, []string{kek, db}},
		{"revoked/bootmgr-2011", p2011, ciBoth, beforeCutoff, []string{revoked}},
		{"both/blacklotus", p2011, ciBoth, beforeCutoff, []string{revoked}},
		// The transition policy before its cutoff: every state.
		{"2011", pTransition, ciBoth, beforeCutoff, nil},
		{"both/bootmgr-2011", pTransition, ciBoth, beforeCutoff, nil},
		{"both/bootmgr-2023", pTransition, ciBoth, beforeCutoff, nil},
		{"revoked/bootmgr-2023", pTransition, ciBoth, beforeCutoff, nil},
		{"new-firmware", pTransition, ciBoth, beforeCutoff, nil},
		{"revoked/bootmgr-2011", pTransition, ciBoth, beforeCutoff, []string{revoked}},
		{"both/blacklotus", pTransition, ciBoth, beforeCutoff, []string{revoked}},
		// From its cutoff: only hosts that finished the rollover.
		{"2011", pTransition, ciBoth, afterCutoff, []string{kek, db}},
		{"both/bootmgr-2011", pTransition, ciBoth, afterCutoff, []string{db}},
		{"both/bootmgr-2023", pTransition, ciBoth, afterCutoff, []string{db}},
		{"revoked/bootmgr-2023", pTransition, ciBoth, afterCutoff, nil},
		{"new-firmware", pTransition, ciBoth, afterCutoff, nil},
		{"revoked/bootmgr-2011", pTransition, ciBoth, afterCutoff, []string{revoked}},
		{"both/blacklotus", pTransition, ciBoth, afterCutoff, []string{db, revoked}},
		// The 2023 policy, whatever the date: the PCA 2011 trusted by
		// nothing, the boot components admitted by the 2023 CAs only.
		{"2011", p2023, ci2023, beforeCutoff, []string{kek, db, comps}},
		{"both/bootmgr-2011", p2023, ci2023, beforeCutoff, []string{db, comps}},
		{"both/bootmgr-2023", p2023, ci2023, beforeCutoff, []string{db}},
		{"revoked/bootmgr-2023", p2023, ci2023, beforeCutoff, nil},
		{"new-firmware", p2023, ci2023, beforeCutoff, nil},
		{"revoked/bootmgr-2011", p2023, ci2023, beforeCutoff, []string{revoked, comps}},
		{"both/blacklotus", p2023, ci2023, beforeCutoff, []string{db, revoked, comps}},
	}
	verified := map[string]*Verified{}
	for _, tt := range tests {
		t.Run(tt.host+"/"+strings.TrimSuffix(tt.policy, ".yaml")+"/"+tt.now.Format(time.DateOnly), func(t *testing.T) {
			key := tt.host + tt.now.String()
			v := verified[key]
			if v == nil {
				h, ok := hosts[tt.host]
				if !ok {
					t.Fatalf("no host %q", tt.host)
				}
				v = ca.sbLog(t, h, tt.now)
				verified[key] = v
			}
			r, err := Evaluate(context.Background(), v, ca.examplePolicy(t, tt.policy), ca.exampleCI(t, tt.ci))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.failed
			if want == nil {
				want = []string{}
			}
			if f := failedNames(r); !slices.Equal(f, want) || r.Trusted != (len(want) == 0) {
				t.Fatalf("failed %v, want %v:\n%s", f, want, checkLines(r))
			}
		})
	}
}

func checkLines(r *Result) string {
	var b strings.Builder
	for _, c := range r.Checks {
		b.WriteString("  " + c.String() + "\n")
	}
	return b.String()
}

// TestSecureBootRolloverDetails: what the checks say, before and after the
// transition policy's cutoff and for a boot its own dbx revokes.
func TestSecureBootRolloverDetails(t *testing.T) {
	ca := newRolloverCAs(t)
	hosts := ca.hosts()
	detail := func(host, policy, ci string, now time.Time, check string) string {
		t.Helper()
		r, err := Evaluate(context.Background(), ca.sbLog(t, hosts[host], now), ca.examplePolicy(t, policy), ca.exampleCI(t, ci))
		if err != nil {
			t.Fatal(err)
		}
		c := checkOf(r, check)
		if c == nil {
			t.Fatalf("no check %s:\n%s", check, checkLines(r))
		}
		return c.Detail
	}
	tests := []struct {
		host, policy, ci string
		now              time.Time
		check            string
		want             []string
	}{
		{"2011", "secureboot-transition.yaml", "boot-ci.yaml", beforeCutoff, "policy.kek", []string{
			`KEK holds the 0 certificates required and one of "Microsoft Corporation KEK CA 2011"`,
			`; not yet required: KEK lacks "Microsoft Corporation KEK 2K CA 2023" (certs/microsoft corporation kek 2k ca 2023.der) (required from 2027-04-01)`}},
		{"2011", "secureboot-transition.yaml", "boot-ci.yaml", beforeCutoff, "policy.db", []string{
			`not yet required: db lacks "Windows UEFI CA 2023"`,
			`trusts "Microsoft Windows Production PCA 2011" (certs/MicWinProPCA2011_2011-10-19.der) (in db, and no certificate entry of dbx revokes it) (required from 2027-04-01)`}},
		{"both/bootmgr-2023", "secureboot-transition.yaml", "boot-ci.yaml", afterCutoff, "policy.db", []string{
			`db trusts "Microsoft Windows Production PCA 2011"`}},
		{"revoked/bootmgr-2023", "secureboot-2023.yaml", "boot-ci-2023.yaml", beforeCutoff, "policy.db", []string{
			"and trusts none of the 1 not trusted"}},
		{"revoked/bootmgr-2023", "secureboot-2023.yaml", "boot-ci-2023.yaml", beforeCutoff, "policy.not-revoked", []string{
			"no Secure Boot authority or boot component of the boot is revoked by its dbx (2 hashes, 1 certificates)"}},
		{"revoked/bootmgr-2011", "secureboot-transition.yaml", "boot-ci.yaml", beforeCutoff, "policy.not-revoked", []string{
			`authority db certificate "Microsoft Windows Production PCA 2011" (event 15) is a certificate dbx revokes`}},
		{"both/blacklotus", "secureboot-2011.yaml", "boot-ci.yaml", beforeCutoff, "policy.not-revoked", []string{
			"boot component pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/1 () has Authenticode SHA-256 07b6d3aa86d0a8d5f46bdd5886d8f20fa2dd9377898d1139bd74b41f5e7ae44b, which dbx revokes"}},
		{"new-firmware", "secureboot-2011.yaml", "boot-ci.yaml", beforeCutoff, "policy.db", []string{
			`db lacks "Microsoft Windows Production PCA 2011"`, `lacks "Microsoft Corporation UEFI CA 2011"`}},
	}
	for _, tt := range tests {
		d := detail(tt.host, tt.policy, tt.ci, tt.now, tt.check)
		for _, w := range tt.want {
			if !strings.Contains(d, w) {
				t.Errorf("%s %s %s: %q lacks %q", tt.host, tt.policy, tt.check, d, w)
			}
		}
	}
}

// TestSecureBoot2023SVN: the boot manager SVN entry the 2023 example
// shows, commented out, is Microsoft's bootmgfw.efi SVN 9.0 and, once
// required, fails a host whose dbx lacks it.
func TestSecureBoot2023SVN(t *testing.T) {
	ca := newRolloverCAs(t)
	b, err := os.ReadFile(filepath.Join("..", "examples", "attest", "secureboot-2023.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.NewReplacer("# dbx:\n", "dbx:\n", "#   includes:\n", "  includes:\n", "#     - {sha256:", "    - {sha256:").Replace(string(b))
	p, err := ParsePolicy([]byte(src), "secureboot-2023.yaml", PolicyOptions{ReadFile: ca.readFile})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.DBXIncludes) != 1 || len(p.DBXIncludes[0].SHA256) != 1 {
		t.Fatalf("dbx includes %+v", p.DBXIncludes)
	}
	// EFI_BOOTMGR_DBXSVN_GUID, then the minor and major version (little
	// endian), as dbx_info_msft_latest.json describes the entry.
	svn := p.DBXIncludes[0].SHA256[0]
	var g GUID
	copy(g[:], svn[1:17])
	if svn[0] != 1 || g.String() != "9d132b61-59d5-4388-ab1c-185c3cb2eb92" || svn[17] != 0 || svn[18] != 0 || svn[19] != 9 || svn[20] != 0 {
		t.Fatalf("SVN entry %x (GUID %s)", svn, g)
	}
	ci := ca.exampleCI(t, "boot-ci-2023.yaml")
	h := ca.hosts()["revoked/bootmgr-2023"]
	r, err := Evaluate(context.Background(), ca.sbLog(t, h, beforeCutoff), p, ci)
	if err != nil {
		t.Fatal(err)
	}
	if f := failedNames(r); !slices.Equal(f, []string{"policy.dbx"}) {
		t.Fatalf("without the SVN entry: failed %v\n%s", f, checkLines(r))
	}
	h.dbxHashes = append(slices.Clone(h.dbxHashes), svn)
	r, err = Evaluate(context.Background(), ca.sbLog(t, h, beforeCutoff), p, ci)
	if err != nil || !r.Trusted {
		t.Fatalf("with the SVN entry: %v\n%s", err, checkLines(r))
	}
}

// TestParseRolloverFields: kek as a mapping, contains_any, not_trusted and
// from: parse, and their mistakes are errors with their lines.
func TestParseRolloverFields(t *testing.T) {
	h := strings.Repeat("ab", 32)
	ok := "format: csv-attest-policy/v1\nname: x\nkek:\n  contains: [{sha256: " + h + ", from: 2027-04-01}]\n  contains_any: [{sha256: " + h + "}]\n" +
		"db:\n  contains_any: [{sha256: " + h + "}]\n  not_trusted: [{sha256: " + h + ", from: \"2027-04-01T12:00:00+02:00\"}]\n" +
		"dbx:\n  includes: [{sha256: " + h + ", from: 2027-01-01}]\n"
	p, err := ParsePolicy([]byte(ok), "p.yaml", PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.KEK != nil || len(p.KEKContains) != 1 || len(p.KEKContainsAny) != 1 || len(p.DBContainsAny) != 1 || len(p.DBNotTrusted) != 1 ||
		!p.KEKContains[0].From.Equal(time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)) ||
		!p.DBNotTrusted[0].From.Equal(time.Date(2027, 4, 1, 10, 0, 0, 0, time.UTC)) ||
		!p.DBXIncludes[0].From.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || !p.KEKContainsAny[0].From.IsZero() {
		t.Fatalf("%+v", p)
	}
	tests := []struct {
		src  string
		line int
		msg  string
	}{
		{"kek:\n  - {sha256: " + h + ", from: 2027-01-01}\n", 4, `unknown field "from" in kek: entry 1`},
		{"pk:\n  - {sha256: " + h + ", from: 2027-01-01}\n", 4, `unknown field "from" in pk: entry 1`},
		{"db:\n  contains_any: [{sha256: " + h + ", from: 2027-01-01}]\n", 4, `unknown field "from" in db: contains_any: entry 1`},
		{"db:\n  contains_any: []\n", 1, "a contains_any list is empty"},
		{"kek:\n  contains_any: []\n", 1, "a contains_any list is empty"},
		{"kek:\n  exactly: []\n", 4, `unknown field "exactly" in kek`},
		{"kek: {}\n", 3, "kek: give contains, contains_any or both"},
		{"db:\n  not_trusted: [{sha256: " + h + ", from: next year}]\n", 4, `db: not_trusted: entry 1: from "next year": want a date (2026-10-19) or an RFC 3339 time`},
		{"db:\n  not_trusted: [{from: 2027-01-01}]\n", 4, "db: not_trusted: entry 1: give exactly one of certificate, certificate_file, sha256"},
		{"dbx:\n  includes: [{from: 2027-01-01}]\n", 4, "dbx: includes: entry 1: give exactly one of certificate, certificate_file, dbx_file, sha256"},
		{"kek:\n  contains: [{sha256: " + h + "}]\nkek: []\n", 5, `field "kek" repeated`},
	}
	for _, tt := range tests {
		_, err := ParsePolicy([]byte("format: csv-attest-policy/v1\nname: x\n"+tt.src), "p.yaml", PolicyOptions{})
		var le *cipolicy.LoadError
		if !errors.As(err, &le) || !errors.Is(err, cipolicy.ErrInvalidPolicy) {
			t.Fatalf("%q: %v", tt.src, err)
		}
		if !slices.ContainsFunc(le.Problems, func(p cipolicy.Problem) bool { return p.Line == tt.line && strings.Contains(p.Message, tt.msg) }) {
			t.Errorf("%q: %+v, want line %d %q", tt.src, le.Problems, tt.line, tt.msg)
		}
	}
}
