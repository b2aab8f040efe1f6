//go:build unix

package csv

import (
	"errors"
	"os"
	"syscall"
)

// fileSysID is a file's device and inode.
func fileSysID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // int32 on some systems
	}
	return 0, 0
}

// lockFile takes an exclusive lock on f without waiting (flock: released
// when the process ends, however it ends), or returns errLocked.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
