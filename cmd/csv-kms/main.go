// Command csv-kms is csv with the cloud KMS providers linked in: the same
// commands and flags, and keys from awskms://, gcpkms://, azurekms://,
// hashivault:// and openbao:// references. csv runs it (from the directory
// csv itself is in) for a command whose --key or --ear-key is such a
// reference, so it is installed beside csv and rarely run by name. See
// docs/signing.md.
package main

import (
	"os"

	"github.com/codesignval/csv/internal/cli"
	_ "github.com/codesignval/csv/signing/keys/kmsproviders"
)

func main() {
	os.Exit(cli.Main())
}
