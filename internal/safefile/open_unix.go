//go:build unix

package safefile

import (
	"os"
	"syscall"
)

// open opens path with O_NONBLOCK, so that opening a FIFO does not wait
// for a writer.
func open(path string, noFollow bool) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if noFollow {
		flags |= syscall.O_NOFOLLOW
	}
	return os.OpenFile(path, flags, 0)
}

// SetBlocking clears O_NONBLOCK on a regular file opened with it (by Open,
// or by a caller that opened it so, as csv sign does through an os.Root),
// through SyscallConn: f.Fd would take the file out of Go's poller for
// good.
func SetBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
