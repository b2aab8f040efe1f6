//go:build unix

package cli_test

import (
	"crypto/ecdsa"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/kmstest"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// TestKMSHandOff builds csv and csv-kms side by side: csv signs with a
// key in a (fake, loopback) AWS KMS by handing the command to csv-kms,
// also when run through a symbolic link from elsewhere, and without
// csv-kms beside it stops before doing anything, naming what is missing;
// a file key never needs csv-kms. csv itself links no KMS provider.
func TestKMSHandOff(t *testing.T) {
	if testing.Short() {
		t.Skip("builds csv and csv-kms")
	}
	bin := t.TempDir()
	for _, b := range []string{"csv", "csv-kms"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b), "./cmd/"+b)
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", b, err, out)
		}
	}
	testenv.CheckLinks(t, "", "cmd/csv", []string{
		"github.com/codesignval/csv/signing/keys/kmsproviders/...",
		"github.com/sigstore/sigstore/pkg/signature/kms/aws/...", "github.com/sigstore/sigstore/pkg/signature/kms/gcp/...",
		"github.com/sigstore/sigstore/pkg/signature/kms/azure/...", "github.com/sigstore/sigstore/pkg/signature/kms/hashivault/...",
		"github.com/aws/...", "cloud.google.com/...", "github.com/Azure/...", "github.com/hashicorp/vault/...",
	})

	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256, CommonName: "KMS Build"})
	files := ca.WriteFiles(t, t.TempDir(), leaf)
	chainPEM, err := os.ReadFile(files.Chain)
	if err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(chain, append(chainPEM, testca.PEM(ca.Root.Cert)...), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, ref := kmstest.FakeAWSKMS(t, leaf.Key.(*ecdsa.PrivateKey))
	kmstest.AWSEnv(t, srv) // the children inherit it
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "app.exe"), testbin.PE(testbin.PEOptions{}), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(csv string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(csv, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), stderr.String()
		} else if err != nil {
			t.Fatalf("%s: %v", csv, err)
		}
		return 0, stderr.String()
	}
	signer := func(file string) (subject string, verified bool) {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "csv"), "inspect", "--format", "json", file).Output()
		if err != nil {
			t.Fatalf("csv inspect %s: %v", file, err)
		}
		var rep []struct {
			Signatures []struct {
				Verified bool
				Signer   struct{ Subject string }
			}
		}
		if err := json.Unmarshal(out, &rep); err != nil || len(rep) != 1 || len(rep[0].Signatures) != 1 {
			t.Fatalf("csv inspect %s: %v\n%s", file, err, out)
		}
		s := rep[0].Signatures[0]
		return s.Signer.Subject, s.Verified
	}

	// csv, with csv-kms beside it, through a symbolic link in another
	// directory (the --key=REF form).
	link := filepath.Join(t.TempDir(), "csv")
	if err := os.Symlink(filepath.Join(bin, "csv"), link); err != nil {
		t.Fatal(err)
	}
	for i, csv := range []string{filepath.Join(bin, "csv"), link} {
		out := filepath.Join(t.TempDir(), "out")
		key := []string{"--key", ref}
		if i == 1 {
			key = []string{"--key=" + ref}
		}
		if code, stderr := run(csv, append(append([]string{"sign"}, key...), "--cert", chain, "--out", out, "--quiet", in)...); code != 0 {
			t.Fatalf("%s sign with %s: exit %d\n%s", csv, ref, code, stderr)
		}
		if subject, ok := signer(filepath.Join(out, "app.exe")); !ok || !strings.Contains(subject, "KMS Build") {
			t.Errorf("%s sign with the KMS key: signer %q, verified %v", csv, subject, ok)
		}
	}

	// csv version says which build links the providers.
	for b, want := range map[string]bool{"csv": false, "csv-kms": true} {
		out, err := exec.Command(filepath.Join(bin, b), "version", "--format", "json").Output()
		var v struct{ KMS bool }
		if err != nil || json.Unmarshal(out, &v) != nil || v.KMS != want {
			t.Errorf("%s version: %v, kms %v, want %v\n%s", b, err, v.KMS, want, out)
		}
	}

	// csv-kms refuses a command handed off by another build's csv.
	c := exec.Command(filepath.Join(bin, "csv-kms"), "version")
	c.Env = append(os.Environ(), "CSV_KMS_HANDED_OFF=v0.0.1 commit 0000 modified false")
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "not from the same build") {
		t.Errorf("csv-kms run by another build: %v\n%s", err, out)
	}
	// A csv-kms others could have changed is not run: writable by its
	// group, or in a directory others can write to.
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Chmod(filepath.Join(bin, "csv-kms"), 0o775); err != nil {
		t.Fatal(err)
	}
	if code, stderr := run(filepath.Join(bin, "csv"), "sign", "--key", ref, "--cert", chain, "--out", out, in); code != 2 || !strings.Contains(stderr, "writable by others") {
		t.Errorf("group-writable csv-kms: exit %d\n%s", code, stderr)
	}
	if err := os.Chmod(filepath.Join(bin, "csv-kms"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bin, 0o777); err != nil {
		t.Fatal(err)
	}
	if code, stderr := run(filepath.Join(bin, "csv"), "sign", "--key", ref, "--cert", chain, "--out", out, in); code != 2 || !strings.Contains(stderr, "its directory") {
		t.Errorf("csv-kms in a world-writable directory: exit %d\n%s", code, stderr)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}

	// Without csv-kms: exit 2 before anything is signed, naming it.
	if err := os.Remove(filepath.Join(bin, "csv-kms")); err != nil {
		t.Fatal(err)
	}
	code, stderr := run(filepath.Join(bin, "csv"), "sign", "--key", ref, "--cert", chain, "--out", out, in)
	if code != 2 || !strings.Contains(stderr, filepath.Join(bin, "csv-kms")+" is not installed") {
		t.Errorf("without csv-kms: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("without csv-kms, %s was made (%v)", out, err)
	}
	// A file key needs no csv-kms.
	if code, stderr := run(filepath.Join(bin, "csv"), "sign", "--key", files.Key, "--cert", chain, "--out", out, "--quiet", in); code != 0 {
		t.Fatalf("sign with a file key, no csv-kms: exit %d\n%s", code, stderr)
	}
}

// TestKMSNoPathPlugin: in a binary without the providers (this test's),
// a KMS key is refused naming csv-kms, and sigstore's plugin fallback
// never runs a sigstore-kms-SCHEME program found on $PATH.
func TestKMSNoPathPlugin(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	plugin := "#!/bin/sh\ntouch '" + marker + "'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "sigstore-kms-awskms"), []byte(plugin), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	ca := testca.New(t)
	files := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, testca.LeafOptions{}))
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "app.exe"), testbin.PE(testbin.PEOptions{}), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr := csvRun(t, "sign", "--key", "awskms:///alias/build", "--cert", files.Chain, "--out", filepath.Join(t.TempDir(), "out"), in)
	if code != 2 || !strings.Contains(stderr, "csv-kms") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("csv ran sigstore-kms-awskms from $PATH")
	}
}

// TestKMSHandOffNoLoop: a csv-kms that is a copy of csv (no providers)
// is run once, and says so, rather than run itself forever.
func TestKMSHandOffNoLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds csv")
	}
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "csv"), "./cmd/csv")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/csv: %v\n%s", err, out)
	}
	if err := os.Link(filepath.Join(bin, "csv"), filepath.Join(bin, "csv-kms")); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c := exec.Command(filepath.Join(bin, "csv"), "sign", "--key", "awskms:///alias/build", "--cert", "c.pem", t.TempDir())
	c.Stderr = &stderr
	err := c.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "links no KMS provider") {
		t.Errorf("csv-kms without providers: %v\n%s", err, stderr.String())
	}
}
