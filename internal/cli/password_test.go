package cli_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
)

// TestPasswordPrompt: an encrypted key with no password given is asked for
// on the terminal (IOStreams.ReadPassword), once; without a terminal csv
// does not wait but says how to give the password; the environment
// variable, when set, is used without asking.
func TestPasswordPrompt(t *testing.T) {
	t.Setenv("CSV_KEY_PASSWORD", "")
	os.Unsetenv("CSV_KEY_PASSWORD")
	dir := t.TempDir()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	pfx, err := pkcs12.Modern2023.Encode(leaf.Key, leaf.Cert, []*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert}, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "build.pfx")
	os.WriteFile(key, pfx, 0o600)
	build := filepath.Join(dir, "build")
	os.MkdirAll(build, 0o755)
	os.WriteFile(filepath.Join(build, "app.exe"), testbin.PE(testbin.PEOptions{}), 0o755)

	run := func(readPassword func(string) ([]byte, error), args ...string) (int, string) {
		var errOut bytes.Buffer
		ios := &cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut, ReadPassword: readPassword}
		return cli.Run(context.Background(), ios, args), errOut.String()
	}
	var prompts []string
	ask := func(answer string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			prompts = append(prompts, p)
			return []byte(answer), nil
		}
	}

	code, stderr := run(ask("s3cret"), "sign", "--key", key, "--out", filepath.Join(dir, "out1"), build)
	if code != 0 {
		t.Fatalf("with the prompt answered: exit %d\n%s", code, stderr)
	}
	if len(prompts) != 1 || prompts[0] != "csv: password for "+key+": " {
		t.Errorf("prompts = %q, want one for %s", prompts, key)
	}

	prompts = nil
	code, stderr = run(ask("wrong"), "sign", "--key", key, "--out", filepath.Join(dir, "out2"), build)
	if code != 2 || !strings.Contains(stderr, "wrong password") || len(prompts) != 1 {
		t.Errorf("a wrong answer: exit %d, %d prompts\n%s", code, len(prompts), stderr)
	}

	code, stderr = run(nil, "sign", "--key", key, "--out", filepath.Join(dir, "out3"), build)
	if code != 2 || !strings.Contains(stderr, "--password-stdin") || !strings.Contains(stderr, "run csv on a terminal") {
		t.Errorf("no terminal: exit %d\n%s", code, stderr)
	}

	prompts = nil
	t.Setenv("CSV_KEY_PASSWORD", "s3cret")
	code, stderr = run(ask("wrong"), "sign", "--key", key, "--out", filepath.Join(dir, "out4"), build)
	if code != 0 || len(prompts) != 0 {
		t.Errorf("with CSV_KEY_PASSWORD: exit %d, %d prompts\n%s", code, len(prompts), stderr)
	}
}

// appendRoot adds the root to a testca chain file: csv sign refuses a
// chain that does not reach a root.
func appendRoot(t *testing.T, f testca.Files, ca *testca.CA) {
	t.Helper()
	chain, err := os.ReadFile(f.Chain)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Chain, append(chain, testca.PEM(ca.Root.Cert)...), 0o600); err != nil {
		t.Fatal(err)
	}
}
