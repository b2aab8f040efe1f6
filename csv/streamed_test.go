package csv

import (
	stdtar "archive/tar"
	"archive/zip"
	"bytes"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

// withModSig returns data with a kernel-format signature over it made with
// hash h by leaf.
func withModSig(t *testing.T, data []byte, leaf *testca.Cert, h crypto.Hash) []byte {
	t.Helper()
	d := h.New()
	d.Write(data)
	trailer, err := modsig.Sign(d.Sum(nil), leaf.Cert, leaf.Key, modsig.SignOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Clone(data), trailer...)
}

// TestStreamedMembersAgree: a large member whose handler reads it as it
// streams by (format.Streamer), rather than held in memory, is judged as
// the same member held: digests, signatures and verdicts, for PE files
// signed by osslsigncode (nested, ECDSA, by a rogue, tampered), unsigned
// ones, kernel modules signed over SHA-256 and SHA-512, tampered and by a
// stranger, and cut files; a module signed over a digest the stream does
// not compute is blocked, saying why.
func TestStreamedMembersAgree(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	ecLeaf := ca.Leaf(t, testca.LeafOptions{CommonName: "EC Signing", KeyType: testca.ECDSAP256})
	rogue := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", SelfSigned: true})
	keys := t.TempDir()
	fLeaf := ca.WriteFiles(t, mkdir(t, keys, "leaf"), leaf)
	fEC := ca.WriteFiles(t, mkdir(t, keys, "ec"), ecLeaf)
	fRogue := ca.WriteFiles(t, mkdir(t, keys, "rogue"), rogue)
	raw := filepath.Join(keys, "app.exe")
	os.WriteFile(raw, testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte("xyz"), 30000)}), 0o644)
	signPE(t, ossl, fLeaf, raw, filepath.Join(keys, "signed.exe"))
	signPE(t, ossl, fEC, raw, filepath.Join(keys, "ecdsa.exe"))
	signPE(t, ossl, fRogue, raw, filepath.Join(keys, "rogue.exe"))
	signPE(t, ossl, fLeaf, filepath.Join(keys, "rogue.exe"), filepath.Join(keys, "nested.exe"), "-nest")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(keys, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tampered := read("signed.exe")
	tampered[0x210] ^= 1
	elf := testbin.ELF(testbin.ELFOptions{})
	module := withModSig(t, elf, leaf, crypto.SHA256)
	tamperedModule := bytes.Clone(module)
	tamperedModule[len(elf)/2] ^= 1
	members := []struct {
		name string
		data []byte
	}{
		{"signed.exe", read("signed.exe")},
		{"ecdsa.exe", read("ecdsa.exe")},
		{"nested.exe", read("nested.exe")},
		{"rogue.exe", read("rogue.exe")},
		{"tampered.exe", tampered},
		{"unsigned.exe", read("app.exe")},
		{"cut.exe", read("signed.exe")[:len(read("signed.exe"))-100]},
		{"module.ko", module},
		{"module512.ko", withModSig(t, elf, leaf, crypto.SHA512)},
		{"tampered.ko", tamperedModule},
		{"stranger.ko", withModSig(t, elf, rogue, crypto.SHA256)},
		{"cut.ko", module[:len(module)-10]},
		{"unsigned.so", elf},
		{"module384.ko", withModSig(t, elf, leaf, crypto.SHA384)},
	}
	var b bytes.Buffer
	tw := stdtar.NewWriter(&b)
	for _, m := range members {
		tw.WriteHeader(&stdtar.Header{Name: "lib/" + m.name, Mode: 0o755, Size: int64(len(m.data)), Typeflag: stdtar.TypeReg})
		tw.Write(m.data)
	}
	tw.Close()
	dir := tree(t, map[string][]byte{"dist/app.tar": b.Bytes()})

	inter := sigCert(t, ca.Intermediate.Cert)
	p, err := cipolicy.Parse(fmt.Appendf(nil, `format: csv-policy/v1
name: signers
version: "1"
rules:
  - id: build-pca
    action: allow
    signer: {tbs: %s, level: issuer, ekus: [1.3.6.1.5.5.7.3.3]}
  - {id: elf, action: allow, sha256: %s}
`, inter.TBSHashHex(), sha(elf)), "signers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*signing.Certificate{sigCert(t, leaf.Cert), inter}
	run := func(over int64) map[string]Result {
		t.Cleanup(func() { streamMember = 16 << 20 })
		streamMember = over
		rep := validate(t, set, Options{Certificates: chain, Jobs: 2}, dir)
		out := map[string]Result{}
		for _, r := range rep.Results {
			out[strings.TrimPrefix(r.Path, "dist/app.tar!/lib/")] = r
		}
		return out
	}
	held, streamed := run(1<<62), run(0)
	describe := func(r Result) string {
		s := fmt.Sprintf("%s/%s/%s/%d sha256=%x auth=%x signed=%v", r.Decision.Verdict, r.Decision.Kind, r.Decision.Rule, r.Decision.Signature,
			r.Digests.Get(cipolicy.SHA256), r.Digests.Get(cipolicy.AuthenticodeSHA256), r.Signed)
		for _, sig := range r.Signatures {
			s += fmt.Sprintf(" sig(%s verified=%v)", sig.Format, sig.Verified())
		}
		return s
	}
	want := map[string]cipolicy.Verdict{
		"signed.exe": cipolicy.Allowed, "ecdsa.exe": cipolicy.Allowed, "nested.exe": cipolicy.Allowed,
		"rogue.exe": cipolicy.Blocked, "tampered.exe": cipolicy.Blocked, "unsigned.exe": cipolicy.Blocked, "cut.exe": cipolicy.Blocked,
		"module.ko": cipolicy.Allowed, "module512.ko": cipolicy.Allowed, "tampered.ko": cipolicy.Blocked,
		"stranger.ko": cipolicy.Blocked, "cut.ko": cipolicy.Blocked, "unsigned.so": cipolicy.Allowed,
	}
	for name, v := range want {
		h, s := held[name], streamed[name]
		if h.Decision.Verdict != v {
			t.Errorf("%s held: %s (%s), want %s", name, h.Decision.Verdict, h.Decision.Reason, v)
		}
		if describe(h) != describe(s) {
			t.Errorf("%s:\n held:     %s (%v)\n streamed: %s (%v)", name, describe(h), h.Err, describe(s), s.Err)
		}
	}
	// SHA-384: verified held; streamed, csv computed SHA-256 and SHA-512
	// only, and says so.
	if h := held["module384.ko"]; h.Decision.Verdict != cipolicy.Allowed {
		t.Errorf("module384.ko held: %s", h.Decision.Reason)
	}
	if s := streamed["module384.ko"]; s.Decision.Verdict != cipolicy.Blocked || !strings.Contains(s.Decision.Reason, "streams by") {
		t.Errorf("module384.ko streamed: %s (%s)", s.Decision.Verdict, s.Decision.Reason)
	}
}

// TestZipMembersDetached: a zip's members are read again from their start
// by whichever worker inspects them (container.Member.Detach), loose and
// nested, held or read as they stream by, stored or deflated; the results
// are those of a run that reads them from the walk (one worker), in the
// zip's order; a member changed in the archive is blocked, exactly it.
func TestZipMembersDetached(t *testing.T) {
	good := testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte("pad"), 20000)})
	bad := testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})
	elf := testbin.ELF(testbin.ELFOptions{})
	mkzip := func(members [][2]any) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, m := range members {
			method := zip.Deflate
			if strings.HasSuffix(m[0].(string), ".stored") {
				method = zip.Store
			}
			w, err := zw.CreateHeader(&zip.FileHeader{Name: m[0].(string), Method: method})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(m[1].([]byte))
		}
		zw.Close()
		return b.Bytes()
	}
	var members [][2]any
	var want []string
	for i := range 60 {
		b, v, suffix := good, "allowed", ""
		switch i % 4 {
		case 1:
			b, v = bad, "blocked"
		case 2:
			b = elf
		case 3:
			suffix = ".stored"
		}
		name := fmt.Sprintf("m%02d%s", i, suffix)
		members = append(members, [2]any{name, b})
		want = append(want, fmt.Sprintf("app.zip!/%s %s", name, v))
	}
	inner := mkzip([][2]any{{"x.exe", good}, {"y.exe", bad}})
	members = append(members, [2]any{"in.zip", inner})
	want = append(want, "app.zip!/in.zip!/x.exe allowed", "app.zip!/in.zip!/y.exe blocked")
	archive := mkzip(members)
	dir := tree(t, map[string][]byte{"app.zip": archive})
	set := policyFor(t, "{id: good, action: allow, sha256: "+sha(good)+"}", "{id: elf, action: allow, sha256: "+sha(elf)+"}")
	t.Cleanup(func() { streamMember = 16 << 20 })
	for _, over := range []int64{16 << 20, 0} {
		streamMember = over
		for _, jobs := range []int{1, 2, 4} {
			rep := validate(t, set, Options{Jobs: jobs}, dir)
			var got []string
			for _, r := range rep.Results {
				got = append(got, fmt.Sprintf("%s %s", r.Path, r.Decision.Verdict))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("stream over %d, jobs %d:\n%s\nwant:\n%s", over, jobs, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
	// One byte of a stored member changed (its CRC no longer matches):
	// that member is blocked, the others are judged as before.
	i := bytes.Index(archive, good[len(good)-100:]) // in m03.stored, the first stored copy
	changed := bytes.Clone(archive)
	changed[i] ^= 1
	dir = tree(t, map[string][]byte{"app.zip": changed})
	rep := validate(t, set, Options{Jobs: 2}, dir)
	var blocked []string
	for _, r := range rep.Results {
		if !r.Decision.Allowed() && !strings.HasSuffix(want[slices.IndexFunc(want, func(w string) bool { return strings.HasPrefix(w, r.Path+" ") })], "blocked") {
			blocked = append(blocked, r.Path)
		}
	}
	if !slices.Equal(blocked, []string{"app.zip!/m03.stored"}) {
		t.Errorf("with one byte changed, newly blocked: %q", blocked)
	}
}
