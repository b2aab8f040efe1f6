//go:build !unix

package csv

import (
	"io/fs"
	"os"

	"github.com/codesignval/csv/internal/safefile"
)

// openRegular opens path for reading through internal/safefile: anything
// but a regular file is refused (without O_NOFOLLOW, a link is followed).
func openRegular(path string, follow bool) (*os.File, fs.FileInfo, error) {
	return safefile.Open(path, safefile.Options{NoFollow: !follow})
}

// openNonblock is zero: opening a FIFO does not wait here, and
// signTree.openRegular refuses anything but a regular file once open.
const openNonblock = 0

// openDirFlag is zero: opening a FIFO does not wait here.
const openDirFlag = 0

// openRoot opens the directory at path as an os.Root.
func openRoot(path string) (*os.Root, error) { return os.OpenRoot(path) }

// openRootIn opens the directory name inside r as an os.Root.
func openRootIn(r *os.Root, name string) (*os.Root, error) { return r.OpenRoot(name) }

// keepMetadata gives a signed copy the original's permissions (on Windows,
// the read-only attribute). Call it once the copy is written.
func keepMetadata(f *os.File, st os.FileInfo, _ bool) error {
	return f.Chmod(st.Mode() & os.ModePerm)
}
