// Package safefile opens the files csv reads by a name a user, a policy or
// a configuration gives (policies, certificate files, keys, PIN files,
// manifests, reports, event logs, quotes), and the files of the tree it
// judges, in one way: without ever waiting in open(2), and only if they
// are regular files.
//
// # Security
//
// A name can lead to something other than a file: a FIFO, whose open(2)
// waits for a writer that may never come (and neither Ctrl-C nor SIGTERM
// ends a wait in a system call that Go cannot interrupt), a device, a
// socket or a directory. Checking the type with stat(2) first and then
// opening leaves a window in which the file can be swapped for a FIFO.
// So [Open] opens with O_NONBLOCK (on Unix), which makes open(2) of a FIFO
// return at once, checks the type of what it opened with fstat(2), refuses
// anything that is not a regular file with [ErrNotRegular], and only then
// clears O_NONBLOCK for reading. On systems without O_NONBLOCK (Windows) the
// type of the opened file is checked the same way. [ReadFile] adds a size
// cap, checked before reading and again while reading, so that a file that
// grows while it is read is refused too ([ErrTooLarge]).
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// Errors. Test for them with errors.Is.
var (
	// ErrNotRegular: the name leads to a FIFO, a device, a socket or a
	// directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is over the caller's size cap.
	ErrTooLarge = errors.New("file too large")
)

// Options change how Open opens a file. The zero value follows symbolic
// links.
type Options struct {
	// NoFollow refuses a symbolic link in the last element of the path
	// (O_NOFOLLOW, on Unix) instead of opening what it leads to.
	NoFollow bool
}

// Open opens the regular file at path for reading, without waiting (see the
// package documentation), and returns it with its fstat(2) information.
// Errors are *fs.PathError, as os.Open's; one for a file that is not
// regular wraps ErrNotRegular.
func Open(path string, o Options) (*os.File, fs.FileInfo, error) {
	f, err := open(path, o.NoFollow)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Kind(st.Mode()))}
	}
	// On Linux O_NONBLOCK has no effect on a regular file (open(2)): the
	// flag may stay, and two fcntl(2) calls a file are saved, which on a
	// tree of small files is a tenth of csv's system calls. Elsewhere it
	// is cleared. (Were a read ever to return EAGAIN, it would be an
	// error: the file blocked, never passed.)
	if runtime.GOOS != "linux" {
		if err := SetBlocking(f); err != nil {
			f.Close()
			return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
	return f, st, nil
}

// ReadFile reads the regular file at path, opened as Open does, refusing a
// file of more than max bytes. Errors do not repeat the path.
func ReadFile(path string, max int64) ([]byte, error) {
	f, st, err := Open(path, Options{})
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	if st.Size() > max {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrTooLarge, st.Size(), max)
	}
	// Read into a buffer of the file's size (checked against max above)
	// and one byte more, which shows a file that grew (the rest is then
	// read as it comes): io.ReadAll alone grows its buffer from 512
	// bytes, copying a 20 MB policy some 16 times over.
	b := make([]byte, st.Size()+1)
	n, err := io.ReadFull(f, b)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		b = b[:n]
	case err != nil:
		return nil, unwrapPath(err)
	default:
		rest, err := io.ReadAll(io.LimitReader(f, max+1-int64(n)))
		if err != nil {
			return nil, unwrapPath(err)
		}
		b = append(b, rest...)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrTooLarge, max)
	}
	return b, nil
}

// Kind names a file type for messages: "named pipe", "directory", ...
func Kind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "regular file"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "device"
	default:
		return t.String()
	}
}

// unwrapPath drops the *fs.PathError around an error (its path is the
// caller's to give).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
