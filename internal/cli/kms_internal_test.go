package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/cli/cmdutil"
)

// kmsKeyFlag reads --key or --ear-key as cobra parsed them: a KMS
// reference in either form, and nothing that is another flag's value or
// an argument (review 9, F3: a scan of the raw arguments misread both).
func TestKMSKeyFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sign", "--key", "awskms:///alias/build", "--cert", "c.pem", "out"}, "awskms:///alias/build"},
		{[]string{"sign", "--key=gcpkms://projects/p/k", "out"}, "gcpkms://projects/p/k"},
		{[]string{"validate", "--sign", "--key", "azurekms://v.vault.azure.net/k", "out"}, "azurekms://v.vault.azure.net/k"},
		{[]string{"attest", "verify", "--format", "ear", "--ear-key", "hashivault://ear"}, "hashivault://ear"},
		{[]string{"attest", "verify", "--ear-key=openbao://ear"}, "openbao://ear"},
		{[]string{"sign", "--out", "--", "--key", "awskms://k", "dir"}, "awskms://k"},
		{[]string{"sign", "--description", "--key", "awskms://k", "dir"}, ""},
		{[]string{"sign", "--key", "build.key", "awskms://not-a-flag-value"}, ""},
		{[]string{"sign", "--key", "pkcs11:token=t;object=k"}, ""},
		{[]string{"sign", "--cert", "awskms://x", "--key", "k.pem"}, ""},
		{[]string{"sign", "--key", "k.pem", "--", "--key", "awskms://x"}, ""},
	} {
		root := NewCmdRoot(&cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}})
		c, rest, err := root.Find(tt.args)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if err := c.ParseFlags(rest); err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		got, ok := kmsKeyFlag(c)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("kmsKeyFlag(%q) = %q, %v; want %q", tt.args, got, ok, tt.want)
		}
	}
}

// A command with a KMS key is handed off (here, where the test binary
// links no provider and has no csv-kms beside it: exit 2, naming it);
// one without is not.
func TestInstallHandOff(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		handed  bool
		message string
	}{
		{[]string{"sign", "--key", "build.key", "--cert", "c.pem", t.TempDir()}, false, ""},
		{[]string{"sign", "--key", "awskms:///alias/build", "--cert", "c.pem", t.TempDir()}, true, "not installed"},
	} {
		var errOut bytes.Buffer
		root := NewCmdRoot(&cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &errOut}})
		root.SetArgs(tt.args)
		code := -1
		installHandOff(root, tt.args, &errOut, func(c int) { code = c })
		_ = root.Execute()
		if handed := code != -1; handed != tt.handed {
			t.Errorf("%q: handed off %v (exit %d), want %v", tt.args, handed, code, tt.handed)
		}
		if tt.handed && (code != 2 || !strings.Contains(errOut.String(), "csv-kms") || !strings.Contains(errOut.String(), tt.message)) {
			t.Errorf("%q: exit %d, stderr %q", tt.args, code, errOut.String())
		}
	}
}
