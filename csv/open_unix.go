//go:build unix

package csv

import (
	"os"
	"syscall"
)

// openRegular opens path for reading without blocking (a FIFO swapped in
// after discovery must not hang the run) and, unless follow is set, without
// following a symbolic link in its last element (a regular file swapped for a
// link after discovery must not lead outside the tree). The caller checks
// that what it opened is a regular file.
func openRegular(path string, follow bool) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if !follow {
		flags |= syscall.O_NOFOLLOW
	}
	return os.OpenFile(path, flags, 0)
}

// keepMetadata gives a signed copy the original's permissions, setuid,
// setgid and sticky bits included (the umask is not applied), and, in
// place when running as root, its owner and group (set first: chown clears
// the setuid bit).
func keepMetadata(f *os.File, st os.FileInfo, inPlace bool) error {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && inPlace && os.Geteuid() == 0 {
		if err := f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	return f.Chmod(st.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky))
}
