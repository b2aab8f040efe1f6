package csv

import (
	"os"

	"github.com/codesignval/csv/internal/safefile"
)

// sidecars returns the opener of a loose file's sidecars
// (format.File.Sidecar): path+suffix, a regular file, opened as the file
// itself is (safefile: no waiting on a FIFO), symbolic links followed.
func sidecars(path string) func(suffix string) (*os.File, error) {
	return func(suffix string) (*os.File, error) {
		f, _, err := safefile.Open(path+suffix, safefile.Options{})
		return f, err
	}
}
