// Package binfmt recognises the executable formats csv judges and holds what
// their parsers share. The parsers themselves live in the sub-packages pe and
// elf.
//
// # Security
//
// Everything here reads untrusted bytes. Every offset and length read from a
// file is checked against the file size and against a cap from
// internal/limits before it is used; nothing allocates from a length field.
// Callers still recover from panics around a whole file (see
// csv.Inspect), so that a bug here becomes a finding, not a crash.
package binfmt

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/codesignval/csv/signing"
)

// Format is an executable format.
type Format string

const (
	// Other is any file that is neither PE nor ELF.
	Other Format = "other"
	// PE is a Portable Executable (Windows, UEFI).
	PE Format = "pe"
	// ELF is an Executable and Linkable Format file (Linux and most Unixes).
	ELF Format = "elf"
)

// MalformedError says what is wrong with a file that claims to be of a
// format and where (Offset is -1 when the problem has no single place): it
// is signing.MalformedError, the one malformed-input type of csv's
// parsers, with Format naming the format as messages do ("PE", "ELF").
type MalformedError = signing.MalformedError

func formatName(f Format) string {
	switch f {
	case PE:
		return "PE"
	case ELF:
		return "ELF"
	}
	return string(f)
}

// Errorf returns a *MalformedError.
func Errorf(f Format, off int64, format string, args ...any) error {
	return &MalformedError{Format: formatName(f), Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ErrTruncated is wrapped by errors about data that ends too early.
var ErrTruncated = errors.New("truncated")

// PrefixReader serves ReadAt from a prefix of the file already in memory and
// falls back to the underlying reader past it. The validator reads the first
// block of every file once and parses headers from it without a second read.
type PrefixReader struct {
	Prefix []byte
	R      io.ReaderAt
}

// ReadAt implements io.ReaderAt.
func (p PrefixReader) ReadAt(b []byte, off int64) (int, error) {
	if off >= 0 && off+int64(len(b)) <= int64(len(p.Prefix)) {
		return copy(b, p.Prefix[off:]), nil
	}
	if p.R == nil {
		if off >= int64(len(p.Prefix)) {
			return 0, io.EOF
		}
		n := copy(b, p.Prefix[off:])
		return n, io.EOF
	}
	return p.R.ReadAt(b, off)
}

// ReadFull reads exactly len(b) bytes at off, or returns a MalformedError that
// says what was being read (what) and that the file ends first.
func ReadFull(r io.ReaderAt, size int64, f Format, off int64, b []byte, what string) error {
	if off < 0 || off > size || int64(len(b)) > size-off {
		return &MalformedError{Format: formatName(f), Offset: off,
			Reason: fmt.Sprintf("%s (%d bytes) extends past the end of the file (size %d): %v", what, len(b), size, ErrTruncated), Err: ErrTruncated}
	}
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return &MalformedError{Format: formatName(f), Offset: off,
			Reason: fmt.Sprintf("%s (%d bytes): file ends after %d bytes: %v", what, len(b), n, ErrTruncated), Err: ErrTruncated}
	}
	return fmt.Errorf("reading %s at offset %#x: %w", what, off, err)
}

// Magic numbers.
var (
	magicMZ  = []byte("MZ")
	magicELF = []byte("\x7fELF")
)

// Sniff classifies a file from its first bytes, before any parsing: PE
// candidates start with "MZ", ELF with "\x7fELF". A PE candidate is only a PE
// if a PE signature is found where the DOS header points (see pe.IsPE); an
// "MZ" text file is not a PE.
func Sniff(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, magicELF):
		return ELF
	case bytes.HasPrefix(head, magicMZ):
		return PE
	}
	return Other
}
