package csv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/fsverity"
)

// TestFSVerityHashRules: a hash rule on fsverity_sha256, written with the
// digest `fsverity digest` prints, admits the ELF file in a run (computed
// in the one read, only when a rule asks for it), and the same file with
// one byte changed is blocked; files of formats without an fs-verity
// digest are not hashed for it.
func TestFSVerityHashRules(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	big := testbin.ELF(testbin.ELFOptions{})
	big = append(big, make([]byte, 3*4096+123)...) // several blocks, not aligned
	changed := slices.Clone(big)
	changed[len(changed)-7] ^= 0x40
	dir := tree(t, map[string][]byte{"ok": big, "changed": changed, "a.exe": peImg})
	out, err := exec.Command(tool, "digest", "--compact", filepath.Join(dir, "ok")).CombinedOutput()
	if err != nil {
		t.Fatalf("fsverity digest: %v\n%s", err, out)
	}
	digest := strings.TrimSpace(string(out))
	set := policyFor(t, fmt.Sprintf("{id: fsv, action: allow, fsverity_sha256: %s}", digest))
	if n := set.Needs("ok", FormatELF, ""); !n.Digests.Has(cipolicy.FSVeritySHA256) || n.Digests.Has(cipolicy.SHA256) {
		t.Errorf("needs of an ELF file: %v", n.Digests)
	}
	rep := validate(t, set, Options{}, dir)
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Path] = fmt.Sprintf("%s/%s", r.Decision.Verdict, r.Decision.Rule)
		switch r.Path {
		case "ok", "changed":
			if d := r.Digests.Get(cipolicy.FSVeritySHA256); len(d) != 32 {
				t.Errorf("%s: fsverity_sha256 %x", r.Path, d)
			}
		default:
			if d := r.Digests.Get(cipolicy.FSVeritySHA256); d != nil {
				t.Errorf("%s (%s): fsverity_sha256 computed: %x", r.Path, r.Format, d)
			}
		}
	}
	want := map[string]string{"ok": "allowed/fsv", "changed": "blocked/", "a.exe": "blocked/"}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s, want %s", p, got[p], w)
		}
	}

	// csv inspect's digests (every digest) carry it too, equal to the peer's.
	in := InspectFile(t.Context(), filepath.Join(dir, "ok"), nil, InspectOptions{})
	if in.Err != nil {
		t.Fatal(in.Err)
	}
	if g := fmt.Sprintf("%x", in.Digests.Get(cipolicy.FSVeritySHA256)); g != digest {
		t.Errorf("inspect: fsverity_sha256 %s, fsverity digest %s", g, digest)
	}
}

// TestFSVeritySidecarSignatures: an ELF file whose FILE.fsv.sig `fsverity
// sign` wrote is allowed by a signer rule on the signer's issuer; the same
// signature beside a changed file, or a signature by another CA, is
// blocked; a corrupt sidecar makes the file malformed (never ignored); a
// file without a sidecar is unsigned.
func TestFSVeritySidecarSignatures(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build fs-verity"})
	other := testca.New(t)
	rogue := other.Leaf(t, testca.LeafOptions{CommonName: "Build fs-verity"})
	elf := append(testbin.ELF(testbin.ELFOptions{}), make([]byte, 5000)...)
	changed := slices.Clone(elf)
	changed[len(changed)-10] ^= 1
	dir := tree(t, map[string][]byte{"ok": elf, "changed": elf, "rogue": elf, "corrupt": elf, "none": elf})
	keys := t.TempDir()
	sign := func(name string, c *testca.Cert) []byte {
		key, cert, sig := filepath.Join(keys, "k"), filepath.Join(keys, "c"), filepath.Join(dir, name+fsverity.SidecarSuffix)
		os.WriteFile(key, testca.KeyPEM(t, c.Key), 0o600)
		os.WriteFile(cert, testca.PEM(c.Cert), 0o600)
		if out, err := exec.Command(tool, "sign", filepath.Join(dir, name), sig, "--key="+key, "--cert="+cert).CombinedOutput(); err != nil {
			t.Fatalf("fsverity sign: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(sig)
		return b
	}
	sign("ok", leaf)
	sign("changed", leaf)
	sign("rogue", rogue)
	good := sign("corrupt", leaf)
	os.WriteFile(filepath.Join(dir, "corrupt"+fsverity.SidecarSuffix), good[:len(good)-3], 0o600)
	os.WriteFile(filepath.Join(dir, "changed"), changed, 0o644) // after signing

	certs := []*signing.Certificate{sigCert(t, leaf.Cert), sigCert(t, ca.Intermediate.Cert), sigCert(t, ca.Root.Cert),
		sigCert(t, rogue.Cert), sigCert(t, other.Intermediate.Cert), sigCert(t, other.Root.Cert)}
	set := policyFor(t, fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", sigCert(t, ca.Intermediate.Cert).TBSHashHex()))
	rep := validate(t, set, Options{Certificates: certs}, dir)
	got := map[string]*Result{}
	for i := range rep.Results {
		got[rep.Results[i].Path] = &rep.Results[i]
	}
	verdict := func(p string) string {
		r := got[p]
		if r == nil {
			return "missing"
		}
		return fmt.Sprintf("%s/%s", r.Decision.Verdict, r.Decision.Rule)
	}
	for p, w := range map[string]string{"ok": "allowed/build", "changed": "blocked/", "rogue": "blocked/", "corrupt": "blocked/", "none": "blocked/"} {
		if g := verdict(p); g != w {
			t.Errorf("%s: %s, want %s", p, g, w)
		}
	}
	if r := got["ok"]; r != nil && (len(r.Signatures) != 1 || r.Signatures[0].Format != fsverity.SignatureFormat || !r.Signatures[0].Verified()) {
		t.Errorf("ok: signatures %+v", r.Signatures)
	}
	if r := got["changed"]; r != nil && (len(r.Signatures) != 1 || !errors.Is(r.Signatures[0].Problem, signing.ErrSignature)) {
		t.Errorf("changed: signatures %+v", r.Signatures)
	}
	var me *MalformedBinaryError
	if r := got["corrupt"]; r == nil || !errors.As(r.Err, &me) || !errors.Is(r.Err, signing.ErrMalformed) || !strings.Contains(me.Reason, "corrupt.fsv.sig") {
		t.Errorf("corrupt sidecar: %v", got["corrupt"])
	}
	for _, s := range rep.Skipped {
		if !strings.HasSuffix(s.Path, fsverity.SidecarSuffix) {
			t.Errorf("skipped %s", s.Path)
		}
	}
}
