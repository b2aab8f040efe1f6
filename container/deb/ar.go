package deb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/signing"
)

// Magic starts an ar archive.
const Magic = "!<arch>\n"

// MaxNameTable caps a GNU ar long-name table ("//"), which is read into
// memory: thousands of object names take a few hundred KiB.
const MaxNameTable = 4 << 20

const headerSize = 60

// arMember is one member of an ar archive.
type arMember struct {
	name      string // as stored: GNU's trailing '/' and the padding dropped, long names resolved
	off, size int64  // its data in the archive
	hdr       int64  // its header's offset
	// table: a symbol table or the long-name table where GNU ar reads
	// one (the first member; "//" also right after a symbol table).
	table bool
	// short: a short (16-byte field) name as GNU ar reads it.
	short string
}

// arReader reads an ar archive's members in order.
type arReader struct {
	src    io.ReaderAt
	size   int64
	format string
	off    int64
	names  []byte // the GNU long-name table
	index  int    // members read so far
	symtab bool   // the first member was a symbol table
}

// isSymtab reports a symbol table's name: GNU's "/" and "/SYM64/", BSD's
// "__.SYMDEF" and "__.SYMDEF SORTED".
func isSymtab(name string) bool {
	switch name {
	case "/", "/SYM64/", "__.SYMDEF", "__.SYMDEF SORTED":
		return true
	}
	return false
}

func newAr(src io.ReaderAt, size int64, format string) (*arReader, error) {
	var magic [8]byte
	if size < 8 {
		return nil, &signing.MalformedError{Format: format, Offset: 0, Reason: "shorter than the ar magic number", Err: io.ErrUnexpectedEOF}
	}
	if _, err := src.ReadAt(magic[:], 0); err != nil {
		return nil, &signing.MalformedError{Format: format, Offset: 0, Reason: "reading the ar magic number: " + err.Error(), Err: err}
	}
	if string(magic[:]) != Magic {
		return nil, &signing.MalformedError{Format: format, Offset: 0, Reason: "no ar magic number"}
	}
	return &arReader{src: src, size: size, format: format, off: 8}, nil
}

func (a *arReader) malformed(at int64, f string, args ...any) error {
	return &signing.MalformedError{Format: a.format, Offset: at, Reason: fmt.Sprintf(f, args...)}
}

// next returns the next member, io.EOF after the last. The symbol tables
// ("/", "/SYM64/", "__.SYMDEF") and the long-name table are returned too,
// with their stored names.
func (a *arReader) next() (*arMember, error) {
	if a.off < a.size && a.off%2 == 1 {
		// Data is padded to an even offset (with '\n').
		a.off++
	}
	if a.off >= a.size {
		return nil, io.EOF
	}
	if a.size-a.off < headerSize {
		return nil, a.malformed(a.off, "a member header cut short (%d of %d bytes)", a.size-a.off, headerSize)
	}
	var h [headerSize]byte
	if _, err := a.src.ReadAt(h[:], a.off); err != nil {
		return nil, &signing.MalformedError{Format: a.format, Offset: a.off, Reason: "reading a member header: " + err.Error(), Err: err}
	}
	if string(h[58:60]) != "`\n" {
		return nil, a.malformed(a.off, "a member header does not end with `\\n")
	}
	sizeField := strings.TrimRight(string(h[48:58]), " ")
	size, err := strconv.ParseInt(sizeField, 10, 64)
	if err != nil || size < 0 || sizeField == "" || sizeField[0] == '+' || sizeField[0] == '-' {
		return nil, a.malformed(a.off+48, "member size %q is not a decimal number", h[48:58])
	}
	m := &arMember{hdr: a.off, off: a.off + headerSize, size: size}
	if size > a.size-m.off {
		return nil, &signing.MalformedError{Format: a.format, Offset: a.off + 48,
			Reason: fmt.Sprintf("member declares %d bytes, past the archive's end", size), Err: io.ErrUnexpectedEOF}
	}
	a.off = m.off + size
	raw := strings.TrimRight(string(h[:16]), " ")
	index := a.index
	a.index++
	// GNU ar (BFD) reads a symbol table only as the first member, and the
	// long-name table only first or right after the symbol table, once;
	// elsewhere such a member is a member like any other.
	if isSymtab(raw) && index == 0 {
		m.table, a.symtab = true, true
	}
	switch {
	case raw == "/" || raw == "//" || raw == "/SYM64/":
		m.name = raw
		if raw == "//" && (index == 0 || index == 1 && a.symtab) {
			m.table = true
			if size > MaxNameTable {
				return nil, a.malformed(m.hdr, "a long-name table of %d bytes, over the %d csv reads", size, MaxNameTable)
			}
			a.names = make([]byte, size)
			if _, err := a.src.ReadAt(a.names, m.off); err != nil {
				return nil, &signing.MalformedError{Format: a.format, Offset: m.off, Reason: "reading the long-name table: " + err.Error(), Err: err}
			}
		}
	case strings.HasPrefix(raw, "#1/"): // BSD: the name starts the data
		n, err := strconv.ParseInt(raw[3:], 10, 64)
		if err != nil || n <= 0 || n > 4096 || n > size {
			return nil, a.malformed(m.hdr, "BSD long name length %q", raw[3:])
		}
		name := make([]byte, n)
		if _, err := a.src.ReadAt(name, m.off); err != nil {
			return nil, &signing.MalformedError{Format: a.format, Offset: m.off, Reason: "reading a long name: " + err.Error(), Err: err}
		}
		m.name = string(bytes.TrimRight(name, "\x00"))
		m.off += n
		m.size -= n
	case len(raw) > 1 && raw[0] == '/' && raw[1] >= '0' && raw[1] <= '9': // GNU: "/offset" into the table
		i, err := strconv.ParseInt(raw[1:], 10, 64)
		if err != nil || i < 0 || i >= int64(len(a.names)) {
			return nil, a.malformed(m.hdr, "long name %q is not in the long-name table (%d bytes)", raw, len(a.names))
		}
		rest := a.names[i:]
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			return nil, a.malformed(m.hdr, "long name %q is not ended in the long-name table", raw)
		}
		m.name = strings.TrimSuffix(string(rest[:end]), "/")
	default:
		m.name = strings.TrimSuffix(raw, "/")
		// GNU ar (BFD) ends a short name at its first NUL, or else its
		// first '/', or else its first space: "x.ps1 a.txt" is x.ps1 on
		// disk.
		short := string(h[:16])
		if i := strings.IndexByte(short, 0); i >= 0 {
			short = short[:i]
		} else if i := strings.IndexByte(short, '/'); i >= 0 {
			short = short[:i]
		} else if i := strings.IndexByte(short, ' '); i >= 0 {
			short = short[:i]
		}
		m.short = short
	}
	return m, nil
}

// Ar reads ar archives that are not Debian packages (static libraries,
// Kind "ar"): every member but the symbol table ("/", "/SYM64/",
// "__.SYMDEF", "__.SYMDEF SORTED", as the first member, where GNU ar reads
// it; a later "__.SYMDEF" is a file ar x lays down) and GNU's long-name
// table (first, or right after the symbol table) is yielded
// under its name (GNU long names and BSD "#1/N" names resolved), its bytes
// read from the archive at its offset. A name stored twice is a Problem on
// the later copy: ar x leaves the last copy on disk, while a linker reads
// every copy. Thin archives ("!<thin>\n"), whose members are other files,
// are not read.
type Ar struct{}

var _ container.Reader = Ar{}

// Kind is "ar".
func (Ar) Kind() container.Kind { return "ar" }

// Sniff reports an ar archive whose first member is not debian-binary.
func (Ar) Sniff(head []byte, name string) bool {
	return bytes.HasPrefix(head, []byte(Magic)) && !(Reader{}).Sniff(head, name)
}

// Walk yields the archive's members.
func (Ar) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	a, err := newAr(src, size, "ar")
	if err != nil {
		return err
	}
	names := container.Names{}
	count := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		am, err := a.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		count++
		if err := checkMembers(lim, count, "ar"); err != nil {
			return err
		}
		if am.table {
			continue
		}
		if isSymtab(am.name) && am.name[0] == '/' || am.name == "//" {
			// ar x cannot lay it down (its name is empty), but neither is
			// it a table a linker reads: a member csv cannot judge.
			m := &container.Member{Name: am.name, Type: container.Regular, Size: am.size,
				Problem: fmt.Errorf("%w: member %q is a symbol or long-name table after the archive's first members, where GNU ar reads none", container.ErrMember, am.name)}
			if err := yield(m, nil); err != nil {
				return err
			}
			continue
		}
		if am.short != "" && am.short != am.name {
			am.name = am.short
		}
		if err := yieldMember(ctx, src, am, "ar", names, lim, yield); err != nil {
			return err
		}
	}
}

func checkMembers(lim *container.Limits, n int, format string) error {
	if lim != nil && lim.MaxMembers > 0 && n > lim.MaxMembers {
		return &container.LimitError{Cap: "max-container-members", Value: int64(lim.MaxMembers),
			What: fmt.Sprintf("%s holds more than %d members", format, lim.MaxMembers)}
	}
	return nil
}

// yieldMember yields an ar member as a regular file, read from the
// archive at its offset.
func yieldMember(ctx context.Context, src io.ReaderAt, am *arMember, format string, names container.Names, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	m := &container.Member{Type: container.Regular, Size: am.size}
	name, err := container.CleanName(am.name)
	m.Name = name
	if err != nil {
		m.Problem = err
	} else if dup := names.Add(container.NameKey(name)); dup != nil {
		m.Problem = fmt.Errorf("%w: %s is stored more than once; ar x leaves the last copy on disk, a linker reads every copy", container.ErrMember, name)
	}
	if m.Problem != nil {
		return yield(m, nil)
	}
	s := io.NewSectionReader(src, am.off, am.size)
	return yield(m, &section{Meter: &container.Meter{R: s, Ctx: ctx, Lim: lim, Name: name, Declared: am.size, Format: format}, s: s})
}

// section is a member's bytes read through its Meter, with random access
// to the same bytes (ReadAt, Size), as container/tar's Section.
type section struct {
	*container.Meter
	s *io.SectionReader
}

func (s *section) ReadAt(p []byte, off int64) (int, error) { return s.s.ReadAt(p, off) }
func (s *section) Size() int64                             { return s.s.Size() }
