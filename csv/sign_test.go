package csv

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/keys"
	"github.com/codesignval/csv/signing/modsig"
)

// buildTree writes a small build: PE32+, PE32, a PE with overlay, ELF
// programs, a text file.
func buildTree(t *testing.T) string {
	t.Helper()
	return tree(t, map[string][]byte{
		"win/app.exe":      testbin.PE(testbin.PEOptions{}),
		"win/lib32.dll":    testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("data")}),
		"win/setup.exe":    testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte("payload"), 999)}),
		"linux/tool":       testbin.ELF(testbin.ELFOptions{}),
		"linux/lib/tool32": testbin.ELF(testbin.ELFOptions{Class32: true}),
		"docs/README.txt":  []byte("not a binary\n"),
	})
}

type signer struct {
	ca    *testca.CA
	leaf  *testca.Cert
	chain []*x509.Certificate
	files testca.Files
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	s := &signer{ca: ca, leaf: leaf, chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}}
	s.files = ca.WriteFiles(t, t.TempDir(), leaf)
	return s
}

func (s *signer) opts() SignOptions {
	return SignOptions{Key: s.leaf.Key, Chain: s.chain}
}

// bundler makes Sigstore bundles with the signer's key, as csv sign
// --bundle wires them.
func (s *signer) bundler() func([]byte) ([]byte, error) {
	return func(sum []byte) ([]byte, error) { return bundle.New(sum, s.leaf.Key, s.chain, nil) }
}

// snapshot records every file's content under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			m[filepath.ToSlash(rel)] = b
		}
		return nil
	})
	return m
}

// pcaPolicy allows what the test CA's issuing CA signed.
func (s *signer) pcaPolicy(t *testing.T) *cipolicy.Set {
	t.Helper()
	inter := sigCert(t, s.ca.Intermediate.Cert)
	return policyFor(t, fmt.Sprintf("{id: build, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex()))
}

// TestSignClosedLoop: what Sign produces, validate admits with a signer rule
// for the build certificate's issuing CA; one flipped byte is blocked; the
// peers' own verifiers accept every signature.
func TestSignClosedLoop(t *testing.T) {
	s := newSigner(t)
	dir := buildTree(t)
	goBuilt := false
	if !testing.Short() {
		// A real Windows program, cross-compiled by Go.
		goBuilt = goWindowsPE(t, filepath.Join(dir, "win", "hello.exe"))
	}
	before := snapshot(t, dir)
	opts := s.opts()
	opts.Bundle = s.bundler()
	rep, err := Sign(t.Context(), opts, dir)
	if err != nil {
		t.Fatal(err)
	}
	binaries := 5
	if goBuilt {
		binaries++
	}
	if len(rep.Signed) != binaries+1 { // the binaries, and the text file (bundle only)
		t.Fatalf("signed %v", rep.SignedPaths())
	}
	after := snapshot(t, dir)
	if !bytes.Equal(after["docs/README.txt"], before["docs/README.txt"]) {
		t.Error("a file that is not a binary was changed")
	}
	for name := range after {
		if strings.Contains(name, tempMarker) {
			t.Errorf("temporary file left: %s", name)
		}
	}
	// Validate with the signer rule: every binary is allowed by signature.
	certs := []*signing.Certificate{sigCert(t, s.leaf.Cert), sigCert(t, s.ca.Intermediate.Cert)}
	vrep := validate(t, s.pcaPolicy(t), Options{Certificates: certs}, dir)
	if vrep.Summary.Files != binaries || vrep.Summary.Allowed != binaries {
		for _, r := range vrep.Results {
			t.Logf("%s: %s", r.Path, r.Decision.Reason)
		}
		t.Fatalf("summary %+v", vrep.Summary)
	}
	for _, r := range vrep.Results {
		if r.Decision.Kind != cipolicy.KindAllowedBySigner {
			t.Errorf("%s: %s", r.Path, r.Decision.Reason)
		}
	}
	// Each signed file's bundle verifies against the test root.
	for _, sg := range rep.Signed {
		data, _ := os.ReadFile(sg.Bundle)
		out, _ := os.ReadFile(sg.Output)
		sum := sha256.Sum256(out)
		if !bytes.Equal(sum[:], sg.SHA256) {
			t.Errorf("%s: reported SHA256 is not the signed file's", sg.Path)
		}
		if err := bundle.Verify(data, sum[:], bundle.VerifyOptions{Roots: []*x509.Certificate{s.ca.Root.Cert}, Now: testca.Epoch}); err != nil {
			t.Errorf("%s: bundle: %v", sg.Path, err)
		}
	}
	// osslsigncode accepts every signed PE.
	if ossl := osslPath(); ossl != "" {
		names := []string{"win/app.exe", "win/lib32.dll", "win/setup.exe"}
		if goBuilt {
			names = append(names, "win/hello.exe")
		}
		for _, name := range names {
			if out, err := exec.Command(ossl, "verify", "-CAfile", s.files.Root, "-in", filepath.Join(dir, name)).CombinedOutput(); err != nil {
				t.Errorf("osslsigncode verify %s: %v\n%s", name, err, out)
			}
		}
	}
	// openssl cms accepts every ELF signature.
	if openssl := opensslPath(); openssl != "" {
		for _, name := range []string{"linux/tool", "linux/lib/tool32"} {
			checkModsigWithOpenSSL(t, openssl, filepath.Join(dir, name), s)
		}
	}
	// One flipped byte in one file is blocked.
	p := filepath.Join(dir, "win/setup.exe")
	b, _ := os.ReadFile(p)
	b[0x500] ^= 0x40
	os.WriteFile(p, b, 0o644)
	p = filepath.Join(dir, "linux/tool")
	b, _ = os.ReadFile(p)
	b[0x80] ^= 1
	os.WriteFile(p, b, 0o755)
	vrep = validate(t, s.pcaPolicy(t), Options{Certificates: certs}, dir)
	blocked := map[string]bool{}
	for _, r := range vrep.Results {
		if !r.Decision.Allowed() {
			blocked[r.Path] = true
		}
	}
	if len(blocked) != 2 || !blocked["win/setup.exe"] || !blocked["linux/tool"] {
		t.Errorf("after flipping a byte, blocked: %v", blocked)
	}
}

// goWindowsPE cross-compiles a small Go program for windows/amd64 into out,
// or returns false when Go cannot here.
func goWindowsPE(t *testing.T, out string) bool {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		return false
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644)
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for windows: %v\n%s", err, b)
	}
	return true
}

func osslPath() string {
	p, _ := exec.LookPath("osslsigncode")
	return p
}

func opensslPath() string {
	p, _ := exec.LookPath("openssl")
	return p
}

// checkModsigWithOpenSSL verifies an ELF file's appended signature with
// openssl cms, the detached signature over the signed prefix.
func checkModsigWithOpenSSL(t *testing.T, openssl, path string, s *signer) {
	t.Helper()
	data, _ := os.ReadFile(path)
	app, err := modsig.Find(bytes.NewReader(data), int64(len(data)))
	if err != nil || app == nil {
		t.Fatalf("%s: no appended signature: %v", path, err)
	}
	tmp := t.TempDir()
	sig, content, cas, leaf := filepath.Join(tmp, "sig.p7"), filepath.Join(tmp, "content"), filepath.Join(tmp, "cas.pem"), filepath.Join(tmp, "leaf.pem")
	os.WriteFile(sig, app.PKCS7, 0o644)
	os.WriteFile(content, data[:app.SignedLen], 0o644)
	os.WriteFile(cas, testca.PEM(s.ca.Intermediate.Cert, s.ca.Root.Cert), 0o644)
	os.WriteFile(leaf, testca.PEM(s.leaf.Cert), 0o644)
	out, err := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", content,
		"-certfile", leaf, "-CAfile", cas, "-purpose", "any", "-attime", fmt.Sprint(testca.Epoch.Unix()), "-out", os.DevNull).CombinedOutput()
	if err != nil {
		t.Errorf("openssl cms -verify %s: %v\n%s", path, err, out)
	}
}

func TestSignIntoOutKeepsOriginals(t *testing.T) {
	s := newSigner(t)
	dir := buildTree(t)
	before := snapshot(t, dir)
	out := filepath.Join(t.TempDir(), "signed")
	opts := s.opts()
	opts.Out = out
	rep, err := Sign(t.Context(), opts, dir)
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); len(after) != len(before) {
		t.Fatalf("the source tree changed: %d files, was %d", len(after), len(before))
	} else {
		for k, v := range before {
			if !bytes.Equal(after[k], v) {
				t.Errorf("%s changed in the source tree", k)
			}
		}
	}
	got := snapshot(t, out)
	for _, name := range []string{"win/app.exe", "win/lib32.dll", "win/setup.exe", "linux/tool", "linux/lib/tool32"} {
		if len(got[name]) <= len(before[name]) {
			t.Errorf("OUT/%s: %d bytes, the original has %d", name, len(got[name]), len(before[name]))
		}
	}
	if _, ok := got["docs/README.txt"]; ok {
		t.Error("a file that is not a binary was copied without --bundle")
	}
	if len(rep.Signed) != 5 {
		t.Errorf("signed %v", rep.SignedPaths())
	}
}

// TestSignAllOrNothing: one file that cannot be signed (a PE whose
// certificate table is malformed) stops the run, and no file changes.
func TestSignAllOrNothing(t *testing.T) {
	s := newSigner(t)
	dir := buildTree(t)
	bad := testbin.PE(testbin.PEOptions{})
	bad = append(bad, make([]byte, 16)...)
	// Point the certificate table directory entry past the end of the file.
	pf := int64(0x40 + 24 + 112 + 32)
	copy(bad[pf:], []byte{0x00, 0x04, 0, 0, 0x00, 0x10, 0, 0})
	os.WriteFile(filepath.Join(dir, "win/zzz-bad.exe"), bad, 0o644)
	before := snapshot(t, dir)
	_, err := Sign(t.Context(), s.opts(), dir)
	var se *SignError
	if !errors.As(err, &se) || !strings.HasSuffix(se.Path, "win/zzz-bad.exe") || !strings.Contains(err.Error(), "certificate table") {
		t.Fatalf("err = %v", err)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("%d files after a failed run, %d before (temporary files left?)", len(after), len(before))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("%s changed although the run failed", k)
		}
	}
}

// TestSignCommitFailure: a rename that fails after others succeeded, or a
// directory sync that fails after all of them, puts every destination back
// as it was (in place, and under --out, where one destination existed
// before and the others did not), and leaves no temporary file or backup.
func TestSignCommitFailure(t *testing.T) {
	s := newSigner(t)
	errInjected := errors.New("injected failure")
	for _, tc := range []struct {
		name   string
		out    bool
		rename int // fail the n-th rename (1-based); 0: fail the directory sync
	}{
		{"in place, rename", false, 4},
		{"in place, directory sync", false, 0},
		{"out, rename", true, 3},
		{"out, directory sync", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildTree(t)
			before := snapshot(t, dir)
			opts := s.opts()
			target := dir
			if tc.out {
				opts.Out = t.TempDir()
				target = opts.Out
				// A destination that exists before the run must come back.
				os.MkdirAll(filepath.Join(opts.Out, "win"), 0o755)
				os.WriteFile(filepath.Join(opts.Out, "win/app.exe"), []byte("an earlier output"), 0o644)
			}
			targetBefore := snapshot(t, target)
			renames := 0
			beforeRename = func(string) error {
				if renames++; renames == tc.rename {
					return errInjected
				}
				return nil
			}
			if tc.rename == 0 {
				syncDir = func(*signTree, string) error { return errInjected }
			}
			t.Cleanup(func() {
				beforeRename = nil
				syncDir = (*signTree).syncDir
			})
			_, err := Sign(t.Context(), opts, dir)
			if !errors.Is(err, errInjected) || strings.Contains(err.Error(), "left signed") {
				t.Fatalf("err = %v", err)
			}
			if tc.rename != 0 && renames != tc.rename {
				t.Fatalf("%d renames, the failure was to be the %d-th", renames, tc.rename)
			}
			if tc.rename == 0 && renames != 5 {
				t.Fatalf("%d renames before the directory sync failed, want all 5", renames)
			}
			for what, want := range map[string]map[string][]byte{dir: before, target: targetBefore} {
				got := snapshot(t, what)
				for k, v := range want {
					if !bytes.Equal(got[k], v) {
						t.Errorf("%s: %s was not put back", what, k)
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("%s: %s is left over", what, k)
					}
				}
			}
		})
	}
}

// TestSignCommitFailureWithoutHardLinks: where no backup can be linked,
// a failed commit names the destinations it could not put back.
func TestSignCommitFailureWithoutHardLinks(t *testing.T) {
	s := newSigner(t)
	dir := buildTree(t)
	before := snapshot(t, dir)
	linkFile = func(*os.Root, string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	errInjected := errors.New("injected failure")
	renames := 0
	beforeRename = func(string) error {
		if renames++; renames == 3 {
			return errInjected
		}
		return nil
	}
	t.Cleanup(func() { linkFile, beforeRename = (*os.Root).Link, nil })
	_, err := Sign(t.Context(), s.opts(), dir)
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "left signed") {
		t.Fatalf("err = %v", err)
	}
	after := snapshot(t, dir)
	changed := 0
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			changed++
			if !strings.Contains(err.Error(), filepath.FromSlash(k)) {
				t.Errorf("%s changed, and the error does not name it: %v", k, err)
			}
		}
	}
	if changed != 2 || len(after) != len(before) {
		t.Errorf("%d files changed (want the 2 renamed before the failure), %d files (want %d)", changed, len(after), len(before))
	}
}

func TestSignCancelled(t *testing.T) {
	s := newSigner(t)
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("f%02d.exe", i)] = testbin.PE(testbin.PEOptions{Overlay: make([]byte, 64<<10)})
	}
	dir := tree(t, files)
	before := snapshot(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	opts := s.opts()
	opts.Jobs = 1
	opts.Progress = func(done, total int) {
		if done == 10 {
			cancel()
		}
	}
	_, err := Sign(ctx, opts, dir)
	var ie *InterruptedError
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("%d files after cancelling, %d before", len(after), len(before))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("%s changed although the run was cancelled", k)
		}
	}
}

// TestSignRefusesChangedFiles: with the digests validation saw, a file that
// changed since is not signed, and neither is anything else.
func TestSignRefusesChangedFiles(t *testing.T) {
	s := newSigner(t)
	dir := buildTree(t)
	set := policyFor(t, "{id: any, action: allow, all: true}")
	v, _ := NewValidator(set, Options{SignCheck: true})
	rep, err := v.Validate(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := s.opts()
	opts.Expect = rep.Digests()
	// Swap a binary after validation.
	os.WriteFile(filepath.Join(dir, "win/app.exe"), testbin.PE(testbin.PEOptions{Code: []byte{0xcc, 0xc3}}), 0o644)
	os.WriteFile(filepath.Join(dir, "linux/tool"), testbin.ELF(testbin.ELFOptions{Extra: []byte("evil")}), 0o755)
	before := snapshot(t, dir)
	_, err = Sign(t.Context(), opts, dir)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("err = %v, want ErrChanged", err)
	}
	for k, v := range snapshot(t, dir) {
		if !bytes.Equal(before[k], v) {
			t.Errorf("%s changed", k)
		}
	}
	// Unchanged files sign with the same expectations.
	os.WriteFile(filepath.Join(dir, "win/app.exe"), testbin.PE(testbin.PEOptions{}), 0o644)
	os.WriteFile(filepath.Join(dir, "linux/tool"), testbin.ELF(testbin.ELFOptions{}), 0o755)
	if _, err := Sign(t.Context(), opts, dir); err != nil {
		t.Fatalf("unchanged tree: %v", err)
	}

	// A binary validation never saw is refused.
	dir = buildTree(t)
	rep, _ = v.Validate(t.Context(), dir)
	opts.Expect = rep.Digests()
	os.WriteFile(filepath.Join(dir, "linux/added"), testbin.ELF(testbin.ELFOptions{Extra: []byte("new")}), 0o755)
	if _, err := Sign(t.Context(), opts, dir); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "validation did not judge it") {
		t.Errorf("a binary added after validation: %v", err)
	}
	os.Remove(filepath.Join(dir, "linux/added"))

	// A binary swapped for a file that is no binary is refused too, with
	// or without bundles (not left out of the signing, quietly).
	for _, bundles := range []bool{false, true} {
		dir = buildTree(t)
		rep, _ = v.Validate(t.Context(), dir)
		opts.Expect, opts.Bundle = rep.Digests(), nil
		if bundles {
			opts.Bundle = s.bundler()
		}
		os.WriteFile(filepath.Join(dir, "win/app.exe"), []byte("#!/bin/sh\necho not a binary\n"), 0o755)
		if _, err := Sign(t.Context(), opts, dir); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "no longer a PE or ELF") {
			t.Errorf("bundles %v: a binary swapped for a script: %v", bundles, err)
		}
	}
	opts.Bundle = nil

	// With Append, the signatures a PE has are kept: they must be the ones
	// validated (checked on the bytes read for signing). Another signature
	// over the same image, swapped in after validation, is refused.
	other := s.ca.Leaf(t, testca.LeafOptions{CommonName: "Other Signing"})
	otherOpts := SignOptions{Key: other.Key, Chain: []*x509.Certificate{other.Cert, s.ca.Intermediate.Cert}}
	for _, swap := range []bool{false, true} {
		dir = buildTree(t)
		if _, err := Sign(t.Context(), s.opts(), filepath.Join(dir, "win")); err != nil {
			t.Fatal(err)
		}
		rep, _ = v.Validate(t.Context(), dir)
		opts.Expect = rep.Digests()
		opts.PE.Append = true
		if swap {
			if _, err := Sign(t.Context(), otherOpts, filepath.Join(dir, "win", "app.exe")); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Sign(t.Context(), opts, dir)
		switch {
		case swap && (!errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "SHA256")):
			t.Errorf("--append, another signature swapped in: %v, want ErrChanged", err)
		case !swap && err != nil:
			t.Errorf("--append, as validated: %v", err)
		case !swap:
			if in := InspectFile(t.Context(), filepath.Join(dir, "win", "app.exe"), nil, InspectOptions{}); in.Err != nil || len(in.Signatures) != 2 {
				t.Errorf("--append: %v, %d signatures, want 2", in.Err, len(in.Signatures))
			}
		}
	}
	opts.PE.Append = false

	// A signed ELF module swapped for other code with a valid signature of
	// its own is refused (the signature is replaced, but the whole file,
	// old signature included, must be what was validated).
	mod := filepath.Join(dir, "linux/mod.ko")
	os.WriteFile(mod, testbin.ELF(testbin.ELFOptions{}), 0o755)
	appendModSig(t, mod, s.leaf)
	rep, _ = v.Validate(t.Context(), dir)
	opts.Expect = rep.Digests()
	os.WriteFile(mod, testbin.ELF(testbin.ELFOptions{Extra: []byte("other code")}), 0o755)
	appendModSig(t, mod, s.leaf)
	if _, err := Sign(t.Context(), opts, dir); !errors.Is(err, ErrChanged) {
		t.Errorf("a signed module swapped after validation: %v", err)
	}
}

// TestSignReplacesSignatures: signing a signed tree again replaces the
// signatures (PE and ELF); the files do not grow.
func TestSignReplacesSignatures(t *testing.T) {
	s := newSigner(t)
	dir := buildTree(t)
	if _, err := Sign(t.Context(), s.opts(), dir); err != nil {
		t.Fatal(err)
	}
	once := snapshot(t, dir)
	if _, err := Sign(t.Context(), s.opts(), dir); err != nil {
		t.Fatal(err)
	}
	for k, v := range snapshot(t, dir) {
		if !bytes.Equal(once[k], v) {
			t.Errorf("%s: signing again gave different bytes (%d, was %d)", k, len(v), len(once[k]))
		}
	}
	opts := s.opts()
	opts.PE.Append = true
	if _, err := Sign(t.Context(), opts, filepath.Join(dir, "linux")); !errors.Is(err, format.ErrOneSignature) {
		t.Errorf("--append on a signed ELF: %v", err)
	}
}

// TestSignKilled kills a signing process with SIGKILL in the middle of a
// large build: afterwards every file is either the original or fully signed
// and valid, never torn.
func TestSignKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("signs a large tree")
	}
	s := newSigner(t)
	files := map[string][]byte{}
	for i := range 60 {
		files[fmt.Sprintf("d%d/f%02d.exe", i%3, i)] = testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte{byte(i)}, 3<<20)})
	}
	dir := tree(t, files)
	originals := snapshot(t, dir)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(keyFile, testca.KeyPEM(t, s.leaf.Key), 0o600)
	chainFile := filepath.Join(t.TempDir(), "chain.pem")
	os.WriteFile(chainFile, testca.PEM(s.chain...), 0o644)

	// Kill while files are being signed, and while the signed files are
	// being renamed into place (the helper slows that phase down and says
	// when it starts).
	for attempt, phase := range []string{"signing", "renaming"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignHelperProcess$")
		cmd.Env = append(os.Environ(), "CSV_SIGN_HELPER=1", "CSV_SIGN_DIR="+dir, "CSV_SIGN_KEY="+keyFile, "CSV_SIGN_CHAIN="+chainFile)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if phase == "signing" {
			time.Sleep(300 * time.Millisecond)
		} else {
			line := make([]byte, len("renaming\n"))
			if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "renaming\n" {
				t.Fatalf("helper: %q, %v", line, err)
			}
			time.Sleep(150 * time.Millisecond) // a few renames done
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		signed, original := 0, 0
		for name, data := range snapshot(t, dir) {
			if strings.Contains(name, tempMarker) {
				continue // an abandoned temporary file: never a destination
			}
			orig := originals[name]
			if bytes.Equal(data, orig) {
				original++
				continue
			}
			// Otherwise it must be the original, fully signed and valid: its
			// one signature verifies and signs the original's image digest.
			p := filepath.Join(dir, name)
			in := InspectFile(t.Context(), p, nil, InspectOptions{})
			if in.Err != nil || len(in.Signatures) != 1 || !in.Signatures[0].Verified() || !bytes.Equal(in.Signatures[0].Digest, imageDigest(t, orig)) {
				t.Fatalf("attempt %d: %s is torn: err %v, %d signatures", attempt, name, in.Err, len(in.Signatures))
			}
			signed++
		}
		t.Logf("killed while %s: %d files signed, %d original", phase, signed, original)
		if phase == "renaming" && (signed == 0 || original == 0) {
			t.Errorf("killed while renaming, yet %d signed and %d original: the test did not hit the phase", signed, original)
		}
		// Abandoned temporaries and the journal are blocked by validate as
		// such, never mistaken for signed files.
		leftovers := 0
		for _, r := range validate(t, policyFor(t), Options{}, dir).Results {
			if strings.Contains(r.Path, tempMarker) {
				leftovers++
				if !strings.Contains(r.Decision.Reason, "left by a csv sign") {
					t.Errorf("attempt %d: validate judged %s as %+v", attempt, r.Path, r.Decision)
				}
			}
		}
		if phase == "renaming" && leftovers == 0 {
			t.Error("killed while renaming, yet no temporary file or backup is left")
		}
		// The next run puts the tree back as it was (from the backups), and
		// leaves nothing of the killed run.
		rec, err := RecoverSign(t.Context(), SignOptions{}, dir)
		if err != nil || len(rec.Runs) > 1 || (leftovers > 0 && len(rec.Runs) != 1) {
			t.Fatalf("attempt %d: recovery: %+v, %v", attempt, rec, err)
		}
		if after := snapshot(t, dir); !reflect.DeepEqual(after, originals) {
			t.Errorf("attempt %d: after recovery (%+v), the tree is not as before the killed run", attempt, rec.Runs[0])
		}
	}
}

// imageDigest is the Authenticode SHA256 of a PE image in memory.
func imageDigest(t *testing.T, img []byte) []byte {
	t.Helper()
	im, err := authpe.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := im.Digest(bytes.NewReader(img), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSignHelperProcess is the process TestSignKilled kills.
func TestSignHelperProcess(t *testing.T) {
	if os.Getenv("CSV_SIGN_HELPER") != "1" {
		t.Skip("helper process for TestSignKilled")
	}
	key, err := keys.LoadSigner(context.Background(), os.Getenv("CSV_SIGN_KEY"), keys.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := signing.LoadChain(os.Getenv("CSV_SIGN_CHAIN"))
	if err != nil {
		t.Fatal(err)
	}
	opts := SignOptions{Key: key, Chain: chain, Jobs: 2, Out: os.Getenv("CSV_SIGN_OUT")}
	// Stop for good where the test kills: say so on stdout, then wait.
	pause := func(stage string) {
		fmt.Print(stage + "\n")
		time.Sleep(time.Hour)
	}
	var once sync.Once
	switch stage := os.Getenv("CSV_SIGN_STAGE"); stage {
	case "":
		// TestSignKilled: slow renames, killed at some point among them.
		beforeRename = func(string) error {
			once.Do(func() { fmt.Print("renaming\n") })
			time.Sleep(20 * time.Millisecond)
			return nil
		}
	case "signing":
		opts.Jobs = 1
		opts.Progress = func(done, total int) {
			if done == total/2 {
				pause(stage)
			}
		}
	case "committed", "done":
		atStage = func(s string) {
			if s == stage {
				pause(stage)
			}
		}
	case "renaming":
		// The third destination's backup is made, its rename not done.
		n := 0
		beforeRename = func(string) error {
			if n++; n == 3 {
				pause(stage)
			}
			return nil
		}
	}
	if os.Getenv("CSV_SIGN_NOLINK") == "1" {
		linkFile = func(*os.Root, string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	}
	if _, err := Sign(context.Background(), opts, os.Getenv("CSV_SIGN_DIR")); err != nil {
		t.Fatal(err)
	}
}

// TestSignDestinations: what Sign writes never lands on a file it reads, or
// twice on one path. An --out tree inside the signed tree (an earlier run's
// output) is left out; an --out layout that would replace a file being
// signed is refused, as are two files written to one destination, with
// nothing written; overlapping roots sign each file once; in place, an
// earlier run's bundles are not bundled again, and neither is the
// manifest.
func TestSignDestinations(t *testing.T) {
	s := newSigner(t)

	t.Run("out inside the tree", func(t *testing.T) {
		dir := buildTree(t)
		out := filepath.Join(dir, "signed")
		opts := s.opts()
		opts.Out = out
		for run := range 2 { // the second run finds the first's output under dir
			before := snapshot(t, dir)
			rep, err := Sign(t.Context(), opts, dir)
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			if len(rep.Signed) != 5 {
				t.Errorf("run %d: signed %v", run, rep.SignedPaths())
			}
			for k, v := range before {
				if !strings.HasPrefix(k, "signed/") && !bytes.Equal(snapshot(t, dir)[k], v) {
					t.Errorf("run %d: original %s changed", run, k)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(out, "signed")); err == nil {
			t.Error("the second run signed the first run's output into OUT/signed")
		}
	})

	t.Run("out layout replacing a source", func(t *testing.T) {
		out := tree(t, map[string][]byte{
			"sub/x.exe":     testbin.PE(testbin.PEOptions{}),
			"sub/sub/x.exe": testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}}),
		})
		before := snapshot(t, out)
		opts := s.opts()
		opts.Out = out
		_, err := Sign(t.Context(), opts, filepath.Join(out, "sub"))
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "which is being signed") {
			t.Fatalf("err = %v", err)
		}
		if after := snapshot(t, out); !reflect.DeepEqual(after, before) {
			t.Error("files changed")
		}
	})

	t.Run("paths spelled through symbolic links", func(t *testing.T) {
		// --out names the real directory; the root, the same directory
		// through a link: the layout would still replace a source.
		real := tree(t, map[string][]byte{
			"sub/x.exe":     testbin.PE(testbin.PEOptions{}),
			"sub/sub/x.exe": testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}}),
		})
		via := filepath.Join(t.TempDir(), "via")
		if err := os.Symlink(real, via); err != nil {
			t.Skipf("no symbolic links: %v", err)
		}
		before := snapshot(t, real)
		opts := s.opts()
		opts.Out = real
		if _, err := Sign(t.Context(), opts, filepath.Join(via, "sub")); !errors.Is(err, ErrOptions) {
			t.Errorf("--out through another spelling: %v", err)
		}
		if !reflect.DeepEqual(snapshot(t, real), before) {
			t.Error("files changed")
		}
		// In place, through a linked root, a link to a file by its real
		// path: the file is signed once.
		os.Symlink(filepath.Join(real, "sub", "x.exe"), filepath.Join(real, "sub", "a-link.exe"))
		opts = s.opts()
		opts.FollowSymlinks = true
		rep, err := Sign(t.Context(), opts, filepath.Join(via, "sub"))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Signed) != 2 {
			t.Errorf("signed %v, want x.exe and sub/x.exe once each", rep.SignedPaths())
		}
	})

	t.Run("two files, one destination", func(t *testing.T) {
		a := tree(t, map[string][]byte{"app.exe": testbin.PE(testbin.PEOptions{})})
		b := tree(t, map[string][]byte{"app.exe": testbin.PE(testbin.PEOptions{Code: []byte{0x90, 0xc3}})})
		opts := s.opts()
		opts.Out = t.TempDir()
		_, err := Sign(t.Context(), opts, filepath.Join(a, "app.exe"), filepath.Join(b, "app.exe"))
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "would both be written to") {
			t.Fatalf("err = %v", err)
		}
		if got := snapshot(t, opts.Out); len(got) != 0 {
			t.Errorf("files written: %v", slices.Collect(maps.Keys(got)))
		}
	})

	t.Run("a failed run leaves no directory it made", func(t *testing.T) {
		dir := buildTree(t)
		os.WriteFile(filepath.Join(dir, "win/zzz-bad.exe"), testbin.PE(testbin.PEOptions{})[:700], 0o644)
		parent := t.TempDir()
		opts := s.opts()
		opts.Out = filepath.Join(parent, "new", "out")
		if _, err := Sign(t.Context(), opts, dir); err == nil {
			t.Fatal("signed a truncated PE")
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Errorf("left in the parent of --out: %v", ents)
		}
	})

	t.Run("overlapping roots in place", func(t *testing.T) {
		dir := buildTree(t)
		rep, err := Sign(t.Context(), s.opts(), dir, filepath.Join(dir, "win"), filepath.Join(dir, "win", "app.exe"))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Signed) != 5 {
			t.Errorf("signed %v, want each of the 5 binaries once", rep.SignedPaths())
		}
	})

	t.Run("bundles and manifest in place", func(t *testing.T) {
		dir := buildTree(t)
		readme := filepath.Join(dir, "docs/README.txt")
		st0, err := os.Stat(readme)
		if err != nil {
			t.Fatal(err)
		}
		opts := s.opts()
		opts.Bundle = s.bundler()
		opts.Manifest = filepath.Join(dir, "build.manifest.json")
		opts.MakeManifest = func(signed []Signed) ([]byte, error) { return []byte(fmt.Sprintf("%d files\n", len(signed))), nil }
		for run := range 2 {
			rep, err := Sign(t.Context(), opts, dir)
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			if len(rep.Signed) != 6 { // 5 binaries and the README
				t.Errorf("run %d: signed %v", run, rep.SignedPaths())
			}
		}
		for name := range snapshot(t, dir) {
			if strings.HasSuffix(name, ".sigstore.json.sigstore.json") || name == "build.manifest.json.sigstore.json" {
				t.Errorf("%s: an output was bundled", name)
			}
		}
		// The README is not rewritten to get its bundle.
		if st1, err := os.Stat(readme); err != nil || !os.SameFile(st0, st1) {
			t.Errorf("docs/README.txt was replaced (%v)", err)
		}
		if _, err := os.Stat(readme + ".sigstore.json"); err != nil {
			t.Error(err)
		}
	})
}

// TestSignKeepsMetadata: a signed file keeps its permission bits, setuid,
// setgid and sticky included, in place and in an --out tree; signing in
// place through a symbolic link signs its target and leaves the link.
func TestSignKeepsMetadata(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	s := newSigner(t)
	modes := map[string]fs.FileMode{"win/app.exe": 0o750 | fs.ModeSetuid, "linux/tool": 0o711 | fs.ModeSetgid, "win/lib32.dll": 0o600}
	for _, out := range []bool{false, true} {
		dir := buildTree(t)
		for name, m := range modes {
			if err := os.Chmod(filepath.Join(dir, name), m); err != nil {
				t.Fatal(err)
			}
		}
		opts := s.opts()
		where := dir
		if out {
			opts.Out = t.TempDir()
			where = opts.Out
		}
		if _, err := Sign(t.Context(), opts, dir); err != nil {
			t.Fatal(err)
		}
		for name, m := range modes {
			st, err := os.Stat(filepath.Join(where, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != m {
				t.Errorf("out %v: %s has mode %v, want %v", out, name, got, m)
			}
		}
	}

	// A setuid program of another owner, copied into --out by root, is not
	// setuid root: the bit goes with the owner.
	if os.Geteuid() == 0 {
		dir := buildTree(t)
		app := filepath.Join(dir, "win/app.exe")
		if err := os.Chown(app, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		os.Chmod(app, 0o755|fs.ModeSetuid|fs.ModeSetgid)
		opts := s.opts()
		opts.Out = t.TempDir()
		if _, err := Sign(t.Context(), opts, dir); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(opts.Out, "win/app.exe")); err != nil || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 || st.Mode().Perm() != 0o755 {
			t.Errorf("another owner's setuid program copied by root: %v, %v", st.Mode(), err)
		}
		// In place, root keeps the owner, and so the bits.
		if _, err := Sign(t.Context(), s.opts(), dir); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(app)
		if err != nil || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != fs.ModeSetuid|fs.ModeSetgid || ownerOf(st) != 1000 {
			t.Errorf("in place as root: %v, %+v, %v", st.Mode(), st.Sys(), err)
		}
	}

	dir := buildTree(t)
	link := filepath.Join(dir, "linux/tool-link")
	if err := os.Symlink("tool", link); err != nil {
		t.Fatal(err)
	}
	opts := s.opts()
	opts.FollowSymlinks = true
	rep, err := Sign(t.Context(), opts, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link is no longer a link: %v", err)
	}
	if len(rep.Signed) != 5 {
		t.Errorf("signed %v, want the link's target once", rep.SignedPaths())
	}
	if in := InspectFile(t.Context(), filepath.Join(dir, "linux/tool"), nil, InspectOptions{}); in.Err != nil || len(in.Signatures) != 1 {
		t.Errorf("the target: %v, %d signatures", in.Err, len(in.Signatures))
	}
}

// TestSignParsesTheChainOncePerRun: the check each new Authenticode
// signature gets before it is written parses the signer's chain once per
// run, not once per file (each file's handler makes its own Signer, with
// the run's cache); every file is signed all the same.
func TestSignParsesTheChainOncePerRun(t *testing.T) {
	s := newSigner(t)
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("win/app%d.exe", i)] = testbin.PE(testbin.PEOptions{Data: []byte{byte(i)}})
	}
	dir := tree(t, files)
	opts := s.opts()
	opts.Out = filepath.Join(t.TempDir(), "signed")
	opts.PE.Cache = authenticode.NewCertCache()
	rep, err := Sign(t.Context(), opts, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Signed) != len(files) {
		t.Fatalf("signed %v", rep.SignedPaths())
	}
	if got, want := opts.PE.Cache.Stats().CertsParsed, int64(len(s.chain)); got != want {
		t.Errorf("%d files signed: %d certificates parsed, want %d (the chain, once)", len(files), got, want)
	}
}
