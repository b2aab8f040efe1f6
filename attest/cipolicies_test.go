package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/cms"
)

// siPolicyPayload encodes a SIPAEVENT_SI_POLICY_PAYLOAD as wbcl.h lays it
// out: the name with its NUL terminator.
func siPolicyPayload(version uint64, name string, alg uint16, digest []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, version)
	u := utf16.Encode([]rune(name + "\x00"))
	b = binary.LittleEndian.AppendUint16(b, uint16(2*len(u)))
	b = binary.LittleEndian.AppendUint16(b, alg)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(digest)))
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, digest...)
}

const (
	testCIPolicyGUID = "A244370E-44C9-4C06-B551-F6016E563076"
	algSHA1          = 0x0004
	algSHA256        = 0x000B
)

func mustVersion(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := ParseVersionEx(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// guidBytes encodes a GUID as Windows stores it (Data1-3 little endian).
func guidBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("GUID %q", s)
	}
	out := binary.LittleEndian.AppendUint32(nil, binary.BigEndian.Uint32(b))
	out = binary.LittleEndian.AppendUint16(out, binary.BigEndian.Uint16(b[4:]))
	out = binary.LittleEndian.AppendUint16(out, binary.BigEndian.Uint16(b[6:]))
	return append(out, b[8:]...)
}

// binaryPolicy builds a compiled policy from the header layout of
// CIPolicyParser.ps1: no real compiled policy can be made here (no
// ConvertFrom-CIPolicy on Linux), and none is in ../shared. The body is
// an empty one of format 1 (every count and list zero, then the end tag).
func binaryPolicy(t testing.TB, format uint32, id string, version string) []byte {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, format)
	b = append(b, guidBytes(t, id)...)
	b = append(b, make([]byte, 16)...)                         // PlatformID
	b = binary.LittleEndian.AppendUint32(b, 0x80000000|0x0004) // options
	b = append(b, make([]byte, 16)...)                         // four counts
	b = binary.LittleEndian.AppendUint64(b, mustVersion(t, version))
	b = binary.LittleEndian.AppendUint32(b, 0x40)
	b = append(b, make([]byte, 16)...) // signers lists, HVCI options, settings
	return binary.LittleEndian.AppendUint32(b, format+1)
}

// signedPolicy wraps a binary policy in a CMS SignedData as SiPolicy.p7b
// is (content in an OCTET STRING; the signature is not read).
func signedPolicy(t testing.TB, content []byte, asOctets bool) []byte {
	t.Helper()
	var bb cryptobyte.Builder
	if asOctets {
		bb.AddASN1OctetString(content)
	} else {
		bb.AddASN1(0x30|0x20, func(b *cryptobyte.Builder) { b.AddBytes(content) })
	}
	der, err := cms.MarshalSignedData(cms.SignedDataTemplate{Version: 1, ContentType: cms.NewOID(1, 3, 6, 1, 4, 1, 311, 79, 1), Content: bb.BytesOrPanic()})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseSIPolicyEvent(t *testing.T) {
	d32 := bytes.Repeat([]byte{0xAB}, 32)
	v := mustVersion(t, "10.0.19041.1")
	good := siPolicyPayload(v, "{"+testCIPolicyGUID+"}", algSHA256, d32)
	c, err := ParseSIPolicyEvent(good)
	if err != nil {
		t.Fatal(err)
	}
	want := CIPolicy{Name: "{" + testCIPolicyGUID + "}", Version: "10.0.19041.1", VersionEx: v, HashAlg: "sha256", Digest: hex.EncodeToString(d32)}
	if *c != want || c.ID() != strings.ToLower(testCIPolicyGUID) {
		t.Fatalf("%+v (ID %q)", c, c.ID())
	}
	// The version's parts: revision in the low 16 bits, major in the high.
	if binary.LittleEndian.Uint16(good[0:]) != 1 || binary.LittleEndian.Uint16(good[6:]) != 10 {
		t.Fatalf("VersionEx encoding %x", good[:8])
	}
	named, err := ParseSIPolicyEvent(siPolicyPayload(1, "Microsoft Windows Driver Policy", algSHA1, make([]byte, 20)))
	if err != nil || named.Name != "Microsoft Windows Driver Policy" || named.ID() != "" || named.HashAlg != "sha1" || named.Version != "0.0.0.1" {
		t.Fatalf("%+v %v", named, err)
	}
	unknownAlg, err := ParseSIPolicyEvent(siPolicyPayload(1, "x", 0x0027, make([]byte, 32)))
	if err != nil || unknownAlg.HashAlg != "0x0027" {
		t.Fatalf("%+v %v", unknownAlg, err)
	}
	setU16 := func(b []byte, off int, v uint16) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only, short", good[:15]},
		{"truncated digest", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"odd name length", setU16(good, 8, 3)},
		{"name over the cap", siPolicyPayload(1, strings.Repeat("a", 600), algSHA256, d32)},
		{"sha256 digest of 20 bytes", siPolicyPayload(1, "x", algSHA256, make([]byte, 20))},
		{"unknown algorithm, no digest", siPolicyPayload(1, "x", 0x0027, nil)},
		{"unknown algorithm, 65-byte digest", siPolicyPayload(1, "x", 0x0027, make([]byte, 65))},
		{"NUL inside the name", siPolicyPayload(1, "a\x00b", algSHA256, d32)},
		{"unpaired surrogate", siPolicyPayload(1, "a", algSHA256, d32)[:0:0]},
		{"digest length near 2^32", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[12:], 0xFFFFFFFF)
			return b
		}()},
	} {
		if tc.name == "unpaired surrogate" {
			tc.data = siPolicyPayload(1, "ab", algSHA256, d32)
			binary.LittleEndian.PutUint16(tc.data[16:], 0xD800)
		}
		c, err := ParseSIPolicyEvent(tc.data)
		if !errors.Is(err, ErrSIPolicyEvent) || c != nil {
			t.Errorf("%s: %+v, %v", tc.name, c, err)
		}
	}
}

func TestVersionEx(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "10.0.19041.1", "65535.65535.65535.65535", "1.2.3.4"} {
		v, err := ParseVersionEx(s)
		if err != nil || FormatVersionEx(v) != s {
			t.Errorf("%s: %x %v", s, v, err)
		}
	}
	if v := mustVersion(t, "1.2.3.4"); v != 0x0001000200030004 {
		t.Errorf("%x", v)
	}
	if mustVersion(t, "10.0.0.1") <= mustVersion(t, "9.65535.65535.65535") {
		t.Error("versions do not order by their parts")
	}
	for _, s := range []string{"", "1.2.3", "1.2.3.4.5", "1.2.3.65536", "1.2.3.-1", "1.2.3.x", "1..3.4", "01.2.3.4"} {
		if _, err := ParseVersionEx(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestNormalizeGUID(t *testing.T) {
	want := strings.ToLower(testCIPolicyGUID)
	for _, s := range []string{testCIPolicyGUID, "{" + testCIPolicyGUID + "}", want, "{" + want + "}"} {
		if g, ok := NormalizeGUID(s); !ok || g != want {
			t.Errorf("%q: %q %v", s, g, ok)
		}
	}
	for _, s := range []string{"", "{" + testCIPolicyGUID, testCIPolicyGUID + "}", strings.Replace(testCIPolicyGUID, "-", "_", 1), strings.Replace(testCIPolicyGUID, "A", "G", 1), "Microsoft Windows Driver Policy"} {
		if g, ok := NormalizeGUID(s); ok {
			t.Errorf("%q: %q", s, g)
		}
	}
}

func TestParseBinaryCIPolicy(t *testing.T) {
	raw := binaryPolicy(t, 8, testCIPolicyGUID, "10.1.2.3")
	p, err := ParseBinaryCIPolicy(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.FormatVersion != 8 || p.PolicyTypeID != strings.ToLower(testCIPolicyGUID) || p.Version() != "10.1.2.3" || p.Signed ||
		p.PlatformID != "00000000-0000-0000-0000-000000000000" || p.Options != 0x80000004 || len(p.SHA256) != 1 || p.SHA256[0] != sha256.Sum256(raw) {
		t.Fatalf("%+v", p)
	}
	signed := signedPolicy(t, raw, true)
	sp, err := ParseBinaryCIPolicy(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.Signed || sp.PolicyTypeID != p.PolicyTypeID || sp.VersionEx != p.VersionEx || len(sp.SHA256) != 2 ||
		sp.SHA256[0] != sha256.Sum256(signed) || sp.SHA256[1] != sha256.Sum256(raw) {
		t.Fatalf("%+v", sp)
	}
	bad := func(f func([]byte)) []byte {
		b := bytes.Clone(raw)
		f(b)
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only", raw[:0x44]},
		{"format 0", bad(func(b []byte) { b[0] = 0 })},
		{"format 9", bad(func(b []byte) { b[0] = 9 })},
		{"header length field", bad(func(b []byte) { b[0x40] = 0x44 })},
		{"signed, content not an OCTET STRING", signedPolicy(t, raw, false)},
		{"signed, truncated", signed[:len(signed)-3]},
		{"signed, short content", signedPolicy(t, raw[:0x20], true)},
	} {
		if p, err := ParseBinaryCIPolicy(tc.data); !errors.Is(err, ErrBinaryCIPolicy) || p != nil {
			t.Errorf("%s: %+v, %v", tc.name, p, err)
		}
	}
}

const testSuppGUID = "6E8D8A2C-3B1F-4C55-9E0A-2D7A51C3B9F1"

func sipXML(id, base, typ, version string) []byte {
	return []byte(`<?xml version="1.0" encoding="utf-8"?>
<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" PolicyType="` + typ + `">
  <VersionEx>` + version + `</VersionEx>
  <PolicyID>{` + id + `}</PolicyID>
  <BasePolicyID>{` + base + `}</BasePolicyID>
  <PlatformID>{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}</PlatformID>
  <Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules>
</SiPolicy>
`)
}

func TestCIPoliciesPolicy(t *testing.T) {
	base := binaryPolicy(t, 8, testCIPolicyGUID, "10.0.0.5")
	supp := binaryPolicy(t, 8, testCIPolicyGUID, "1.0.0.2") // a supplemental's header names its base
	files := map[string][]byte{
		"base.cip": base, "SiPolicy.p7b": signedPolicy(t, base, true), "supp.cip": supp,
		"base.xml":  sipXML(testCIPolicyGUID, testCIPolicyGUID, "Base Policy", "10.0.0.5"),
		"supp.xml":  sipXML(testSuppGUID, testCIPolicyGUID, "Supplemental Policy", "1.0.0.2"),
		"old.xml":   sipXML(testCIPolicyGUID, testCIPolicyGUID, "Base Policy", "10.0.0.4"),
		"ci.yaml":   []byte("format: csv-policy/v1\nname: y\nrules: []\n"),
		"other.cip": binaryPolicy(t, 8, testSuppGUID, "10.0.0.5"),
		"junk.cip":  []byte("not a policy at all, but long enough to hold a header of sixty-eight bytes"),
	}
	head := "format: csv-attest-policy/v1\nname: t\nci_policies:\n"
	lower := strings.ToLower(testCIPolicyGUID)
	d := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name   string
		entry  string
		id     string
		min    string
		hashes [][32]byte
	}{
		{"id only", "  - {id: '{" + testCIPolicyGUID + "}'}", lower, "0.0.0.0", nil},
		{"id, min_version, sha256", "  - {id: " + lower + ", min_version: 10.0.0.1, sha256: " + d + "}", lower, "10.0.0.1", [][32]byte{[32]byte(bytes.Repeat([]byte{0xab}, 32))}},
		{"file", "  - {file: base.cip}", lower, "10.0.0.5", [][32]byte{sha256.Sum256(base)}},
		{"signed file", "  - {file: SiPolicy.p7b}", lower, "10.0.0.5", [][32]byte{sha256.Sum256(files["SiPolicy.p7b"]), sha256.Sum256(base)}},
		{"file, lower min_version", "  - {file: base.cip, min_version: 10.0.0.1}", lower, "10.0.0.1", [][32]byte{sha256.Sum256(base)}},
		{"xml", "  - {xml: base.xml}", lower, "10.0.0.5", nil},
		{"xml and file", "  - {xml: base.xml, file: base.cip}", lower, "10.0.0.5", [][32]byte{sha256.Sum256(base)}},
		{"supplemental: xml gives the ID", "  - {xml: supp.xml, file: supp.cip}", strings.ToLower(testSuppGUID), "1.0.0.2", [][32]byte{sha256.Sum256(supp)}},
	} {
		p := mustPolicy(t, head+tc.entry+"\n", files)
		if len(p.CIPolicies) != 1 {
			t.Fatalf("%s: %+v", tc.name, p.CIPolicies)
		}
		r := p.CIPolicies[0]
		if r.ID != tc.id || FormatVersionEx(r.MinVersion) != tc.min || len(r.SHA256) != len(tc.hashes) {
			t.Errorf("%s: %+v", tc.name, r)
			continue
		}
		for i := range tc.hashes {
			if r.SHA256[i] != tc.hashes[i] {
				t.Errorf("%s: digest %d", tc.name, i)
			}
		}
	}
	for _, tc := range []struct{ name, entry, want string }{
		{"not a list", "  {id: x}", "ci_policies must be a list"},
		{"nothing", "  - {min_version: 1.0.0.0}", "give id, xml or file"},
		{"bad id", "  - {id: 'not-a-guid'}", `id "not-a-guid" is not a GUID`},
		{"bad version", "  - {id: " + lower + ", min_version: '1.0'}", "min_version: version \"1.0\""},
		{"bad sha256", "  - {id: " + lower + ", sha256: abc}", "want 64 hex digits"},
		{"sha256 and file", "  - {sha256: " + d + ", file: base.cip}", "give one of sha256 and file"},
		{"missing file", "  - {file: nope.cip}", `file "nope.cip"`},
		{"junk file", "  - {file: junk.cip}", "malformed binary code integrity policy"},
		{"id differs from the file's", "  - {id: " + testSuppGUID + ", file: supp.cip}", "differs from the ID"},
		{"id differs from the xml's", "  - {id: " + testSuppGUID + ", xml: base.xml}", "differs from the PolicyID"},
		{"xml and file versions differ", "  - {xml: old.xml, file: base.cip}", "is version 10.0.0.5, but xml \"old.xml\" says 10.0.0.4"},
		{"min_version above the file's", "  - {file: base.cip, min_version: 10.0.0.6}", "no host could pass"},
		{"xml and a binary of another policy", "  - {xml: base.xml, file: other.cip}", "holds the ID {6e8d8a2c-3b1f-4c55-9e0a-2d7a51c3b9f1}, but xml \"base.xml\" says {a244370e"},
		{"supplemental xml and a binary of another base", "  - {xml: supp.xml, file: other.cip}", "holds the ID {6e8d8a2c"},
		{"xml is YAML", "  - {xml: ci.yaml}", "not WDAC SiPolicy XML"},
		{"unknown field", "  - {id: " + lower + ", policy_id: x}", "policy_id"},
	} {
		_, err := ParsePolicy([]byte(head+tc.entry+"\n"), "attest.yaml", PolicyOptions{ReadFile: func(name string) ([]byte, error) {
			if b, ok := files[name]; ok {
				return b, nil
			}
			return nil, errors.New("no such file")
		}})
		if !errors.Is(err, cipolicy.ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v (want %q)", tc.name, err, tc.want)
		}
	}
	if _, err := ParsePolicy([]byte(head+"  - {file: base.cip}\n"), "attest.yaml", PolicyOptions{}); !errors.Is(err, cipolicy.ErrInvalidPolicy) ||
		!strings.Contains(err.Error(), "without access to other files") {
		t.Errorf("no ReadFile: %v", err)
	}
}

// TestEvaluateCIPolicies: the ci_policies check against synthetic WBCLs.
func TestEvaluateCIPolicies(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	base := binaryPolicy(t, 8, testCIPolicyGUID, "10.0.0.5")
	p7b := signedPolicy(t, base, true)
	digest := sha256.Sum256(base)
	v := func(s string) uint64 { return mustVersion(t, s) }
	si := func(version uint64, name string, alg uint16, d []byte) []byte {
		return sipa(sipaSIPolicy, siPolicyPayload(version, name, alg, d))
	}
	on := sipa(sipaCodeIntegrity, []byte{1})
	driver := si(v("10.0.22621.1"), "Microsoft Windows Driver Policy", algSHA256, bytes.Repeat([]byte{1}, 32))
	active := si(v("10.0.0.5"), "{"+testCIPolicyGUID+"}", algSHA256, digest[:])
	files := map[string][]byte{"base.cip": base, "SiPolicy.p7b": p7b}
	head := "format: csv-attest-policy/v1\nname: t\nboot_components: ignore\nci_policies:\n"
	byFile := head + "  - {file: base.cip}\n"
	for _, tc := range []struct {
		name    string
		windows [][]byte
		policy  string
		pass    bool
		detail  string
	}{
		{"active, from the binary", [][]byte{on, driver, active, active}, byFile, true, "1 required code integrity policies active"},
		{"active, from the signed binary", [][]byte{on, active}, head + "  - {file: SiPolicy.p7b}\n", true, ""},
		{"name in lowercase without braces", [][]byte{on, si(v("10.0.0.5"), strings.ToLower(testCIPolicyGUID), algSHA256, digest[:])}, byFile, true, ""},
		{"newer version, no digest required", [][]byte{on, si(v("10.0.0.9"), "{"+testCIPolicyGUID+"}", algSHA256, make([]byte, 32))}, head + "  - {id: " + testCIPolicyGUID + ", min_version: 10.0.0.5}\n", true, ""},
		{"by name", [][]byte{on, driver}, head + "  - {id: " + testSuppGUID + ", name: microsoft windows driver policy, min_version: 10.0.22000.0}\n", true, ""},
		{"not active", [][]byte{on, driver}, byFile, false, "is not active: the host measured 1 code integrity policies (\"Microsoft Windows Driver Policy\")"},
		{"no SI policy event", [][]byte{on}, byFile, false, "measured 0 code integrity policies"},
		{"older version", [][]byte{on, si(v("10.0.0.4"), "{"+testCIPolicyGUID+"}", algSHA256, digest[:])}, byFile, false, "version 10.0.0.4 is below 10.0.0.5"},
		{"other digest", [][]byte{on, si(v("10.0.0.5"), "{"+testCIPolicyGUID+"}", algSHA256, make([]byte, 32))}, byFile, false, "not the one required"},
		{"a stale copy beside the right one", [][]byte{on, active, si(v("10.0.0.3"), "{"+testCIPolicyGUID+"}", algSHA256, make([]byte, 32))}, byFile, false, "version 10.0.0.3 is below"},
		{"SHA-1 digest", [][]byte{on, si(v("10.0.0.5"), "{"+testCIPolicyGUID+"}", algSHA1, make([]byte, 20))}, byFile, false, "measured with sha1, not sha256"},
		{"malformed SI policy event", [][]byte{on, active, sipa(sipaSIPolicy, []byte{1, 2, 3})}, byFile, false, "could not be read"},
		{"not a Windows boot", nil, byFile, false, "no Windows boot configuration (WBCL) measured"},
	} {
		spec := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA}, authority: uefiCA,
			apps: [][]byte{eventlog.SHA256.Sum([]byte("app"))}, windows: tc.windows}
		ev, opts := bootLog(t, spec)
		vr, err := Verify(context.Background(), ev, opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r, err := Evaluate(context.Background(), vr, mustPolicy(t, tc.policy, files), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := checkOf(r, "policy.ci-policies")
		if c == nil || c.Passed != tc.pass || !strings.Contains(c.Detail, tc.detail) || r.Trusted != tc.pass {
			t.Errorf("%s: %+v (trusted %v)", tc.name, c, r.Trusted)
		}
		if tc.name == "active, from the binary" {
			got := r.Claims.ActiveCIPolicies
			if len(got) != 2 || got[0].Name != "Microsoft Windows Driver Policy" || got[0].ID != "" ||
				got[1] != (CIPolicyClaim{Name: "{" + testCIPolicyGUID + "}", ID: strings.ToLower(testCIPolicyGUID), Version: "10.0.0.5", HashAlg: "sha256", Digest: hex.EncodeToString(digest[:])}) {
				t.Errorf("claims %+v", got)
			}
		}
		if tc.windows == nil && r.Claims.ActiveCIPolicies != nil {
			t.Errorf("%s: claims %+v for a boot without Windows", tc.name, r.Claims.ActiveCIPolicies)
		}
	}
	// A policy without ci_policies has no such check.
	ev, opts := bootLog(t, bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA},
		authority: uefiCA, apps: [][]byte{eventlog.SHA256.Sum([]byte("app"))}, windows: [][]byte{on, active}})
	vr, err := Verify(context.Background(), ev, opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(context.Background(), vr, mustPolicy(t, "format: csv-attest-policy/v1\nname: t\nboot_components: ignore\n", nil), nil)
	if err != nil || checkOf(r, "policy.ci-policies") != nil || len(r.Claims.ActiveCIPolicies) != 1 {
		t.Fatalf("%v %+v", err, r)
	}
}

// TestRealLogsSIPolicy: the real Windows logs in ../shared carry no SI
// policy event (so the reader finds none), and their OS revocation list
// events (0x00050013) read with the packed layout wbcl.h gives the
// payload structures beside SIPAEVENT_SI_POLICY_PAYLOAD: CreationTime
// (8), DigestLength (4), HashAlgID (2), digest.
func TestRealLogsSIPolicy(t *testing.T) {
	for _, name := range []string{"go-attestation/windows_gcp_shielded_vm.json", "keylime-python3-uefi-eventlog/p511.bin", "go-attestation/option_rom_eventlog"} {
		fx := attesttest.Find(t, name)
		l, err := eventlog.Parse(fx.Raw)
		if err != nil {
			t.Fatal(err)
		}
		revocations := 0
		var walk func(evs []SIPAEvent)
		walk = func(evs []SIPAEvent) {
			for _, e := range evs {
				switch e.Type {
				case sipaSIPolicy:
					t.Errorf("%s: an SI policy event: %x", name, e.Data)
				case 0x00050013:
					n := int(binary.LittleEndian.Uint32(e.Data[8:]))
					if alg := binary.LittleEndian.Uint16(e.Data[12:]); alg != algSHA256 || n != 32 || len(e.Data) != 14+n {
						t.Errorf("%s: revocation list event %x does not have the packed layout", name, e.Data)
					}
					revocations++
				}
				walk(e.Children)
			}
		}
		for _, e := range l.Events {
			if e.Type != eventlog.EvEventTag {
				continue
			}
			evs, err := ParseSIPA(e.Data)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			walk(evs)
		}
		if revocations == 0 {
			t.Errorf("%s: no revocation list event", name)
		}
		in, err := Inspect(fx.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if w := in.Boot.Windows; w == nil || w.CIPolicies == nil || len(w.CIPolicies) != 0 {
			t.Errorf("%s: %+v (%s)", name, w, in.Boot.WindowsProblem)
		}
	}
}

// TestDocsCIPoliciesExample: the ci_policies example of docs/attest.md
// parses, with binaries and XML built here for the files it names.
func TestDocsCIPoliciesExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "attest.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "```yaml\n# attest-windows.yaml\n")
	if i < 0 {
		t.Fatal("no ci_policies example")
	}
	block := doc[i+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	base := binaryPolicy(t, 8, testCIPolicyGUID, "10.0.3.0")
	supp := binaryPolicy(t, 8, testCIPolicyGUID, "1.0.0.2")
	files := map[string][]byte{
		"policies/SiPolicy.p7b":     signedPolicy(t, base, true),
		"policies/supplemental.xml": sipXML(testSuppGUID, testCIPolicyGUID, "Supplemental Policy", "1.0.0.2"),
		"policies/supplemental.cip": supp,
	}
	p := mustPolicy(t, block, files)
	if len(p.CIPolicies) != 3 || p.CIPolicies[0].ID != strings.ToLower(testCIPolicyGUID) || FormatVersionEx(p.CIPolicies[0].MinVersion) != "10.0.3.0" ||
		p.CIPolicies[1].ID != strings.ToLower(testSuppGUID) || p.CIPolicies[1].SHA256[0] != sha256.Sum256(supp) ||
		p.CIPolicies[2].ID != "d2bda982-ccf6-4344-ac5b-0b44427b6816" || FormatVersionEx(p.CIPolicies[2].MinVersion) != "10.0.2.0" || p.CIPolicies[2].SHA256 != nil {
		t.Fatalf("%+v", p.CIPolicies)
	}
}

// TestActiveCIPoliciesCap: limits.MaxActiveCIPolicies distinct SI policy
// events are read (an event measured again counts once); one more makes
// the WBCL unreadable, saying so.
func TestActiveCIPoliciesCap(t *testing.T) {
	var events []byte
	for i := range limits.MaxActiveCIPolicies {
		e := sipa(sipaSIPolicy, siPolicyPayload(uint64(i), "p", algSHA256, make([]byte, 32)))
		events = append(events, e...)
		events = append(events, e...)
	}
	w, n := newWindowsState(), 0
	if err := w.read(sipa(0x40010001, events), 0, &n, map[string]bool{}); err != nil || len(w.CIPolicies) != limits.MaxActiveCIPolicies {
		t.Fatalf("%v, %d policies", err, len(w.CIPolicies))
	}
	events = append(events, sipa(sipaSIPolicy, siPolicyPayload(1<<48, "p", algSHA256, make([]byte, 32)))...)
	w, n = newWindowsState(), 0
	err := w.read(sipa(0x40010001, events), 0, &n, map[string]bool{})
	if err == nil || !strings.Contains(err.Error(), "more than "+strconv.Itoa(limits.MaxActiveCIPolicies)+" distinct SI policy events") {
		t.Fatalf("%v", err)
	}
}
