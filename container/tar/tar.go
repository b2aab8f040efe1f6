// Package tar reads tar archives (v7, ustar, GNU and PAX, as archive/tar
// reads them) as containers of members, uncompressed from a file's random
// access ([Reader]) or streamed from a decompressor or a package's member
// ([Walker]), for container/compress and container/deb.
//
// A tar is recognised by its first header block's checksum ([IsHeader]),
// not by "ustar" at offset 257, which v7 and GNU archives lack or spell
// otherwise.
//
// Members: regular files (and '7', contiguous files, which tar extracts as
// regular files) are yielded with their bytes; directories, GNU volume
// labels and a PAX global header that holds only a comment (git archive
// writes one) are counted but not yielded; a PAX global header that sets
// other records is yielded with a Problem; symbolic and hard links, devices, FIFOs and every other type
// are yielded with a Problem, and so are GNU sparse files (old GNU 'S' and
// the PAX GNU.sparse formats), whose holes tar fills on extraction (a
// binary shipped sparse is unusual, and a sparse map can declare terabytes
// from a few blocks). Names are read as archive/tar assembles them (GNU
// long names, PAX path and linkpath) and cleaned by container.CleanName; a
// name stored twice is a Problem on the later copy, the one tar leaves on
// disk. PAX records SCHILY.xattr.NAME become Member.Attrs[NAME] (IMA
// signatures travel as SCHILY.xattr.security.ima).
//
// # Security
//
// Every header is untrusted. archive/tar reads PAX records and GNU long
// names of at most 1 MiB each (its maxSpecialFileSize) and sparse maps of
// at most 1 MiB, so no header allocates more; members count against
// Limits.MaxMembers (directories included) and delivered bytes against
// Limits.MaxExpandedSize. Bytes after the end-of-archive marker must be
// zeros: anything else is an error (tar --ignore-zeros reads it as more
// members); so is a last header cut short, which GNU tar takes for the
// end without a word. An uncompressed tar's member is read from the file at its
// offset (an io.SectionReader: no copy), and also offers ReadAt and Size.
package tar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

// BlockSize is a tar header block's size.
const BlockSize = 512

// Reader reads an uncompressed tar file (Kind "tar").
type Reader struct{}

var _ container.Reader = Reader{}

// Kind is "tar".
func (Reader) Kind() container.Kind { return "tar" }

// Sniff reports whether head starts with a tar header block whose checksum
// is right, or whether the file is named .tar (case ignored) and its first
// bytes are not all zero: GNU tar reads a file whose first header is bad
// by skipping to the next header it finds ("Skipping to next header") and
// extracts from there, so such a file is read, and refused, as a tar.
func (Reader) Sniff(head []byte, name string) bool { return Claims(head, name) }

// Claims reports whether a file with these first bytes and this name is
// read as a tar (see Reader.Sniff).
func Claims(head []byte, name string) bool {
	if IsHeader(head) {
		return true
	}
	return strings.HasSuffix(strings.ToLower(name), ".tar") && bytes.IndexFunc(head, func(r rune) bool { return r != 0 }) >= 0
}

// Walk yields the tar's members (see the package documentation).
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	w := Walker{Format: "tar"}
	return w.Walk(ctx, io.NewSectionReader(src, 0, size), lim, yield)
}

// IsHeader reports whether b starts with a tar header block: 512 bytes,
// not all zero, whose checksum field (octal, at 148) equals the sum of the
// block's bytes with that field read as spaces, unsigned or signed (old
// tars summed signed chars; GNU tar and archive/tar accept both).
func IsHeader(b []byte) bool {
	if len(b) < BlockSize {
		return false
	}
	blk := b[:BlockSize]
	field := blk[148:156]
	// The field is octal digits, optionally led by spaces and ended by NUL
	// or space.
	s := strings.TrimLeft(string(field), " ")
	if i := strings.IndexAny(s, "\x00 "); i >= 0 {
		if strings.Trim(s[i:], "\x00 ") != "" {
			return false
		}
		s = s[:i]
	}
	if s == "" {
		return false
	}
	want, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return false
	}
	var unsigned, signed int64
	for i, c := range blk {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	if unsigned == 8*' ' { // all zeros: an end-of-archive block
		return false
	}
	return want == unsigned || want == signed
}

// Walker walks tar streams into the members of one container: a tar, a
// compressed tar, or the two tars of a Debian package, which share its
// member count and names.
type Walker struct {
	// Format names the container in errors ("tar", "tar.gz", "deb").
	Format string
	// Prefix is put before every member's name ("DEBIAN/" for a Debian
	// package's control.tar).
	Prefix string
	// Names finds names stored twice; nil: Walk makes one.
	Names container.Names
	// Members counts the members walked so far (against MaxMembers).
	Members int
}

// Walk reads a tar from r and calls yield for its members. When r is an
// *io.SectionReader (an uncompressed tar, from a file or a package's
// member) members are read from it at their offsets; otherwise r is read
// once, in order. After the end-of-archive marker, Walk reads r to its end
// (a decompressor checks its stream's checksum there) and refuses any
// byte that is not zero.
func (w *Walker) Walk(ctx context.Context, r io.Reader, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	if w.Names == nil {
		w.Names = container.Names{}
	}
	if w.Format == "" {
		w.Format = "tar"
	}
	var pr positioned
	sec, random := r.(*io.SectionReader)
	if random {
		pr = &seekPos{sec}
	} else {
		pr = &streamPos{container.Counter{R: r}}
	}
	tr := tar.NewReader(pr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		at := pr.pos()
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return w.trailer(pr)
		}
		if err != nil {
			return w.malformed(at, "reading the header", err)
		}
		w.Members++
		if lim != nil && lim.MaxMembers > 0 && w.Members > lim.MaxMembers {
			return &container.LimitError{Cap: "max-container-members", Value: int64(lim.MaxMembers),
				What: fmt.Sprintf("%s holds more than %d members", w.Format, lim.MaxMembers)}
		}
		switch hdr.Typeflag {
		case tar.TypeDir, 'D', 'V': // a directory, a GNU dump directory, a GNU volume label
			continue
		case tar.TypeXGlobalHeader:
			// git archive writes one, a comment holding the commit.
			if len(hdr.PAXRecords) == 1 && hdr.PAXRecords["comment"] != "" || len(hdr.PAXRecords) == 0 {
				continue
			}
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeCont {
			stored := hdr.Name
			if p, ok := hdr.PAXRecords["path"]; ok {
				stored = p
			}
			if strings.HasSuffix(stored, "/") {
				// GNU tar makes a directory of it and reads what
				// archive/tar takes for its bytes as the next headers:
				// members csv never sees, whatever their names.
				return w.malformed(at, fmt.Sprintf("file %q has a name that ends in a slash: GNU tar extracts it as a directory and reads its %d bytes as more members", stored, hdr.Size), nil)
			}
		}
		m := w.member(hdr)
		if m.Problem != nil {
			if err := yield(m, nil); err != nil {
				return err
			}
			continue
		}
		meter := &container.Meter{Ctx: ctx, Lim: lim, Name: w.Prefix + m.Name, Declared: hdr.Size, Format: w.Format}
		var body io.Reader = meter
		if random {
			off := pr.pos()
			if hdr.Size > sec.Size()-off {
				return w.malformed(off, fmt.Sprintf("member %s declares %d bytes, past the archive's end", m.Name, hdr.Size), io.ErrUnexpectedEOF)
			}
			s := io.NewSectionReader(sec, off, hdr.Size)
			meter.R = s
			body = &Section{Meter: meter, s: s}
		} else {
			meter.R = tr
		}
		if err := yield(m, body); err != nil {
			return err
		}
	}
}

// member makes the Member of a header that is not a directory, with its
// Problem when it cannot be judged.
func (w *Walker) member(hdr *tar.Header) *container.Member {
	// archive/tar lets a GNU long name ('L') or long link name ('K') win
	// over a PAX path or linkpath record of the same member; GNU tar
	// applies the PAX records last, so they win there: a member named both
	// ways is named as GNU tar lays it down, and blocked below.
	stored, link := hdr.Name, hdr.Linkname
	var twice string
	if p, ok := hdr.PAXRecords["path"]; ok && p != stored {
		twice = fmt.Sprintf("its GNU long name %q and its PAX path %q disagree (GNU tar uses the PAX path, archive/tar the long name)", stored, p)
		stored = p
	}
	if p, ok := hdr.PAXRecords["linkpath"]; ok && p != link {
		if twice == "" {
			twice = fmt.Sprintf("its GNU long link name %q and its PAX linkpath %q disagree (GNU tar uses the PAX linkpath, archive/tar the long link name)", link, p)
		}
		link = p
	}
	m := &container.Member{Size: hdr.Size, Mode: fs.FileMode(hdr.Mode) & fs.ModePerm, Link: link}
	name, err := container.CleanName(stored)
	m.Name = w.Prefix + name
	if err != nil {
		m.Problem = err
	}
	problem := func(f string, args ...any) {
		if m.Problem == nil {
			m.Problem = fmt.Errorf("%w: "+f, append([]any{container.ErrMember}, args...)...)
		}
	}
	var aerr error
	if m.Attrs, aerr = container.PAXAttrs(hdr.PAXRecords); aerr != nil && m.Problem == nil {
		m.Problem = fmt.Errorf("%s: %w", name, aerr)
	}
	if twice != "" {
		problem("%s: %s", name, twice)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont:
		m.Type = container.Regular
		if sparse(hdr) {
			problem("%s is a sparse file, whose holes tar fills with zeros on extraction", name)
		}
	case tar.TypeGNUSparse:
		m.Type = container.Regular
		problem("%s is a sparse file, whose holes tar fills with zeros on extraction", name)
	case tar.TypeSymlink:
		m.Type = container.Symlink
		problem("%s is a symbolic link to %q", name, link)
	case tar.TypeLink:
		m.Type = container.Hardlink
		problem("%s is a hard link to %q", name, link)
	case tar.TypeChar, tar.TypeBlock:
		m.Type = container.Other
		problem("%s is a device (type %q)", name, hdr.Typeflag)
	case tar.TypeFifo:
		m.Type = container.Other
		problem("%s is a FIFO", name)
	case tar.TypeXGlobalHeader:
		m.Type = container.Other
		problem("a PAX global header (%s) sets records that GNU tar applies to the members after it and csv does not", name)
	default:
		m.Type = container.Other
		problem("%s has the type %q, which csv does not read", name, hdr.Typeflag)
	}
	if err == nil {
		if dup := w.Names.Add(container.NameKey(m.Name)); dup != nil {
			// The later copy is the one tar leaves on disk: block it,
			// whatever else it is.
			m.Problem = fmt.Errorf("%w: %s is stored more than once; tar extracts every copy in turn and leaves this one, the last, on disk", container.ErrMember, m.Name)
		}
	}
	return m
}

// sparse reports whether a PAX header made hdr a GNU sparse file.
func sparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// trailer reads what follows the end-of-archive marker to r's end: zeros
// only.
func (w *Walker) trailer(pr positioned) error {
	var buf [32 << 10]byte
	for {
		at := pr.pos()
		n, err := pr.Read(buf[:])
		if i := bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 0 }); i >= 0 {
			return w.malformed(at+int64(i), "data after the end-of-archive marker (tar --ignore-zeros reads it as more members)", nil)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return w.malformed(pr.pos(), "reading after the end-of-archive marker", err)
		}
	}
}

// malformed is the error of a tar that cannot be read; an error that is
// already a cap, a MalformedError from the stream under the tar, or ctx's
// is returned as it is.
func (w *Walker) malformed(at int64, what string, err error) error {
	var le *container.LimitError
	if errors.As(err, &le) || errors.Is(err, signing.ErrMalformed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	reason := what
	if err != nil {
		reason = what + ": " + err.Error()
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &signing.MalformedError{Format: w.Format, Offset: at, Reason: reason, Err: err}
}

// Section is an uncompressed tar member's bytes: Read through the member's
// Meter (declared size, caps, ctx), and random access (ReadAt, Size) to the
// same bytes in the archive, for parsers that read by offset. ReadAt does
// not count against Limits.MaxExpandedSize: the bytes are the archive's own.
type Section struct {
	*container.Meter
	s *io.SectionReader
}

// ReadAt reads the member's bytes at off.
func (s *Section) ReadAt(p []byte, off int64) (int, error) { return s.s.ReadAt(p, off) }

// Size is the member's size.
func (s *Section) Size() int64 { return s.s.Size() }

// positioned is the reader under archive/tar, which knows its offset.
type positioned interface {
	io.Reader
	pos() int64
}

// seekPos is an *io.SectionReader under archive/tar, which skips a member's
// data by Seek.
type seekPos struct{ *io.SectionReader }

func (s *seekPos) pos() int64 {
	p, _ := s.Seek(0, io.SeekCurrent)
	return p
}

type streamPos struct{ container.Counter }

func (s *streamPos) pos() int64 { return s.N }
