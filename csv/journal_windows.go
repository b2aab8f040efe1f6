package csv

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// fileSysID is zero: os.FileInfo carries no file index on Windows, and the
// journal then identifies files by size and modification time.
func fileSysID(os.FileInfo) (dev, ino uint64) { return 0, 0 }

// lockFile takes an exclusive lock on f without waiting (LockFileEx:
// released when the process ends), or returns errLocked.
func lockFile(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}

// journalOwner accepts every journal: Windows has no owner csv reads here
// (the tree's ACLs decide who can write a journal).
func journalOwner(os.FileInfo) error { return nil }
