//go:build !unix

package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
)

// runCompanion runs path with args, this process's streams and
// environment, and returns its exit status. An interrupt reaches the child
// (it shares the console); csv waits for it rather than end first.
func runCompanion(path string, args []string) (int, error) {
	signal.Ignore(os.Interrupt)
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if c := ee.ExitCode(); c >= 0 {
			return c, nil
		}
		return 1, nil // ended by a signal
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// trustCompanion checks only that csv-kms is a regular file here: Windows
// grants writing by ACL, which the installer's directory sets.
func trustCompanion(path string, fi fs.FileInfo, _ string) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}
