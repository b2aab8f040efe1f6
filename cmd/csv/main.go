// Command csv validates, signs and attests code against code integrity
// policies. See the README, or run "csv --help".
package main

import (
	"os"

	"github.com/codesignval/csv/internal/cli"
)

func main() {
	os.Exit(cli.Main())
}
