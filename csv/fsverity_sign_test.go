package csv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/fsverity"
)

// fsvSignFiles is a build for csv sign --fsverity: ELF files of one block
// (64- and 32-bit) and of several blocks, not aligned; a PE file and a
// text file, which get no fs-verity signature.
func fsvSignFiles() map[string][]byte {
	return map[string][]byte{
		"bin/tool":    testbin.ELF(testbin.ELFOptions{}),
		"bin/tool32":  testbin.ELF(testbin.ELFOptions{Class32: true}),
		"lib/big":     testbin.ELF(testbin.ELFOptions{Extra: bytes.Repeat([]byte("fsverity"), 3*4096/8+77)}),
		"win/app.exe": testbin.PE(testbin.PEOptions{}),
		"README":      []byte("text\n"),
	}
}

// fsvRule allows files by a verified fs-verity built-in signature (and no
// other) whose issuer is ca's intermediate.
func fsvRule(t *testing.T, ca *testca.CA) string {
	return fmt.Sprintf("{id: fsv, action: allow, signer: {tbs: %s, level: issuer, signature_formats: [%s]}}", sigCert(t, ca.Intermediate.Cert).TBSHashHex(), fsverity.SignatureFormat)
}

// TestSignFSVerity: csv sign --fsverity writes FILE.fsv.sig beside every
// signed ELF file (and no other), over the signed output: (1) each sidecar
// is byte for byte what `fsverity sign --key K --cert C` writes for the
// signed file (RSA); (2) csv validate with a signer rule on
// signature_formats [fsverity] allows the files, blocks one whose byte
// changed after signing and one whose sidecar is gone; (3) openssl cms
// verifies each sidecar against the file's fsverity_formatted_digest, and
// refuses it against another digest.
func TestSignFSVerity(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	openssl := testenv.Tool(t, "openssl")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build fs-verity"})
	dir := tree(t, fsvSignFiles())
	rep, err := Sign(t.Context(), SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, FSVerity: true}, dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	keyFile, certFile, caFile := filepath.Join(keys, "k.pem"), filepath.Join(keys, "c.pem"), filepath.Join(keys, "ca.pem")
	os.WriteFile(keyFile, testca.KeyPEM(t, leaf.Key), 0o600)
	os.WriteFile(certFile, testca.PEM(leaf.Cert, ca.Intermediate.Cert), 0o600)
	os.WriteFile(caFile, testca.PEM(ca.Root.Cert, ca.Intermediate.Cert), 0o600) // openssl cms has no -untrusted
	elves := 0
	for _, s := range rep.Signed {
		path := filepath.Join(dir, filepath.FromSlash(s.Path))
		if s.Format != FormatELF {
			if s.FSVeritySidecar != "" {
				t.Errorf("%s (%s): fs-verity sidecar %q", s.Path, s.Format, s.FSVeritySidecar)
			}
			if _, err := os.Lstat(path + fsverity.SidecarSuffix); err == nil {
				t.Errorf("%s (%s) got an fs-verity signature", s.Path, s.Format)
			}
			continue
		}
		elves++
		if s.FSVeritySidecar != s.Output+fsverity.SidecarSuffix {
			t.Fatalf("%s: sidecar %q", s.Path, s.FSVeritySidecar)
		}
		got, err := os.ReadFile(path + fsverity.SidecarSuffix)
		if err != nil {
			t.Fatal(err)
		}
		// (1) fsverity sign of the signed file writes the same bytes.
		want := filepath.Join(keys, "want.sig")
		if out, err := exec.Command(tool, "sign", path, want, "--key="+keyFile, "--cert="+certFile).CombinedOutput(); err != nil {
			t.Fatalf("fsverity sign %s: %v\n%s", s.Path, err, out)
		}
		if w, _ := os.ReadFile(want); !bytes.Equal(got, w) {
			t.Errorf("%s: csv's sidecar (%d bytes) differs from fsverity sign's (%d bytes)", s.Path, len(got), len(w))
		}
		// (3) openssl cms verifies it against the formatted digest of
		// `fsverity digest`, with the chain to the root, and refuses it
		// against another file's.
		out, err := exec.Command(tool, "digest", "--compact", path).CombinedOutput()
		if err != nil {
			t.Fatalf("fsverity digest: %v\n%s", err, out)
		}
		var digest []byte
		if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%x", &digest); err != nil || len(digest) != 32 {
			t.Fatalf("fsverity digest printed %q", out)
		}
		content := filepath.Join(keys, "formatted")
		cms := func() ([]byte, error) {
			return exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", path+fsverity.SidecarSuffix,
				"-content", content, "-certfile", certFile, "-CAfile", caFile, "-purpose", "any",
				"-attime", strconv.FormatInt(testca.Epoch.Unix(), 10), "-out", os.DevNull).CombinedOutput()
		}
		os.WriteFile(content, fsverity.FormattedDigest(digest), 0o600)
		if out, err := cms(); err != nil {
			t.Errorf("openssl cms refuses %s's sidecar: %v\n%s", s.Path, err, out)
		}
		digest[31] ^= 1
		os.WriteFile(content, fsverity.FormattedDigest(digest), 0o600)
		if out, err := cms(); err == nil {
			t.Errorf("openssl cms accepts %s's sidecar over another digest:\n%s", s.Path, out)
		}
	}
	if elves != 3 {
		t.Fatalf("signed %d ELF files, want 3", elves)
	}
	for _, p := range []string{"README", "win/app.exe"} {
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)+fsverity.SidecarSuffix)); err == nil {
			t.Errorf("%s got an fs-verity signature", p)
		}
	}

	// (2) csv validate allows them by their fs-verity signatures only.
	certs := []*signing.Certificate{sigCert(t, leaf.Cert), sigCert(t, ca.Intermediate.Cert), sigCert(t, ca.Root.Cert)}
	set := policyFor(t, fsvRule(t, ca))
	got := fsvResults(validate(t, set, Options{Certificates: certs}, dir))
	for _, p := range []string{"bin/tool", "bin/tool32", "lib/big"} {
		if r := got[p]; r.Decision.Verdict != "allowed" || r.Decision.Rule != "fsv" {
			t.Errorf("%s: %s/%s (%v), want allowed/fsv", p, r.Decision.Verdict, r.Decision.Rule, r.Err)
		}
	}
	big := filepath.Join(dir, "lib", "big")
	b, _ := os.ReadFile(big)
	b[len(b)/2] ^= 0x10
	os.WriteFile(big, b, 0o755)
	os.Remove(filepath.Join(dir, "bin", "tool32"+fsverity.SidecarSuffix))
	got = fsvResults(validate(t, set, Options{Certificates: certs}, dir))
	if r := got["bin/tool"]; r.Decision.Verdict != "allowed" {
		t.Errorf("bin/tool: %s", r.Decision.Verdict)
	}
	for _, p := range []string{"lib/big", "bin/tool32"} {
		if r := got[p]; r.Decision.Verdict == "allowed" {
			t.Errorf("%s: allowed (rule %s)", p, r.Decision.Rule)
		}
	}
	var verdictOK bool
	for _, sig := range got["lib/big"].Signatures {
		if sig.Format == fsverity.SignatureFormat {
			verdictOK = errors.Is(sig.Problem, signing.ErrSignature)
		}
	}
	if !verdictOK {
		t.Errorf("lib/big changed: signatures %+v, want an fs-verity one that does not verify", got["lib/big"].Signatures)
	}
}

// TestSignFSVerityECDSAOut: with an ECDSA key, and --out, the sidecars
// go beside the signed files in the output tree (none in the source), and
// csv validate allows the output by them.
func TestSignFSVerityECDSAOut(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build fs-verity", KeyType: testca.ECDSAP256})
	src := tree(t, fsvSignFiles())
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Sign(t.Context(), SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, FSVerity: true, Out: out}, src); err != nil {
		t.Fatal(err)
	}
	for p := range snapshot(t, src) {
		if strings.HasSuffix(p, fsverity.SidecarSuffix) {
			t.Errorf("sidecar %s written in the source tree", p)
		}
	}
	certs := []*signing.Certificate{sigCert(t, leaf.Cert), sigCert(t, ca.Intermediate.Cert), sigCert(t, ca.Root.Cert)}
	got := fsvResults(validate(t, policyFor(t, fsvRule(t, ca)), Options{Certificates: certs}, out))
	for _, p := range []string{"bin/tool", "bin/tool32", "lib/big"} {
		if r := got[p]; r.Decision.Verdict != "allowed" || r.Decision.Rule != "fsv" {
			t.Errorf("%s: %s/%s (%v), want allowed/fsv", p, r.Decision.Verdict, r.Decision.Rule, r.Err)
		}
	}
}

// TestSignFSVerityRefuses: csv sign --fsverity changes nothing when a
// FILE.fsv.sig is there that is not an fs-verity signature, or when the
// key is one `fsverity sign` would refuse (not the certificate's; Ed25519,
// which neither it nor the kernel signs with); an earlier fs-verity
// sidecar is replaced.
func TestSignFSVerityRefuses(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build fs-verity"})
	other := ca.Leaf(t, testca.LeafOptions{CommonName: "Other"})
	chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}
	old, err := fsverity.Sign(make([]byte, fsverity.HashSize), leaf.Cert, leaf.Key, 0)
	if err != nil {
		t.Fatal(err)
	}
	elf := testbin.ELF(testbin.ELFOptions{})
	unchanged := func(t *testing.T, dir string, before map[string][]byte) {
		t.Helper()
		after := snapshot(t, dir)
		if len(after) != len(before) {
			t.Errorf("%d files, were %d", len(after), len(before))
		}
		for k, v := range before {
			if !bytes.Equal(after[k], v) {
				t.Errorf("%s changed", k)
			}
		}
	}

	t.Run("other sidecar", func(t *testing.T) {
		dir := tree(t, map[string][]byte{"bin/tool": elf, "bin/tool.fsv.sig": []byte("-----BEGIN PGP SIGNATURE-----\n"), "bin/old": elf, "bin/old.fsv.sig": old})
		before := snapshot(t, dir)
		opts := SignOptions{Key: leaf.Key, Chain: chain, FSVerity: true}
		if _, err := Sign(t.Context(), opts, dir); err == nil || !strings.Contains(err.Error(), "tool.fsv.sig exists and is not an fs-verity built-in signature") {
			t.Fatalf("err = %v", err)
		}
		unchanged(t, dir, before)
		os.Remove(filepath.Join(dir, "bin", "tool.fsv.sig"))
		if _, err := Sign(t.Context(), opts, dir); err != nil {
			t.Fatal(err)
		}
		certs := []*signing.Certificate{sigCert(t, leaf.Cert), sigCert(t, ca.Intermediate.Cert), sigCert(t, ca.Root.Cert)}
		got := fsvResults(validate(t, policyFor(t, fsvRule(t, ca)), Options{Certificates: certs}, dir))
		for _, p := range []string{"bin/tool", "bin/old"} {
			if r := got[p]; r.Decision.Verdict != "allowed" {
				t.Errorf("%s: %s (%v)", p, r.Decision.Verdict, r.Err)
			}
		}
	})
	t.Run("sidecar is a directory", func(t *testing.T) {
		dir := tree(t, map[string][]byte{"bin/tool": elf, "bin/tool.fsv.sig/x": []byte("x")})
		before := snapshot(t, dir)
		if _, err := Sign(t.Context(), SignOptions{Key: leaf.Key, Chain: chain, FSVerity: true}, dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v", err)
		}
		unchanged(t, dir, before)
	})

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Ed25519 build"},
		NotBefore: testca.Epoch.AddDate(-1, 0, 0), NotAfter: testca.Epoch.AddDate(1, 0, 0), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	edDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, edKey.Public(), edKey)
	if err != nil {
		t.Fatal(err)
	}
	edCert, _ := x509.ParseCertificate(edDER)
	for name, opts := range map[string]SignOptions{
		"key not the certificate's": {Key: other.Key, Chain: chain, FSVerity: true},
		"ed25519":                   {Key: edKey, Chain: []*x509.Certificate{edCert}, FSVerity: true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := tree(t, map[string][]byte{"bin/tool": elf})
			before := snapshot(t, dir)
			if _, err := Sign(t.Context(), opts, dir); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "fs-verity") {
				t.Fatalf("err = %v", err)
			}
			unchanged(t, dir, before)
		})
	}
}

// fsvResults maps a report's results by path (resultsByPath is Linux's).
func fsvResults(rep *Report) map[string]Result {
	out := map[string]Result{}
	for _, r := range rep.Results {
		out[r.Path] = r
	}
	return out
}

// BenchmarkSignFSVerity measures csv sign of 16 ELF files of 4 MiB into
// an output tree, without and with --fsverity (which reads each signed
// output again for its fs-verity digest and writes a sidecar), and, in
// the same run, `fsverity sign` of the 16 signed files one at a time, as a
// pipeline without --fsverity would add them.
func BenchmarkSignFSVerity(b *testing.B) {
	ca := testca.New(b)
	leaf := ca.Leaf(b, testca.LeafOptions{CommonName: "Build fs-verity"})
	files := map[string][]byte{}
	const n, size = 16, 4 << 20
	for i := range n {
		extra := make([]byte, size)
		for j := range extra {
			extra[j] = byte(i*7 + j*13 + j>>12)
		}
		files[fmt.Sprintf("bin/tool%02d", i)] = testbin.ELF(testbin.ELFOptions{Extra: extra})
	}
	src := tree(b, files)
	out := filepath.Join(b.TempDir(), "out")
	sign := func(b *testing.B, fsv bool) {
		b.SetBytes(n * size)
		for b.Loop() {
			if err := os.RemoveAll(out); err != nil {
				b.Fatal(err)
			}
			if _, err := Sign(b.Context(), SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, FSVerity: fsv, Out: out}, src); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sign", func(b *testing.B) { sign(b, false) })
	b.Run("sign --fsverity", func(b *testing.B) { sign(b, true) })
	b.Run("fsverity sign per file", func(b *testing.B) {
		tool, err := exec.LookPath("fsverity")
		if err != nil {
			b.Skip("fsverity is not installed")
		}
		keys := b.TempDir()
		keyFile, certFile := filepath.Join(keys, "k.pem"), filepath.Join(keys, "c.pem")
		os.WriteFile(keyFile, testca.KeyPEM(b, leaf.Key), 0o600)
		os.WriteFile(certFile, testca.PEM(leaf.Cert), 0o600)
		os.RemoveAll(out)
		if _, err := Sign(b.Context(), SignOptions{Key: leaf.Key, Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, Out: out}, src); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(n * size)
		for b.Loop() {
			for p := range files {
				f := filepath.Join(out, filepath.FromSlash(p))
				if o, err := exec.Command(tool, "sign", f, f+".peer.sig", "--key="+keyFile, "--cert="+certFile).CombinedOutput(); err != nil {
					b.Fatalf("fsverity sign: %v\n%s", err, o)
				}
			}
		}
	})
}
