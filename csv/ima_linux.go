package csv

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing/ima"
)

// readIMAXattr returns f's security.ima attribute, nil when it has none or
// its file system keeps no extended attributes. A value over
// limits.MaxIMAValue is returned as it is cut, one byte over the cap, so
// that parsing it refuses it.
func readIMAXattr(f *os.File) ([]byte, error) {
	// A buffer of the pool's: most files have no attribute, and a fresh
	// 8 KiB for each was a tenth of csv's allocation on small files.
	bp := xattrBufs.Get().(*[]byte)
	defer xattrBufs.Put(bp)
	buf := *bp
	var n int
	var err error
	rc, cerr := f.SyscallConn()
	if cerr != nil {
		return nil, cerr
	}
	if cerr := rc.Control(func(fd uintptr) { n, err = unix.Fgetxattr(int(fd), ima.XattrName, buf) }); cerr != nil {
		return nil, cerr
	}
	switch {
	case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP):
		return nil, nil
	case errors.Is(err, unix.ERANGE):
		return slices.Clone(buf), nil // over the cap: Parse refuses it with signing.ErrLimit
	case err != nil:
		return nil, err
	}
	return slices.Clone(buf[:n]), nil
}

// xattrBufs are readIMAXattr's buffers, limits.MaxIMAValue+1 bytes.
var xattrBufs = sync.Pool{New: func() any { b := make([]byte, limits.MaxIMAValue+1); return &b }}

// setIMAXattr sets f's security.ima to v. An error wrapping errNoXattr
// says the file system or the user cannot.
func setIMAXattr(f *os.File, v []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fsetxattr(int(fd), ima.XattrName, v, 0) }); err != nil {
		return err
	}
	if errors.Is(serr, unix.ENOTSUP) || errors.Is(serr, unix.EOPNOTSUPP) || errors.Is(serr, unix.EPERM) || errors.Is(serr, unix.EACCES) {
		return fmt.Errorf("%w: %w", errNoXattr, serr)
	}
	return serr
}
