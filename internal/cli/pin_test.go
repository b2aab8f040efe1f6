package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
)

// TestKeyRefPINRedacted: a pkcs11: URI's pin-value is a secret that CI
// logs keep; the errors of csv sign and validate --sign show the key
// reference with the PIN redacted, whatever went wrong.
func TestKeyRefPINRedacted(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "build")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "app.exe"), testbin.PE(testbin.PEOptions{}), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testca.New(t)
	files := ca.WriteFiles(t, dir, ca.Leaf(t, testca.LeafOptions{}))
	policy := filepath.Join(dir, "policy.yaml")
	var out, errOut bytes.Buffer
	if code := cli.Run(context.Background(), &cmdutil.IOStreams{Out: &out, ErrOut: &errOut},
		[]string{"policy", "new", "--level", "hash", "--name", "p", "--output", policy, tree}); code != 0 {
		t.Fatalf("policy new: exit %d: %s", code, errOut.String())
	}
	const pin = "S3cret-PIN-0042"
	for _, ref := range []string{
		// A module that is not there (or, without cgo, no PKCS#11 at all).
		"pkcs11:token=csv;object=key?module-path=" + filepath.Join(dir, "absent.so") + "&pin-value=" + pin,
		// pin-value in the path, where RFC 7512 has no such attribute.
		"pkcs11:token=csv;pin-value=" + pin + ";object=key?module-path=/m.so",
		// A mistyped attribute.
		"pkcs11:token=csv;object=key?module-path=/m.so&pin-value" + pin,
		// The query's attributes separated as the path's, and the other
		// way round: the PIN is then part of another attribute's value.
		"pkcs11:token=csv;object=key?module-path=" + filepath.Join(dir, "absent.so") + ";pin-value=" + pin,
		"pkcs11:token=csv&pin-value=" + pin + ";object=key?module-path=" + filepath.Join(dir, "absent.so"),
		// The scheme in capitals (URI schemes are case-insensitive), or
		// after a space (a variable's value): read as a key file's name.
		"PKCS11:token=csv;object=key?module-path=/m.so&pin-value=" + pin,
		" pkcs11:token=csv;object=key?module-path=/m.so&pin-value=" + pin,
	} {
		for _, args := range [][]string{
			{"sign", "--key", ref, "--cert", files.Chain, tree},
			{"validate", "--policy", policy, "--sign", "--key", ref, "--cert", files.Chain, tree},
		} {
			var out, errOut bytes.Buffer
			code := cli.Run(context.Background(), &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, args)
			if code != cmdutil.ExitError {
				t.Errorf("csv %s: exit %d, want 2", args[0], code)
			}
			if s := out.String() + errOut.String(); strings.Contains(s, pin) || strings.Contains(s, "PIN-00") {
				t.Errorf("csv %s with %q shows the PIN:\n%s", args[0], ref, s)
			}
		}
	}
}
