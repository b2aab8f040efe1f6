package csv

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

// signPE signs in with osslsigncode into out.
func signPE(t *testing.T, ossl string, f testca.Files, in, out string, extra ...string) {
	t.Helper()
	args := append([]string{"sign", "-certs", f.Chain, "-key", f.Key, "-h", "sha256", "-in", in, "-out", out}, extra...)
	if b, err := exec.Command(ossl, args...).CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode %v: %v\n%s", args, err, b)
	}
}

// signELF appends a kernel-format signature to the file at path.
func appendModSig(t *testing.T, path string, leaf *testca.Cert) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(data)
	trailer, err := modsig.Sign(d[:], leaf.Cert, leaf.Key, modsig.SignOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, trailer...), 0o755); err != nil {
		t.Fatal(err)
	}
}

func sigCert(t *testing.T, c *x509.Certificate) *signing.Certificate {
	t.Helper()
	sc, err := signing.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestSignerRulesEndToEnd signs binaries with independent tools and judges
// them with signer rules through the whole pipeline.
func TestSignerRulesEndToEnd(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	ecLeaf := ca.Leaf(t, testca.LeafOptions{CommonName: "EC Signing", KeyType: testca.ECDSAP256})
	rogue := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", SelfSigned: true})
	keys := t.TempDir()
	fLeaf := ca.WriteFiles(t, filepath.Join(mkdir(t, keys, "leaf")), leaf)
	fEC := ca.WriteFiles(t, filepath.Join(mkdir(t, keys, "ec")), ecLeaf)
	fRogue := ca.WriteFiles(t, filepath.Join(mkdir(t, keys, "rogue")), rogue)

	dir := t.TempDir()
	raw := filepath.Join(keys, "app.exe")
	os.WriteFile(raw, testbin.PE(testbin.PEOptions{Overlay: []byte("xyz")}), 0o644)
	signPE(t, ossl, fLeaf, raw, filepath.Join(dir, "signed.exe"))
	signPE(t, ossl, fEC, raw, filepath.Join(dir, "ecdsa.exe"))
	signPE(t, ossl, fRogue, raw, filepath.Join(dir, "rogue.exe"))
	signPE(t, ossl, fRogue, raw, filepath.Join(keys, "rogue-outer.exe"))
	signPE(t, ossl, fLeaf, filepath.Join(keys, "rogue-outer.exe"), filepath.Join(dir, "nested.exe"), "-nest")
	tampered, _ := os.ReadFile(filepath.Join(dir, "signed.exe"))
	tampered[0x210] ^= 1 // in .text
	os.WriteFile(filepath.Join(dir, "tampered.exe"), tampered, 0o644)
	os.WriteFile(filepath.Join(dir, "unsigned.exe"), testbin.PE(testbin.PEOptions{}), 0o644)
	os.WriteFile(filepath.Join(dir, "module.ko"), testbin.ELF(testbin.ELFOptions{}), 0o644)
	appendModSig(t, filepath.Join(dir, "module.ko"), leaf)
	os.WriteFile(filepath.Join(dir, "other.ko"), testbin.ELF(testbin.ELFOptions{Class32: true}), 0o644)
	appendModSig(t, filepath.Join(dir, "other.ko"), rogue)

	inter := sigCert(t, ca.Intermediate.Cert)
	src := fmt.Sprintf(`format: csv-policy/v1
name: signers
version: "1"
rules:
  - id: build-pca
    action: allow
    signer: {tbs: %s, level: issuer, ekus: [1.3.6.1.5.5.7.3.3]}
`, inter.TBSHashHex())
	p, err := cipolicy.Parse([]byte(src), "signers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	run := func(p *cipolicy.Policy, certs ...*signing.Certificate) map[string]Result {
		set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
		if err != nil {
			t.Fatal(err)
		}
		rep := validate(t, set, Options{Certificates: certs}, dir)
		out := map[string]Result{}
		for _, r := range rep.Results {
			out[r.Path] = r
		}
		return out
	}
	// The ELF signature carries no certificates: its signer comes from
	// --certs (here the leaf and its issuer), and the chain from there up.
	chain := []*signing.Certificate{sigCert(t, leaf.Cert), inter}
	got := run(p, chain...)
	want := map[string]string{
		"signed.exe":   "allowed/allowed-by-signer/0",
		"ecdsa.exe":    "allowed/allowed-by-signer/0",
		"nested.exe":   "allowed/allowed-by-signer/1", // the nested signature admits it
		"rogue.exe":    "blocked/not-allowed/-1",
		"tampered.exe": "blocked/not-allowed/-1",
		"unsigned.exe": "blocked/unsigned/-1",
		"module.ko":    "allowed/allowed-by-signer/0",
		"other.ko":     "blocked/not-allowed/-1",
	}
	for path, w := range want {
		r, ok := got[path]
		if !ok {
			t.Errorf("%s: not judged", path)
			continue
		}
		d := r.Decision
		if s := fmt.Sprintf("%s/%s/%d", d.Verdict, d.Kind, d.Signature); s != w {
			t.Errorf("%s: %s (%s), want %s", path, s, d.Reason, w)
		}
	}
	if r := got["tampered.exe"]; !strings.Contains(r.Decision.Reason, "image digest mismatch") {
		t.Errorf("tampered: reason %q does not say the digest differs", r.Decision.Reason)
	}
	if r := run(p)["module.ko"]; r.Decision.Verdict != cipolicy.Blocked || !strings.Contains(r.Decision.Reason, "does not verify") {
		t.Errorf("ELF without its signer supplied: %q", r.Decision.Reason)
	}
	if r := got["other.ko"]; !strings.Contains(r.Decision.Reason, "does not verify") {
		t.Errorf("ELF by an unknown signer: %q", r.Decision.Reason)
	}
	if r := got["nested.exe"]; len(r.Signatures) != 2 || !r.Signatures[1].Nested() {
		t.Errorf("nested: %d signatures", len(r.Signatures))
	}

	// Under WDAC compatibility ECDSA never matches, as on Windows.
	p.WDACCompatible = true
	if r := run(p, chain...)["ecdsa.exe"]; r.Decision.Verdict != cipolicy.Blocked {
		t.Errorf("ECDSA under WDAC compatibility: %s", r.Decision.Reason)
	}
	p.WDACCompatible = false

	// A deny rule for the leaked leaf blocks what the PCA rule admits.
	p.Rules = append(p.Rules, cipolicy.Rule{ID: "leaked", Action: cipolicy.Deny,
		Signer: &cipolicy.SignerMatch{Level: cipolicy.LevelLeaf, Cert: cipolicy.CertRef{TBSHash: sigCert(t, leaf.Cert).TBSHash}}})
	got = run(p, chain...)
	for _, path := range []string{"signed.exe", "module.ko", "nested.exe"} {
		if d := got[path].Decision; d.Kind != cipolicy.KindDenied || d.Rule != "leaked" {
			t.Errorf("%s with the leaf denied: %s/%s", path, d.Verdict, d.Kind)
		}
	}
	if d := got["ecdsa.exe"].Decision; d.Verdict != cipolicy.Allowed {
		t.Errorf("ecdsa.exe (another leaf) with the leaf denied: %s", d.Reason)
	}
}

func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(parts...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCorpusSignersMatchOsslsigncode judges the corpus of make-corpus.sh with
// a signer rule for its build PCA and compares with the signer osslsigncode
// found for each file (expected.tsv): build-signed files are allowed, rogue
// and unsigned ones blocked.
func TestCorpusSignersMatchOsslsigncode(t *testing.T) {
	testenv.Tool(t, "osslsigncode")
	dir := corpus(t)
	src := `format: csv-policy/v1
name: corpus-signers
version: "1"
rules:
  - id: build-pca
    action: allow
    signer:
      certificate_file: keys/inter.pem
      level: issuer
      ekus: [1.3.6.1.5.5.7.3.3]
`
	p, err := cipolicy.ParseWith([]byte(src), "corpus.yaml", cipolicy.ParseOptions{ReadFile: func(n string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, n))
	}})
	if err != nil {
		t.Fatal(err)
	}
	set, _ := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	rep := validate(t, set, Options{}, filepath.Join(dir, "build"))
	got := map[string]*Result{}
	for i := range rep.Results {
		got[rep.Results[i].Path] = &rep.Results[i]
	}
	f, err := os.Open(filepath.Join(dir, "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	counts := map[string]int{}
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 4 || cols[1] != "pe" {
			continue
		}
		r := got[cols[0]]
		if r == nil {
			t.Errorf("%s: not judged", cols[0])
			continue
		}
		counts[cols[3]]++
		wantAllowed := cols[3] == "build"
		if r.Decision.Allowed() != wantAllowed {
			t.Errorf("%s (signer %s per osslsigncode): %s", cols[0], cols[3], r.Decision.Reason)
		}
		if cols[3] != "none" && (len(r.Signatures) != 1 || !r.Signatures[0].Verified()) {
			t.Errorf("%s: signatures %+v", cols[0], r.Signatures)
		}
	}
	if counts["build"] == 0 || counts["rogue"] == 0 || counts["none"] == 0 {
		t.Fatalf("corpus lacks a kind of PE: %v", counts)
	}
}

// debianEFI returns the unpacked Debian shim and GRUB (scripts/
// fetch-debian-efi.sh), or skips.
func debianEFI(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CSV_DEBIAN_EFI")
	if dir == "" {
		dir = "/tmp/csv-debian-efi"
	}
	if _, err := os.Stat(filepath.Join(dir, "usr/lib/shim/shimx64.efi.signed")); err != nil {
		if os.Getenv("CSV_REQUIRE_PEERS") == "1" {
			t.Fatalf("Debian's signed shim is not in %s (run scripts/fetch-debian-efi.sh %s)", dir, dir)
		}
		t.Skipf("Debian's signed shim is not in %s (run scripts/fetch-debian-efi.sh %s)", dir, dir)
	}
	return dir
}

// TestRealShimExpiredSigner judges Debian's shim, signed by Microsoft under
// the UEFI CA 2011 with a leaf that expired on 2026-06-26, with a signer
// rule for that CA: strict validity blocks it; a trusted timestamp from
// when the leaf was valid admits it; WDAC compatibility (expiry ignored, as
// on Windows) admits it.
func TestRealShimExpiredSigner(t *testing.T) {
	dir := debianEFI(t)
	ca2011 := testenv.Shared(t, "testdata/eventlogs/go-tpm-tools/secure-boot/MicCorUEFCA2011_2011-06-27.crt")
	shim := filepath.Join(dir, "usr/lib/shim/shimx64.efi.signed")
	in := InspectFile(t.Context(), shim, nil, InspectOptions{})
	if in.Err != nil || len(in.Signatures) != 2 || in.Signatures[0].Timestamp == nil {
		t.Fatalf("shim: %v, %d signatures", in.Err, len(in.Signatures))
	}
	// The Microsoft time-stamp authority that countersigned signature 0.
	tsa := in.Signatures[0].Timestamp.Chains[0][len(in.Signatures[0].Timestamp.Chains[0])-1]
	policy := func(header string) *cipolicy.Set {
		src := "format: csv-policy/v1\nname: shim\nversion: '1'\n" + header + `
rules:
  - id: uefi-ca-2011
    action: allow
    signer: {certificate_file: ca2011.crt, level: issuer}
`
		p, err := cipolicy.ParseWith([]byte(src), "shim.yaml", cipolicy.ParseOptions{ReadFile: func(string) ([]byte, error) { return os.ReadFile(ca2011) }})
		if err != nil {
			t.Fatal(err)
		}
		s, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	judge := func(s *cipolicy.Set) cipolicy.Decision {
		return validate(t, s, Options{}, shim).Results[0].Decision
	}
	if d := judge(policy("")); d.Allowed() || !strings.Contains(d.Reason, `"Microsoft Windows UEFI Driver Publisher"`) || !strings.Contains(d.Reason, "is not valid now") {
		t.Errorf("strict: %s: %s", d.Verdict, d.Reason)
	}
	if d := judge(policy("timestamp_authorities: [{tbs: " + tsa.TBSHashHex() + "}]")); !d.Allowed() || d.Signature != 0 {
		t.Errorf("with Microsoft's TSA trusted: %s: %s", d.Verdict, d.Reason)
	}
	if d := judge(policy("wdac_compatible: true")); !d.Allowed() {
		t.Errorf("WDAC compatibility: %s: %s", d.Verdict, d.Reason)
	}
}

// appendEntry returns the signed PE data with a WIN_CERTIFICATE entry
// (revision 2.0, type typ, holding payload, padded to 8 bytes) added to its
// certificate table.
func appendEntry(t *testing.T, data []byte, typ uint16, payload []byte) []byte {
	t.Helper()
	pf, err := pe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil || !pf.Signed() {
		t.Fatalf("not a signed PE: %v", err)
	}
	entry := make([]byte, 8, 8+len(payload)+7)
	binary.LittleEndian.PutUint32(entry, uint32(8+len(payload)))
	binary.LittleEndian.PutUint16(entry[4:], pe.CertRevision2_0)
	binary.LittleEndian.PutUint16(entry[6:], typ)
	entry = append(entry, payload...)
	entry = append(entry, make([]byte, -len(entry)&7)...)
	out := append(bytes.Clone(data), entry...)
	binary.LittleEndian.PutUint32(out[pf.CertDirOffset+4:], uint32(pf.CertTable.Len)+uint32(len(entry)))
	return out
}

// TestCertificateTableSmuggling judges a correctly signed PE whose
// certificate table carries a second entry of 4 KB of junk, or an X509
// entry whose payload starts with "MZ" (the CVE-2013-3900 class: an
// installer that reads data from its own certificate table runs it): the
// file is malformed whatever the policy, even one whose signer or hash rule
// admits the signed file; osslsigncode refuses both files too.
func TestCertificateTableSmuggling(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	keys := t.TempDir()
	files := ca.WriteFiles(t, keys, leaf)
	raw := filepath.Join(keys, "app.exe")
	os.WriteFile(raw, testbin.PE(testbin.PEOptions{Overlay: []byte("xyz")}), 0o644)
	dir := t.TempDir()
	signPE(t, ossl, files, raw, filepath.Join(dir, "signed.exe"))
	signed, err := os.ReadFile(filepath.Join(dir, "signed.exe"))
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte("junk"), 1024)
	smuggled := map[string][]byte{
		"junk-entry.exe": appendEntry(t, signed, pe.CertTypePKCSSignedData, junk),
		"x509-mz.exe":    appendEntry(t, signed, pe.CertTypeX509, append([]byte("MZ\x90\x00"), junk...)),
	}
	for name, data := range smuggled {
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
		path := filepath.Join(dir, name)
		if out, err := exec.Command(ossl, "verify", "-CAfile", files.Root, "-in", path).CombinedOutput(); err == nil {
			t.Errorf("osslsigncode accepts %s:\n%s", name, out)
		}
	}
	inter := sigCert(t, ca.Intermediate.Cert)
	policies := map[string]*cipolicy.Set{
		"signer": policyFor(t, fmt.Sprintf("{id: pca, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex())),
		"hash":   policyFor(t, fmt.Sprintf("{id: app, action: allow, authenticode_sha256: %s}", authHex(t, signed))),
	}
	for name, set := range policies {
		got := map[string]Result{}
		for _, r := range validate(t, set, Options{}, dir).Results {
			got[r.Path] = r
		}
		if d := got["signed.exe"].Decision; !d.Allowed() {
			t.Fatalf("%s policy: the signed file is not allowed: %s", name, d.Reason)
		}
		for path, want := range map[string]string{
			"junk-entry.exe": "malformed PE at offset ",
			"x509-mz.exe":    "WIN_CERTIFICATE 1: revision 0x0200, type X509",
		} {
			r := got[path]
			var mb *MalformedBinaryError
			if d := r.Decision; d.Allowed() || d.Kind != cipolicy.KindMalformed || !errors.As(r.Err, &mb) || !strings.Contains(d.Reason, want) {
				t.Errorf("%s policy, %s: %s/%s %q (error %v); want blocked as malformed saying %q", name, path, d.Verdict, d.Kind, d.Reason, r.Err, want)
			}
		}
	}
}

// TestMalformedModuleSignatureIsMalformed judges an ELF file whose appended
// signature does not parse: a malformed ELF (with the offset), not a file
// that could not be read.
func TestMalformedModuleSignatureIsMalformed(t *testing.T) {
	junk := bytes.Repeat([]byte("junk"), 64)
	trailer := append([]byte{0, 0, 2, 0, 0, 0, 0, 0}, binary.BigEndian.AppendUint32(nil, uint32(len(junk)))...)
	data := append(append(testbin.ELF(testbin.ELFOptions{}), junk...), append(trailer, modsig.Magic...)...)
	dir := tree(t, map[string][]byte{"module.ko": data})
	r := validate(t, policyFor(t), Options{}, dir).Results[0]
	var mb *MalformedBinaryError
	if !errors.As(r.Err, &mb) || mb.Format != FormatELF || mb.Offset != int64(len(data)-len(junk)-len(trailer)-len(modsig.Magic)) ||
		!strings.Contains(mb.Reason, "appended signature: PKCS#7 does not parse") || r.Decision.Kind != cipolicy.KindMalformed {
		t.Errorf("%s: error %v (%T), decision %s/%s", r.Path, r.Err, r.Err, r.Decision.Verdict, r.Decision.Kind)
	}
}

// firstEntryDER returns the DER of the first signature in a signed PE's
// certificate table, without its padding.
func firstEntryDER(t *testing.T, data []byte) []byte {
	t.Helper()
	pf, err := pe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil || !pf.Signed() {
		t.Fatalf("not a signed PE: %v", err)
	}
	entries, err := pe.ParseCertificateTable(data[pf.CertTable.Off:pf.CertTable.End()], pf.CertTable.Off)
	if err != nil {
		t.Fatal(err)
	}
	s := cryptobyte.String(entries[0].Data)
	var der cryptobyte.String
	if !s.ReadASN1Element(&der, cbasn1.SEQUENCE) {
		t.Fatal("the first entry is not DER")
	}
	return bytes.Clone(der)
}

// TestOnlyTheEntryTheHostReadsCounts judges a file whose first
// WIN_CERTIFICATE entry is signed by a rogue and whose second is signed by
// the trusted build signer, over the same image. Windows judges the first
// entry only (with the signatures nested in it): in the user and kernel
// scenarios the file is blocked, and the reason says which trusted
// signature was not counted and why. UEFI firmware counts every entry: in
// the boot scenario the second admits it. A deny rule for the build signer
// matches the second entry in every scenario.
func TestOnlyTheEntryTheHostReadsCounts(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	rogue := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", SelfSigned: true})
	keys := t.TempDir()
	fLeaf := ca.WriteFiles(t, mkdir(t, keys, "leaf"), leaf)
	fRogue := ca.WriteFiles(t, mkdir(t, keys, "rogue"), rogue)
	raw := filepath.Join(keys, "app.exe")
	os.WriteFile(raw, testbin.PE(testbin.PEOptions{Overlay: []byte("xyz")}), 0o644)
	signPE(t, ossl, fRogue, raw, filepath.Join(keys, "rogue.exe"))
	signPE(t, ossl, fLeaf, raw, filepath.Join(keys, "build.exe"))
	rogueSigned, _ := os.ReadFile(filepath.Join(keys, "rogue.exe"))
	buildSigned, _ := os.ReadFile(filepath.Join(keys, "build.exe"))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "two.exe"), appendEntry(t, rogueSigned, pe.CertTypePKCSSignedData, firstEntryDER(t, buildSigned)), 0o644)

	inter := sigCert(t, ca.Intermediate.Cert)
	allow := fmt.Sprintf("{id: pca, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex())
	deny := fmt.Sprintf("{id: leaked, action: deny, signer: {tbs: %s, level: leaf}}", sigCert(t, leaf.Cert).TBSHashHex())
	for _, tc := range []struct {
		scenario cipolicy.Scenario
		rules    []string
		want     string // verdict/kind/signature
		reason   string
	}{
		{cipolicy.ScenarioUser, []string{allow}, "blocked/not-allowed/-1",
			`signature 1 by "Build Signing" matches, but does not count in scenario user (windows): Windows judges only the first WIN_CERTIFICATE entry`},
		{cipolicy.ScenarioKernel, []string{allow}, "blocked/not-allowed/-1", "does not count in scenario kernel (windows)"},
		{cipolicy.ScenarioBoot, []string{allow}, "allowed/allowed-by-signer/1", ""},
		{cipolicy.ScenarioUser, []string{allow, deny}, "blocked/denied/1", `denied by rule "leaked"`},
		{cipolicy.ScenarioBoot, []string{allow, deny}, "blocked/denied/1", `denied by rule "leaked"`},
	} {
		r := validate(t, policyFor(t, tc.rules...), Options{Scenario: tc.scenario}, dir).Results[0]
		d := r.Decision
		if got := fmt.Sprintf("%s/%s/%d", d.Verdict, d.Kind, d.Signature); got != tc.want || !strings.Contains(d.Reason, tc.reason) || len(r.Signatures) != 2 {
			t.Errorf("%s, %d rules: %s %q (%d signatures); want %s saying %q", tc.scenario, len(tc.rules), got, d.Reason, len(r.Signatures), tc.want, tc.reason)
		}
	}
}

// TestRealShimSecondEntry judges Debian's shim, whose second entry is
// Microsoft's UEFI CA 2023 signature, with a rule for that CA only: firmware
// counts it (boot), Windows does not (user).
func TestRealShimSecondEntry(t *testing.T) {
	dir := debianEFI(t)
	shim := filepath.Join(dir, "usr/lib/shim/shimx64.efi.signed")
	in := InspectFile(t.Context(), shim, nil, InspectOptions{})
	if in.Err != nil || len(in.Signatures) != 2 || len(in.Signatures[1].Chains) == 0 || len(in.Signatures[1].Chains[0]) < 2 {
		t.Fatalf("shim: %v, %d signatures", in.Err, len(in.Signatures))
	}
	ca2023 := in.Signatures[1].Chains[0][1]
	if ca2023.CommonName() != "Microsoft UEFI CA 2023" {
		t.Fatalf("the second entry's issuer is %q", ca2023.CommonName())
	}
	src := fmt.Sprintf("format: csv-policy/v1\nname: shim\nversion: '1'\nwdac_compatible: true\nrules:\n  - {id: uefi-ca-2023, action: allow, signer: {tbs: %s, level: issuer}}\n", ca2023.TBSHashHex())
	p, err := cipolicy.Parse([]byte(src), "shim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if d := validate(t, set, Options{Scenario: cipolicy.ScenarioBoot}, shim).Results[0].Decision; !d.Allowed() || d.Signature != 1 {
		t.Errorf("boot: %s: %s", d.Verdict, d.Reason)
	}
	if d := validate(t, set, Options{Scenario: cipolicy.ScenarioUser}, shim).Results[0].Decision; d.Allowed() || !strings.Contains(d.Reason, "does not count in scenario user (windows)") {
		t.Errorf("user: %s: %s", d.Verdict, d.Reason)
	}
}

// TestNonCAIntermediateSaysWhy judges a file signed by a leaf whose issuer
// is not a CA (basic constraints cA false), under a root a rule trusts: no
// chain may go through such an issuer, so the file is blocked, and the
// reason says where the chain stops and why, instead of only that no rule
// allows it.
func TestNonCAIntermediateSaysWhy(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	key := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey crypto.Signer, k *rsa.PrivateKey) *x509.Certificate {
		tmpl.NotBefore, tmpl.NotAfter = testca.Epoch.AddDate(-1, 0, 0), testca.Epoch.AddDate(1, 0, 0)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	interKey, leafKey := key(), key()
	inter := issue(&x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "Not A CA"},
		BasicConstraintsValid: true, IsCA: false, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}, ca.Root.Cert, ca.Root.Key, interKey)
	leaf := issue(&x509.Certificate{SerialNumber: big.NewInt(78), Subject: pkix.Name{CommonName: "Build Signing"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}, inter, interKey, leafKey)
	keys := t.TempDir()
	files := testca.Files{Key: filepath.Join(keys, "leaf.key"), Chain: filepath.Join(keys, "chain.pem")}
	os.WriteFile(files.Key, testca.KeyPEM(t, leafKey), 0o600)
	os.WriteFile(files.Chain, testca.PEM(leaf, inter), 0o600)
	raw := filepath.Join(keys, "app.exe")
	os.WriteFile(raw, testbin.PE(testbin.PEOptions{Overlay: []byte("xyz")}), 0o644)
	dir := t.TempDir()
	signPE(t, ossl, files, raw, filepath.Join(dir, "app.exe"))

	root := sigCert(t, ca.Root.Cert)
	for _, rule := range []string{
		fmt.Sprintf("{id: root, action: allow, signer: {tbs: %s, level: root}}", root.TBSHashHex()),
		fmt.Sprintf("{id: pca, action: allow, signer: {tbs: %s, level: issuer}}", sigCert(t, inter).TBSHashHex()),
	} {
		d := validate(t, policyFor(t, rule), Options{Certificates: []*signing.Certificate{root}}, dir).Results[0].Decision
		const why = `signature 0: the chain stops at "Build Signing": its issuer "Not A CA" cannot issue certificates: its basic constraints say it is not a CA`
		if d.Allowed() || !strings.Contains(d.Reason, why) {
			t.Errorf("%s: %s: %s; want the reason %q", rule, d.Verdict, d.Reason, why)
		}
	}
}
