//go:build unix

package csv

import (
	"io/fs"
	"os"
	"syscall"

	"github.com/codesignval/csv/internal/safefile"
)

// openRegular opens path for reading without blocking (a FIFO swapped in
// after discovery must not hang the run) and, unless follow is set, without
// following a symbolic link in its last element (a regular file swapped for a
// link after discovery must not lead outside the tree), through
// internal/safefile: anything but a regular file is refused.
func openRegular(path string, follow bool) (*os.File, fs.FileInfo, error) {
	return safefile.Open(path, safefile.Options{NoFollow: !follow})
}

// openNonblock is in the flags of signTree.openRegular: opening a FIFO
// swapped in after discovery returns at once, and is refused as what it is.
const openNonblock = syscall.O_NONBLOCK

// openDirFlag is in the flags of signTree.openDir: a FIFO (or anything but
// a directory) swapped in for a directory is refused at once, not waited on.
const openDirFlag = syscall.O_DIRECTORY

// openRoot opens the directory at path as an os.Root. The trailing slash
// makes open(2) refuse anything but a directory at once: os.OpenRoot opens
// without O_DIRECTORY, and would wait on a FIFO named as --out.
func openRoot(path string) (*os.Root, error) {
	return os.OpenRoot(path + "/")
}

// openRootIn opens the directory name inside r as an os.Root; see
// openRoot.
func openRootIn(r *os.Root, name string) (*os.Root, error) {
	return r.OpenRoot(name + "/")
}

// keepMetadata gives a signed copy the original's permissions and sticky
// bit (the umask is not applied) and, in place when running as root, its
// owner and group. The setuid and setgid bits are kept only where the copy
// has the original's owner (group): a setuid program copied into --out by
// root must not become setuid root. Call it once the copy is written.
func keepMetadata(f *os.File, st os.FileInfo, inPlace bool) error {
	mode := st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	orig, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return f.Chmod(mode &^ (os.ModeSetuid | os.ModeSetgid))
	}
	if inPlace && os.Geteuid() == 0 {
		if err := f.Chown(int(orig.Uid), int(orig.Gid)); err != nil { // clears setuid: chmod comes after
			return err
		}
	}
	cst, err := f.Stat()
	if err != nil {
		return err
	}
	copied, ok := cst.Sys().(*syscall.Stat_t)
	if !ok || copied.Uid != orig.Uid {
		mode &^= os.ModeSetuid
	}
	if !ok || copied.Gid != orig.Gid {
		mode &^= os.ModeSetgid
	}
	return f.Chmod(mode)
}
