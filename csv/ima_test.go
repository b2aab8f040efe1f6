//go:build linux

package csv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/fsverity"
	"github.com/codesignval/csv/signing/ima"
)

type imaPKI struct {
	ca    *testca.CA
	leaf  *testca.Cert
	certs []*signing.Certificate // the IMA keyring: leaf, issuing CA, root
	set   *cipolicy.Set          // allows IMA signatures by the issuing CA only
}

func newIMAPKI(t *testing.T) *imaPKI {
	t.Helper()
	ca := testca.New(t)
	p := &imaPKI{ca: ca, leaf: ca.Leaf(t, testca.LeafOptions{CommonName: "IMA Signing", SubjectKeyID: true})}
	for _, c := range []*testca.Cert{p.leaf, ca.Intermediate, ca.Root} {
		sc, err := signing.ParseCertificate(c.Cert.Raw)
		if err != nil {
			t.Fatal(err)
		}
		p.certs = append(p.certs, sc)
	}
	src := "format: csv-policy/v1\nname: ima\nversion: '1'\nrules:\n" +
		"  - {id: ima-signed, action: allow, signer: {tbs: " + p.certs[1].TBSHashHex() + ", level: issuer, signature_formats: [ima]}}\n"
	pol, err := cipolicy.Parse([]byte(src), "ima.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.set, err = cipolicy.NewSet(cipolicy.SetOptions{Now: func() time.Time { return testca.Epoch }}, pol); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *imaPKI) sign(t *testing.T, data []byte) []byte {
	t.Helper()
	d := sha256.Sum256(data)
	v, err := ima.Sign(d[:], crypto.SHA256, p.leaf.Key, p.leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func resultsByPath(rep *Report) map[string]Result {
	out := map[string]Result{}
	for _, r := range rep.Results {
		out[r.Path] = r
	}
	return out
}

// wantIMAAllowed: the file is allowed by the IMA rule, through a verified
// IMA signature.
func wantIMAAllowed(t *testing.T, r Result) {
	t.Helper()
	d := r.Decision
	if !d.Allowed() || d.Rule != "ima-signed" || d.Signature < 0 || d.Signature >= len(r.Signatures) {
		t.Fatalf("%s: %s by %q: %s (error %v)", r.Path, d.Verdict, d.Rule, d.Reason, r.Err)
	}
	if s := r.Signatures[d.Signature]; s.Format != ima.SignatureFormat || !s.Verified() {
		t.Fatalf("%s: allowed by a %s signature", r.Path, s.Format)
	}
}

// wantIMABlocked: the file is blocked because its security.ima does not
// hold, with err (errors.Is) the reason.
func wantIMABlocked(t *testing.T, r Result, err error) {
	t.Helper()
	var mb *MalformedBinaryError
	if r.Decision.Allowed() || !errors.As(r.Err, &mb) || !errors.Is(r.Err, err) || !strings.Contains(r.Decision.Reason, ima.XattrName) {
		t.Fatalf("%s: %s %q (error %v); want blocked by its %s, %v", r.Path, r.Decision.Verdict, r.Decision.Reason, r.Err, ima.XattrName, err)
	}
}

// TestIMASidecarFromEvmctl: an ELF file with the sidecar evmctl ima_sign
// --sigfile wrote is allowed by a rule that counts IMA signatures; the
// same file changed after signing, a sidecar with a changed byte, and a
// run whose certificates lack the IMA key are blocked, as is a file whose
// sidecar is a symbolic link (csv does not follow it); a FILE.sig that is
// no IMA value (an OpenPGP signature) is not read as one.
func TestIMASidecarFromEvmctl(t *testing.T) {
	bin := testenv.Tool(t, "evmctl")
	p := newIMAPKI(t)
	elf := testbin.ELF(testbin.ELFOptions{})
	dir := tree(t, map[string][]byte{"good": elf, "changed": elf, "badsig": elf, "pgp": elf})
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, testca.KeyPEM(t, p.leaf.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"good", "changed", "badsig"} {
		if out, err := exec.Command(bin, "ima_sign", "--sigfile", "--key", key, filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("evmctl: %v\n%s", err, out)
		}
		// Run as root, evmctl also sets the attribute, which csv would
		// read first: this test is about the sidecar.
		unix.Removexattr(filepath.Join(dir, name), ima.XattrName)
	}
	changed := append(append([]byte(nil), elf...), 0)
	os.WriteFile(filepath.Join(dir, "changed"), changed, 0o644)
	sig, _ := os.ReadFile(filepath.Join(dir, "badsig.sig"))
	sig[len(sig)-1] ^= 1
	os.WriteFile(filepath.Join(dir, "badsig.sig"), sig, 0o644)
	os.WriteFile(filepath.Join(dir, "pgp.sig"), []byte{0x89, 0x01, 0x33, 0x04, 0x00}, 0o644)
	os.WriteFile(filepath.Join(dir, "linked"), elf, 0o644)
	if err := os.Symlink("good.sig", filepath.Join(dir, "linked.sig")); err != nil {
		t.Fatal(err)
	}

	got := resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))
	wantIMAAllowed(t, got["good"])
	wantIMABlocked(t, got["changed"], signing.ErrSignature)
	wantIMABlocked(t, got["badsig"], signing.ErrSignature)
	if r := got["pgp"]; r.Err != nil || r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindUnsigned {
		t.Fatalf("pgp: %s %s %q (error %v); want blocked as unsigned", r.Decision.Verdict, r.Decision.Kind, r.Decision.Reason, r.Err)
	}
	var ue *UnreadableError
	if r := got["linked"]; r.Decision.Allowed() || !errors.As(r.Err, &ue) || !strings.Contains(r.Decision.Reason, "symbolic link") {
		t.Fatalf("linked: %s %q (error %v); want blocked, its sidecar a link", r.Decision.Verdict, r.Decision.Reason, r.Err)
	}
	// The keyring without the IMA key: the signature cannot verify.
	got = resultsByPath(validate(t, p.set, Options{Certificates: p.certs[1:]}, dir))
	wantIMABlocked(t, got["good"], signing.ErrSignerNotFound)
	// A file given as the path itself (no listing of its directory): its
	// sidecar is still read.
	got = resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, filepath.Join(dir, "badsig")))
	wantIMABlocked(t, got["badsig"], signing.ErrSignature)
}

// TestIMAXattr: a loose file's security.ima attribute is read (and wins
// over a sidecar), and GNU tar --xattrs carries it into a tar's PAX
// records, where csv reads it for the member. Skips where the file system
// or the user cannot set security.* attributes.
func TestIMAXattr(t *testing.T) {
	p := newIMAPKI(t)
	elf := testbin.ELF(testbin.ELFOptions{})
	dir := tree(t, map[string][]byte{"root/tool": elf, "root/tool.sig": {0x03, 0x02}, "root/other": elf})
	tool := filepath.Join(dir, "root", "tool")
	if err := unix.Setxattr(tool, ima.XattrName, p.sign(t, elf), 0); err != nil {
		t.Skipf("cannot set %s here: %v", ima.XattrName, err)
	}
	wrong := p.sign(t, append([]byte("other"), elf...))
	if err := unix.Setxattr(filepath.Join(dir, "root", "other"), ima.XattrName, wrong, 0); err != nil {
		t.Fatal(err)
	}
	// An attribute over the cap (the kernel takes up to 64 KiB) is read
	// cut, and refused as over the cap.
	huge := filepath.Join(dir, "root", "huge")
	os.WriteFile(huge, elf, 0o755)
	hugeSet := unix.Setxattr(huge, ima.XattrName, append(p.sign(t, elf), make([]byte, 9000)...), 0) == nil
	got := resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, filepath.Join(dir, "root")))
	wantIMAAllowed(t, got["tool"])
	wantIMABlocked(t, got["other"], signing.ErrSignature)
	if hugeSet {
		wantIMABlocked(t, got["huge"], signing.ErrLimit)
	} else {
		t.Log("a 9 KiB security.ima cannot be set here: the cap on attributes is not checked")
	}
	os.Remove(huge)

	gnutar := testenv.Tool(t, "tar")
	archive := filepath.Join(dir, "out", "layer.tar")
	os.MkdirAll(filepath.Dir(archive), 0o755)
	if out, err := exec.Command(gnutar, "--xattrs", "--xattrs-include=security.ima", "--format=posix", "-cf", archive, "-C", filepath.Join(dir, "root"), "tool", "other").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	got = resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, filepath.Join(dir, "out")))
	wantIMAAllowed(t, got["layer.tar!/tool"])
	wantIMABlocked(t, got["layer.tar!/other"], signing.ErrSignature)
}

// TestIMATarMembers: PAX SCHILY.xattr.security.ima records of tar
// members, as container images carry them: a signature csv made is
// allowed, one over other bytes and a malformed value are blocked, a
// version 3 signature over the member's fs-verity digest (computed in the
// same read) is allowed and one over its SHA-256 blocked, a digest that is
// not the member's is blocked, and an EVM value is blocked.
func TestIMATarMembers(t *testing.T) {
	p := newIMAPKI(t)
	elf := testbin.ELF(testbin.ELFOptions{})
	sum := sha256.Sum256(elf)
	v3, err := ima.SignVerity(sum[:], crypto.SHA256, p.leaf.Key, p.leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	fd := fsverity.New()
	fd.Write(elf)
	v3good, err := ima.SignVerity(fd.Sum(nil), crypto.SHA256, p.leaf.Key, p.leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	members := []struct {
		name string
		attr []byte
	}{
		{"good", p.sign(t, elf)},
		{"other", p.sign(t, []byte("other"))},
		{"cut", p.sign(t, elf)[:20]},
		{"verity", v3},
		{"verity-good", v3good},
		{"digest", append([]byte{0x04, 4}, make([]byte, 32)...)},
		{"evm", []byte{0x02, 1, 2, 3}},
		{"huge", append(p.sign(t, elf), make([]byte, 9000)...)},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		hdr := &tar.Header{Name: m.name, Mode: 0o755, Size: int64(len(elf)), Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr." + ima.XattrName: string(m.attr)}}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(elf)
	}
	tw.Close()
	dir := tree(t, map[string][]byte{"layer.tar": buf.Bytes()})
	got := resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))
	wantIMAAllowed(t, got["layer.tar!/good"])
	wantIMABlocked(t, got["layer.tar!/other"], signing.ErrSignature)
	wantIMABlocked(t, got["layer.tar!/cut"], signing.ErrMalformed)
	wantIMABlocked(t, got["layer.tar!/verity"], signing.ErrSignature)
	wantIMAAllowed(t, got["layer.tar!/verity-good"])
	wantIMABlocked(t, got["layer.tar!/digest"], signing.ErrDigestMismatch)
	wantIMABlocked(t, got["layer.tar!/huge"], signing.ErrLimit)
	if r := got["layer.tar!/evm"]; r.Decision.Allowed() || r.Err == nil || !strings.Contains(r.Decision.Reason, "EVM_XATTR_HMAC") {
		t.Fatalf("evm: %s %q", r.Decision.Verdict, r.Decision.Reason)
	}
}

// TestIMADoesNotSignWindowsFiles: an unsigned PE with an IMA signature in
// its sidecar (or a PAX record) is not allowed by a signer rule that
// names no signature_formats: Windows never reads security.ima, and
// refuses the file as unsigned. An ELF file's IMA signature still counts,
// and a rule that names ima counts it for any file.
func TestIMADoesNotSignWindowsFiles(t *testing.T) {
	p := newIMAPKI(t)
	pe := testbin.PE(testbin.PEOptions{})
	elf := testbin.ELF(testbin.ELFOptions{})
	dir := tree(t, map[string][]byte{"tool.exe": pe, "tool.exe.sig": p.sign(t, pe), "tool": elf, "tool.sig": p.sign(t, elf)})
	judge := func(formats string) map[string]Result {
		src := "format: csv-policy/v1\nname: w\nversion: '1'\nrules:\n" +
			"  - {id: signed, action: allow, signer: {tbs: " + p.certs[1].TBSHashHex() + ", level: issuer" + formats + "}}\n"
		pol, err := cipolicy.Parse([]byte(src), "w.yaml")
		if err != nil {
			t.Fatal(err)
		}
		set, err := cipolicy.NewSet(cipolicy.SetOptions{Now: func() time.Time { return testca.Epoch }}, pol)
		if err != nil {
			t.Fatal(err)
		}
		return resultsByPath(validate(t, set, Options{Certificates: p.certs}, dir))
	}
	plain := judge("")
	if r := plain["tool.exe"]; r.Decision.Allowed() || !strings.Contains(r.Decision.Reason, "no host running PE files checks") {
		t.Errorf("tool.exe, unsigned with an IMA sidecar: %s %s", r.Decision.Verdict, r.Decision.Reason)
	}
	if r := plain["tool"]; !r.Decision.Allowed() {
		t.Errorf("tool (ELF) with an IMA sidecar: %s %s", r.Decision.Verdict, r.Decision.Reason)
	}
	named := judge(", signature_formats: [ima]")
	if r := named["tool.exe"]; !r.Decision.Allowed() {
		t.Errorf("tool.exe under a rule naming ima: %s %s", r.Decision.Verdict, r.Decision.Reason)
	}
}

// TestIMANestedContainer: a layer member that is itself a container (a
// compressed module m.ko.xz, which the kernel loads as it is stored) has
// its security.ima judged against its stored bytes: a signature over them
// holds and its content is walked; one over other bytes blocks it.
func TestIMANestedContainer(t *testing.T) {
	p := newIMAPKI(t)
	elf := testbin.ELF(testbin.ELFOptions{})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(elf)
	zw.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range []struct {
		name string
		attr []byte
	}{{"good.ko.gz", p.sign(t, gz.Bytes())}, {"bad.ko.gz", p.sign(t, []byte("other"))}} {
		hdr := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(gz.Len()), Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr." + ima.XattrName: string(m.attr)}}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(gz.Bytes())
	}
	tw.Close()
	dir := tree(t, map[string][]byte{"layer.tar": buf.Bytes()})
	got := resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))
	if r, ok := got["layer.tar!/good.ko.gz!/good.ko"]; !ok || r.Err != nil {
		t.Errorf("good.ko.gz's content: %+v (all: %v)", r, got)
	}
	r, ok := got["layer.tar!/bad.ko.gz"]
	if !ok || r.Decision.Allowed() || !errors.Is(r.Err, signing.ErrSignature) || !strings.Contains(r.Decision.Reason, ima.XattrName) {
		t.Errorf("bad.ko.gz: %s %q (error %v)", r.Decision.Verdict, r.Decision.Reason, r.Err)
	}
	if _, walked := got["layer.tar!/bad.ko.gz!/bad.ko"]; walked {
		t.Errorf("bad.ko.gz's content was walked")
	}
}
