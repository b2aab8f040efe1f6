//go:build unix

package cli

import (
	"os"
	"syscall"
)

// runCompanion replaces this process with path, given args and this
// process's environment: it returns only if the exec failed.
func runCompanion(path string, args []string) (int, error) {
	err := syscall.Exec(path, append([]string{path}, args...), os.Environ())
	return 0, err
}
