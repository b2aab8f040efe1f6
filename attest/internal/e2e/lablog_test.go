//go:build linux

package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/internal/swtpmtest"
	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
)

// TestLabLogCLI: csv attest lab-log on swtpm makes the Secure Boot
// certificates once and reuses them after a TPM restart (the policy that
// names them stays true), takes given ones instead, refuses a second boot
// without a restart (exit 2, no log written), and the log it writes holds
// the boot it says.
func TestLabLogCLI(t *testing.T) {
	tp := swtpmtest.NewLab(t).New(t, "lablog")
	dir := t.TempDir()
	app := filepath.Join(dir, "bootx64.efi")
	if err := os.WriteFile(app, testbin.PE(testbin.PEOptions{Data: []byte("lab app")}), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Run(context.Background(), &cmdutil.IOStreams{Out: &stdout, ErrOut: &stderr}, append([]string{"attest", "lab-log", "--tpm", tp.Socket}, args...))
		return code, stdout.String(), stderr.String()
	}
	out := filepath.Join(dir, "boot.log")
	code, stdout, stderr := run("--app", app, "--out", out)
	if code != 0 || !strings.Contains(stdout, "made "+filepath.Join(dir, "pk.pem")) || !strings.Contains(stdout, "boot application "+app+": pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/1, authenticode sha256 ") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	pk, err := os.ReadFile(filepath.Join(dir, "pk.pem"))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(out)

	// A boot application that is not a PE image: refused before the TPM
	// is touched.
	script := filepath.Join(dir, "grub.cfg")
	os.WriteFile(script, []byte("set timeout=5\n"), 0o644)
	tp.Restart(t)
	code, _, stderr = run("--app", script, "--out", filepath.Join(dir, "bad.log"))
	if code != 2 || !strings.Contains(stderr, "attest lab-log: --app "+script+": not a PE image a boot could load") {
		t.Fatalf("a config file as --app: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.log")); err == nil {
		t.Fatal("a refused boot wrote a log")
	}
	if code, _, stderr = run("--app", app, "--out", out); code != 0 {
		t.Fatalf("after a refused --app, the TPM was not at its reset values: exit %d %q", code, stderr)
	}

	// Again without a restart: refused, the log untouched.
	code, _, stderr = run("--app", app, "--out", filepath.Join(dir, "again.log"))
	if code != 2 || !strings.Contains(stderr, "the TPM's PCRs were extended since it was reset") || !strings.Contains(stderr, "restart swtpm") {
		t.Fatalf("second boot: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "again.log")); err == nil {
		t.Fatal("a refused boot wrote a log")
	}

	// After a restart: the same certificates, so the same log.
	tp.Restart(t)
	code, stdout, stderr = run("--app", app, "--out", out)
	if pk2, _ := os.ReadFile(filepath.Join(dir, "pk.pem")); code != 0 || strings.Contains(stdout, "made ") || !bytes.Equal(pk, pk2) {
		t.Fatalf("after a restart: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if second, _ := os.ReadFile(out); !bytes.Equal(first, second) {
		t.Error("the same boot on the same certificates wrote another log")
	}

	// Given certificates are the ones measured.
	tp.Restart(t)
	given := testca.New(t).Root.Cert
	if err := os.WriteFile(filepath.Join(dir, "given.pem"), testca.PEM(given), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run("--pk", filepath.Join(dir, "given.pem"), "--app", app, "--out", out)
	if code != 0 {
		t.Fatalf("--pk: exit %d %q", code, stderr)
	}
	raw, _ := os.ReadFile(out)
	in, err := attest.Inspect(raw)
	if err != nil {
		t.Fatal(err)
	}
	if in.Boot.PK == nil || len(in.Boot.PK.CertDER) != 1 || !bytes.Equal(in.Boot.PK.CertDER[0], given.Raw) || len(in.Boot.Components) != 1 {
		t.Fatalf("PK %+v, components %+v, notes %q, sb %+v", in.Boot.PK, in.Boot.Components, in.Boot.Notes, in.Boot.SecureBoot)
	}
}
