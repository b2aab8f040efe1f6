//go:build linux

package csv

import (
	"os"

	"golang.org/x/sys/unix"
)

// batchSync: Sign makes its temporary files durable with one syncfs per
// file system before renaming them (Linux), instead of one fsync per file.
const batchSync = true

// startWriteback asks the kernel to start writing f's dirty pages out now,
// without waiting: the disk works while the next files are signed, and the
// syncfs before the renames has less left to wait for. It is a hint: its
// error is ignored (durability comes from the syncfs).
func startWriteback(f *os.File) {
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// syncFS flushes the file system holding dir to stable storage.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
