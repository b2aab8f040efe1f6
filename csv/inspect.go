package csv

import (
	"context"
	"crypto/sha1" //nolint:gosec // Authenticode SHA1 is what old WDAC hash rules list.
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/binfmt/elf"
	"github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing/authenticode"
)

// Format is a file's executable format: "pe", "elf" or "other".
type Format string

// Formats.
const (
	FormatPE    Format = "pe"
	FormatELF   Format = "elf"
	FormatOther Format = "other"
)

// MalformedBinaryError says why a file that claims to be PE or ELF cannot be
// judged: what is wrong and where. Offset is -1 when there is no single place.
type MalformedBinaryError struct {
	Path   string
	Format Format
	Offset int64
	Reason string
}

func (e *MalformedBinaryError) Error() string {
	return e.Path + ": " + e.Message()
}

// Message is the error without the path, as reports print it next to the path.
func (e *MalformedBinaryError) Message() string {
	name := map[Format]string{FormatPE: "PE", FormatELF: "ELF"}[e.Format]
	if e.Offset < 0 {
		return fmt.Sprintf("malformed %s: %s", name, e.Reason)
	}
	return fmt.Sprintf("malformed %s at offset %#x: %s", name, e.Offset, e.Reason)
}

// UnreadableError says a file could not be read (permissions, I/O errors,
// a file that changed while it was read).
type UnreadableError struct {
	Path string
	Err  error
}

func (e *UnreadableError) Error() string { return e.Path + ": " + e.Message() }

// Message is the error without the path.
func (e *UnreadableError) Message() string {
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		return "cannot " + pe.Op + ": " + pe.Err.Error()
	}
	return "cannot read: " + e.Err.Error()
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// Message returns an inspection error's text without the file's path, as
// reports print it next to the path.
func Message(err error) string {
	var m interface{ Message() string }
	if errors.As(err, &m) {
		return m.Message()
	}
	return err.Error()
}

// pathless is an error whose text omits the path, for cipolicy.Subject.Problem.
type pathless struct{ err error }

func (p pathless) Error() string { return Message(p.err) }
func (p pathless) Unwrap() error { return p.err }

// CertEntry is one WIN_CERTIFICATE entry of a PE certificate table.
type CertEntry struct {
	Offset   int64  `json:"offset"`
	Length   uint32 `json:"length"`
	Revision uint16 `json:"revision"`
	Type     string `json:"type"`
}

// PEInfo is what inspection learns of a PE file's layout.
type PEInfo struct {
	PE32Plus      bool        `json:"pe32plus"`
	Machine       uint16      `json:"machine"`
	Subsystem     uint16      `json:"subsystem"`
	Sections      int         `json:"sections"`
	CertTableOff  int64       `json:"cert_table_offset,omitempty"`
	CertTableSize int64       `json:"cert_table_size,omitempty"`
	CertEntries   []CertEntry `json:"cert_entries,omitempty"`
	// CertTable holds the raw table for signature verification (not
	// reported).
	CertTable []byte `json:"-"`
}

// ELFInfo is what inspection learns of an ELF file's header.
type ELFInfo struct {
	Class   int    `json:"class"` // 32 or 64
	Machine uint16 `json:"machine"`
	Type    uint16 `json:"type"`
}

// Inspection is the facts about one file, established in one read.
type Inspection struct {
	Format  Format
	Size    int64
	Digests cipolicy.Digests
	PE      *PEInfo
	ELF     *ELFInfo
	// Err is a *MalformedBinaryError or *UnreadableError when the file
	// could not be fully inspected; Format is then what it claimed to be.
	Err error
}

// Signed reports whether the file carries a signature.
func (in *Inspection) Signed() bool { return in.PE != nil && in.PE.CertTableSize > 0 }

// NeedsFunc says which digests to compute for a file of a format.
type NeedsFunc func(cipolicy.Format) cipolicy.Needs

// AllFacts is a NeedsFunc that asks for every digest and fact.
func AllFacts(cipolicy.Format) cipolicy.Needs { return cipolicy.AllNeeds() }

// sniffSize is how much of a file is read to tell its format.
const sniffSize = 4096

// InspectFile inspects the file at path, computing every digest. buf, if
// not nil, is the read buffer to use (at least 4 KiB).
func InspectFile(ctx context.Context, path string, buf []byte) *Inspection {
	if len(buf) < sniffSize {
		buf = make([]byte, limits.ReadBuffer)
	}
	return inspect(ctx, path, true, buf, AllFacts)
}

// inspect reads the file at path once: its first block tells the format and
// holds the headers, and the whole file then streams through buf into the
// digests that needs asks for. A panic in a parser becomes a
// MalformedBinaryError.
func inspect(ctx context.Context, path string, follow bool, buf []byte, needs NeedsFunc) (in *Inspection) {
	in = &Inspection{Format: FormatOther}
	defer func() {
		if r := recover(); r != nil {
			in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
				Reason: fmt.Sprintf("internal error while parsing (please report it): %v", r)}
		}
	}()
	f, err := openRegular(path, follow)
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: err}
		return in
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: err}
		return in
	}
	if !st.Mode().IsRegular() {
		in.Err = &UnreadableError{Path: path, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
		return in
	}
	in.Size = st.Size()
	n, err := io.ReadFull(f, buf[:min(int64(sniffSize), in.Size)])
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: fileChanged(err)}
		return in
	}
	head := buf[:n]
	ra := binfmt.PrefixReader{Prefix: head, R: f}
	type sum struct {
		alg cipolicy.HashAlgorithm
		h   hash.Hash
	}
	var sums []sum
	var writers []io.Writer
	var digester *authenticode.Digester
	var need cipolicy.Needs
	add := func(a cipolicy.HashAlgorithm, h hash.Hash) hash.Hash {
		sums = append(sums, sum{a, h})
		return h
	}
	switch binfmt.Sniff(head) {
	case binfmt.PE:
		if !pe.IsPE(ra, in.Size) {
			return in // an MZ file without a PE signature is not a PE
		}
		in.Format = FormatPE
		pf, err := pe.Parse(ra, in.Size)
		if err != nil {
			in.Err = binaryError(path, FormatPE, err)
			return in
		}
		in.PE = &PEInfo{PE32Plus: pf.PE32Plus, Machine: pf.Machine, Subsystem: pf.Subsystem,
			Sections: len(pf.Sections), CertTableOff: pf.CertTable.Off, CertTableSize: pf.CertTable.Len}
		need = needs(cipolicy.FormatPE)
		var ah []hash.Hash
		if need.Digests.Has(cipolicy.AuthenticodeSHA256) {
			ah = append(ah, add(cipolicy.AuthenticodeSHA256, sha256.New()))
		}
		if need.Digests.Has(cipolicy.AuthenticodeSHA1) {
			ah = append(ah, add(cipolicy.AuthenticodeSHA1, sha1.New()))
		}
		digester = authenticode.NewDigester(pf, ah...)
		digester.CaptureCertTable()
		writers = append(writers, digester)
	case binfmt.ELF:
		in.Format = FormatELF
		ef, err := elf.Parse(ra, in.Size)
		if err != nil {
			in.Err = binaryError(path, FormatELF, err)
			return in
		}
		class := 32
		if ef.Is64() {
			class = 64
		}
		in.ELF = &ELFInfo{Class: class, Machine: ef.Machine, Type: ef.Type}
		need = needs(cipolicy.FormatELF)
	default:
		// Not a binary: judged by nothing, hashed only if asked (inspect).
		if need = needs(cipolicy.Format(FormatOther)); !need.Digests.Has(cipolicy.SHA256) {
			return in
		}
	}
	if in.Size > limits.MaxBinarySize {
		in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
			Reason: fmt.Sprintf("file is %d bytes, over the limit of %d", in.Size, limits.MaxBinarySize)}
		return in
	}
	var flat hash.Hash
	if need.Digests.Has(cipolicy.SHA256) {
		flat = add(cipolicy.SHA256, sha256.New())
		writers = append(writers, flat)
	}
	if len(writers) == 0 {
		return in // nothing to compute: the headers were all the policy needed
	}
	if err := stream(ctx, f, buf, n, in.Size, writers); err != nil {
		if ctx.Err() != nil {
			in.Err = ctx.Err()
		} else {
			in.Err = &UnreadableError{Path: path, Err: err}
		}
		return in
	}
	if digester != nil {
		if err := digester.Close(); err != nil {
			in.Err = &UnreadableError{Path: path, Err: err}
			return in
		}
		if tbl := digester.CertTable(); tbl != nil {
			in.PE.CertTable = tbl
			certs, err := pe.ParseCertificateTable(tbl, in.PE.CertTableOff)
			if err != nil {
				in.Err = binaryError(path, FormatPE, err)
				return in
			}
			for _, c := range certs {
				in.PE.CertEntries = append(in.PE.CertEntries, CertEntry{Offset: c.Offset, Length: c.Length, Revision: c.Revision, Type: pe.TypeName(c.Type)})
			}
		}
	}
	for _, s := range sums {
		in.Digests.Set(s.alg, s.h.Sum(nil))
	}
	return in
}

// stream feeds the file's bytes to every writer: first buf[:n], already
// read, then the rest of the file through buf. It fails if the file does not
// have exactly size bytes (it changed while being read) and stops when ctx is
// done.
func stream(ctx context.Context, f *os.File, buf []byte, n int, size int64, writers []io.Writer) error {
	total := int64(0)
	for {
		for _, w := range writers {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		total += int64(n)
		if total > size {
			return fileChanged(nil)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		n, err = f.Read(buf)
		if errors.Is(err, io.EOF) {
			if total != size {
				return fileChanged(nil)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var errChanged = errors.New("the file changed size while it was being read")

func fileChanged(err error) error {
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errChanged
	}
	return err
}

// binaryError converts a parser error into a MalformedBinaryError (or an
// UnreadableError for I/O failures).
func binaryError(path string, f Format, err error) error {
	var me *binfmt.MalformedError
	if errors.As(err, &me) {
		return &MalformedBinaryError{Path: path, Format: f, Offset: me.Offset, Reason: me.Reason}
	}
	return &UnreadableError{Path: path, Err: err}
}
