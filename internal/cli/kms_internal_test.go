package cli

import (
	"bytes"
	"strings"
	"testing"
)

// kmsKeyArg finds a KMS reference given to --key or --ear-key, in either
// form, before "--", and nothing else.
func TestKMSKeyArg(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"sign", "--key", "awskms:///alias/build", "--cert", "c.pem", "out"}, "awskms:///alias/build"},
		{[]string{"sign", "--key=gcpkms://projects/p/k", "out"}, "gcpkms://projects/p/k"},
		{[]string{"validate", "--sign", "--key", "azurekms://v.vault.azure.net/k", "out"}, "azurekms://v.vault.azure.net/k"},
		{[]string{"attest", "verify", "--format", "ear", "--ear-key", "hashivault://ear"}, "hashivault://ear"},
		{[]string{"attest", "verify", "--ear-key=openbao://ear"}, "openbao://ear"},
		{[]string{"sign", "--key", "build.key", "awskms://not-a-flag-value"}, ""},
		{[]string{"sign", "--key", "pkcs11:token=t;object=k"}, ""},
		{[]string{"sign", "--cert", "awskms://x", "--key", "k.pem"}, ""},
		{[]string{"sign", "--key", "k.pem", "--", "--key", "awskms://x"}, ""},
		{[]string{"sign", "--key"}, ""},
		{[]string{"sign", "--keyx", "awskms://x"}, ""},
	} {
		got, ok := kmsKeyArg(tt.args)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("kmsKeyArg(%q) = %q, %v; want %q", tt.args, got, ok, tt.want)
		}
	}
}

// A command without a KMS key is never handed off; one with a KMS key
// is, here (the test binary links no provider), and fails with a message
// naming csv-kms when there is none beside the executable.
func TestHandOffKMSWithoutCompanion(t *testing.T) {
	var errOut bytes.Buffer
	if _, handed := handOffKMS([]string{"sign", "--key", "build.key", "out"}, &errOut); handed {
		t.Fatal("a file key was handed to csv-kms")
	}
	code, handed := handOffKMS([]string{"sign", "--key", "awskms:///alias/build", "out"}, &errOut)
	if !handed || code != 2 {
		t.Fatalf("a KMS key with no csv-kms beside the test binary: handed %v, exit %d", handed, code)
	}
	if msg := errOut.String(); !strings.Contains(msg, "csv-kms") || !strings.Contains(msg, "not installed") || !strings.Contains(msg, "awskms:///alias/build") {
		t.Errorf("message: %q", msg)
	}
}
