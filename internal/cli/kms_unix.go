//go:build unix

package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// runCompanion replaces this process with path, given args and this
// process's environment: it returns only if the exec failed.
func runCompanion(path string, args []string) (int, error) {
	err := syscall.Exec(path, append([]string{path}, args...), os.Environ())
	return 0, err
}

// trustCompanion refuses a csv-kms that someone other than its owner could
// have changed, or whose owner is not root, this user or csv's owner: it
// receives the command's credentials (the cloud's, a password on standard
// input). Its directory must not let others replace it either (writable
// by group or others without the sticky bit).
func trustCompanion(path string, fi fs.FileInfo, self string) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by others than its owner (mode %v)", path, fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", path)
	}
	owners := map[uint32]bool{0: true, uint32(os.Geteuid()): true}
	if sfi, err := os.Stat(self); err == nil {
		if sst, ok := sfi.Sys().(*syscall.Stat_t); ok {
			owners[sst.Uid] = true
		}
	}
	if !owners[st.Uid] {
		return fmt.Errorf("%s is owned by uid %d, not by root, this user or csv's owner", path, st.Uid)
	}
	dir := filepath.Dir(path)
	dfi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if dfi.Mode().Perm()&0o022 != 0 && dfi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("its directory %s is writable by others than its owner (mode %v)", dir, dfi.Mode().Perm())
	}
	return nil
}
