//go:build unix

package csv

import (
	"errors"
	"fmt"
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

// journalOwner refuses a journal that another user owns: this user's csv
// sign wrote it, or it proves nothing.
func journalOwner(fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("its owner cannot be read: not known to be this user's")
	}
	if uid := os.Geteuid(); int64(st.Uid) != int64(uid) {
		return fmt.Errorf("owned by user %d, not by this user (%d): not written by this user's csv sign", st.Uid, uid)
	}
	return nil
}
