//go:build linux

package csv

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/ima"
)

// imaSignTree is a build with ELF files and a PE file, signed with
// opts.IMA set by the IMA test PKI's leaf.
func imaSign(t *testing.T, p *imaPKI, mode IMAMode, files map[string][]byte) (string, *SignReport) {
	t.Helper()
	dir := tree(t, files)
	rep, err := Sign(t.Context(), SignOptions{Key: p.leaf.Key, Chain: []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, IMA: mode}, dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, rep
}

// TestSignIMASidecar: csv sign --ima --ima-sidecar writes FILE.sig beside
// every signed binary; evmctl ima_verify --sigfile accepts each, and
// refuses it once the file changes; csv validate admits the files by
// their IMA signatures and blocks the changed one.
func TestSignIMASidecar(t *testing.T) {
	bin := testenv.Tool(t, "evmctl")
	p := newIMAPKI(t)
	dir, rep := imaSign(t, p, IMASidecar, map[string][]byte{
		"bin/tool":   testbin.ELF(testbin.ELFOptions{}),
		"bin/tool32": testbin.ELF(testbin.ELFOptions{Class32: true}),
		"README":     []byte("text\n"),
	})
	if len(rep.Signed) != 2 {
		t.Fatalf("signed %d files", len(rep.Signed))
	}
	certFile := filepath.Join(t.TempDir(), "ima.der")
	os.WriteFile(certFile, p.leaf.Cert.Raw, 0o600)
	for _, s := range rep.Signed {
		if s.IMASidecar != s.Output+".sig" {
			t.Fatalf("%s: sidecar %q", s.Path, s.IMASidecar)
		}
		path := filepath.Join(dir, filepath.FromSlash(s.Path))
		if _, err := unix.Lgetxattr(path, ima.XattrName, make([]byte, 64)); err == nil {
			t.Fatalf("%s: %s set in sidecar mode", s.Path, ima.XattrName)
		}
		if out, err := exec.Command(bin, "ima_verify", "--sigfile", "--key", certFile, path).CombinedOutput(); err != nil {
			t.Fatalf("evmctl refuses csv sign's IMA signature of %s: %v\n%s", s.Path, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "README.sig")); err == nil {
		t.Fatal("a text file got an IMA signature")
	}
	got := resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))
	wantIMAAllowed(t, got["bin/tool"])
	wantIMAAllowed(t, got["bin/tool32"])

	tool := filepath.Join(dir, "bin", "tool")
	b, _ := os.ReadFile(tool)
	b[0x80] ^= 1 // in the code, before the appended signature
	os.WriteFile(tool, b, 0o755)
	if out, err := exec.Command(bin, "ima_verify", "--sigfile", "--key", certFile, tool).CombinedOutput(); err == nil {
		t.Fatalf("evmctl accepts a changed file:\n%s", out)
	}
	wantIMABlocked(t, resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))["bin/tool"], signing.ErrSignature)
}

// TestSignIMAXattr: csv sign --ima sets security.ima of the signed file
// (the temporary file, renamed into place), and evmctl ima_verify reads
// and accepts it there. Where the attribute cannot be set, the sidecar is
// written instead, with a warning.
func TestSignIMAXattr(t *testing.T) {
	bin := testenv.Tool(t, "evmctl")
	p := newIMAPKI(t)
	probe := filepath.Join(t.TempDir(), "probe")
	os.WriteFile(probe, nil, 0o600)
	canSet := unix.Setxattr(probe, ima.XattrName, []byte{0x04, 4}, 0) == nil
	dir, rep := imaSign(t, p, IMAXattr, map[string][]byte{"bin/tool": testbin.ELF(testbin.ELFOptions{})})
	s := rep.Signed[0]
	path := filepath.Join(dir, "bin", "tool")
	if !canSet {
		if s.IMASidecar == "" || len(s.Warnings) == 0 || !strings.Contains(strings.Join(s.Warnings, "\n"), ima.XattrName) {
			t.Fatalf("no xattrs here: sidecar %q, warnings %q", s.IMASidecar, s.Warnings)
		}
		t.Skip("security.ima cannot be set here: the sidecar fallback is checked, the attribute is not")
	}
	if s.IMASidecar != "" {
		t.Fatalf("sidecar %q written where the attribute can be set", s.IMASidecar)
	}
	certFile := filepath.Join(t.TempDir(), "ima.der")
	os.WriteFile(certFile, p.leaf.Cert.Raw, 0o600)
	if out, err := exec.Command(bin, "ima_verify", "--key", certFile, path).CombinedOutput(); err != nil {
		t.Fatalf("evmctl refuses the attribute csv sign set: %v\n%s", err, out)
	}
	wantIMAAllowed(t, resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))["bin/tool"])
}

// TestSignIMARefusesCertWithoutKeyID: a build certificate without a
// subject key identifier cannot make IMA signatures the kernel finds a
// key for; csv sign --ima refuses before it changes anything.
func TestSignIMARefusesCertWithoutKeyID(t *testing.T) {
	s := newSigner(t) // its leaf has no subject key identifier
	dir := buildTree(t)
	before := snapshot(t, dir)
	opts := s.opts()
	opts.IMA = IMAXattr
	if _, err := Sign(t.Context(), opts, dir); !errors.Is(err, ErrOptions) {
		t.Fatalf("err = %v", err)
	}
	for k, v := range snapshot(t, dir) {
		if !bytes.Equal(before[k], v) {
			t.Fatalf("%s changed", k)
		}
	}
}

// TestSignIMAKeepsOtherSig: a FILE.sig that is not an IMA signature (an
// OpenPGP one) is not replaced by csv sign --ima --ima-sidecar: the run
// fails and changes nothing; an earlier IMA sidecar is replaced.
func TestSignIMAKeepsOtherSig(t *testing.T) {
	p := newIMAPKI(t)
	elf := testbin.ELF(testbin.ELFOptions{})
	dir := tree(t, map[string][]byte{"bin/tool": elf, "bin/tool.sig": {0x89, 0x01, 0x33, 0x04}, "bin/old": elf, "bin/old.sig": p.sign(t, []byte("old"))})
	before := snapshot(t, dir)
	opts := SignOptions{Key: p.leaf.Key, Chain: []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, IMA: IMASidecar}
	if _, err := Sign(t.Context(), opts, dir); err == nil || !strings.Contains(err.Error(), "not an IMA signature") {
		t.Fatalf("err = %v", err)
	}
	for k, v := range snapshot(t, dir) {
		if !bytes.Equal(before[k], v) {
			t.Fatalf("%s changed", k)
		}
	}
	os.Remove(filepath.Join(dir, "bin", "tool.sig"))
	if _, err := Sign(t.Context(), opts, dir); err != nil {
		t.Fatal(err)
	}
	got := resultsByPath(validate(t, p.set, Options{Certificates: p.certs}, dir))
	wantIMAAllowed(t, got["bin/old"])
	wantIMAAllowed(t, got["bin/tool"])
}
