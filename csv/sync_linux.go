//go:build linux

package csv

import (
	"fmt"
	"os"
	"sync"

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

// fsSyncer holds one open directory per file system Sign writes to,
// opened (through the run's tree) before the first temporary file there.
// syncfs reports a writeback error to each file descriptor opened before it
// happened (Linux 5.8 on), so one opened early sees an error even when
// another process's syncfs saw it first.
type fsSyncer struct {
	mu   sync.Mutex
	fds  map[uint64]*os.File
	dirs map[string]bool // the directories watched already
}

// watch notes the file system of the directory at dir, before anything is
// written there.
func (s *fsSyncer) watch(t *signTree, dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirs[dir] {
		return nil
	}
	f, err := t.openDir(dir)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if s.dirs == nil {
		s.dirs, s.fds = map[string]bool{}, map[uint64]*os.File{}
	}
	s.dirs[dir] = true
	dev := uint64(st.Dev) //nolint:unconvert // not uint64 everywhere
	if s.fds[dev] != nil {
		f.Close()
		return nil
	}
	s.fds[dev] = f
	return nil
}

// sync flushes every watched file system to stable storage: one syncfs
// each.
func (s *fsSyncer) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fds {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return fmt.Errorf("syncing the file system of %s: %w", f.Name(), err)
		}
	}
	return nil
}

// close closes the directories.
func (s *fsSyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fds {
		f.Close()
	}
	s.fds, s.dirs = nil, nil
}
