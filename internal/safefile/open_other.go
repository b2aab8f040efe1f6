//go:build !unix

package safefile

import "os"

// open opens path. Without O_NONBLOCK and O_NOFOLLOW the check that the
// opened file is regular is the guard.
func open(path string, _ bool) (*os.File, error) {
	return os.Open(path)
}

// SetBlocking does nothing where files are not opened with O_NONBLOCK.
func SetBlocking(*os.File) error { return nil }
