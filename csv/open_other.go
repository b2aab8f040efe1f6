//go:build !unix

package csv

import "os"

// openRegular opens path for reading. On systems without O_NONBLOCK and
// O_NOFOLLOW the caller's check that the opened file is regular is the guard.
func openRegular(path string, _ bool) (*os.File, error) {
	return os.Open(path)
}

// keepMetadata gives a signed copy the original's permissions (on Windows,
// the read-only attribute). Call it once the copy is written.
func keepMetadata(f *os.File, st os.FileInfo, _ bool) error {
	return f.Chmod(st.Mode() & os.ModePerm)
}
