// Package zip reads zip archives and the packages that are zips (.zip,
// .nupkg, .snupkg, .vsix, .jar, .war, .whl, .msix, .appx, .apk, .aab,
// .xpi, and .crx, whose zip follows a header of its own) as containers of
// members, for the validator to judge each member (../container).
//
// # Recognition
//
// By content only: a local file header at offset 0, an end of central
// directory record at offset 0 that lists no member (an empty archive),
// a spanned-archive marker (refused by Walk, so that it is blocked rather
// than passed as an unknown file), or a Chrome extension header (Cr24,
// versions 2 and 3) followed by a local file header. A PE or ELF file with
// a zip appended (a self-extracting archive) does not start with a local
// header and stays a binary.
//
// # What Walk checks
//
// Walk reads the zip by its own random access: the end record (and the
// zip64 one), the central directory, then every member's local header,
// before it delivers any member's bytes. It refuses (returns an error) an
// archive whose structure is not one: a multi-disk archive, bytes after
// the end record's comment, two end records, a central directory that does
// not end where the end record begins, local headers outside the members'
// area, members whose bytes overlap (the "better zip bomb"), bytes that no
// member covers (other than an APK signing block right before the central
// directory), more members than Limits.MaxMembers, declared sizes over
// Limits.MaxExpandedSize or ratios over Limits.MaxRatio. It passes to
// yield with Problem set, never skipping: a local header the central
// directory does not list (which an extractor streaming from the front
// would extract), a member whose local header or data descriptor disagrees
// with its central directory record (name, flags, method, CRC, sizes; the
// name in a local Unicode Path extra field; the file type in libarchive's
// 'xl' extra field, local or central), an
// encrypted member (flag bit 0, strong encryption, a masked central
// directory, AES method 99), PKWARE patched data (flag bit 5), a
// compression method other than store and deflate (named), a symbolic link or other special file (Unix mode in the
// external attributes), a name CleanName refuses, a name repeated after
// CleanName, a name extractors read differently (not ASCII and not marked
// UTF-8; an Info-ZIP Unicode Path field that says otherwise), a stored
// member whose sizes differ, a stored member with a data descriptor whose
// bytes hold one (where libarchive's streaming reader ends it), and a
// directory entry that holds data.
// Directories are counted, not yielded.
//
// A member's bytes are read straight from src (stored) or through
// compress/flate (deflated), and checked as they flow: the declared size,
// the CRC-32 (an error wrapping signing.ErrMalformed at the read that
// reaches the end), a deflate stream that ends before its compressed size
// (bytes hidden after it), the ratio and expanded-size caps (Meter). What
// the caller leaves unread of a member Walk reads to the end after yield
// returns, so that a corrupt member is an error even when the caller judged
// it from its first bytes.
//
// # Security
//
// Every length in the archive is checked against the bytes that hold it
// before it is used; nothing is allocated from an untrusted count before
// the count is checked against Limits.MaxMembers and the central
// directory's size. The work is linear in the archive's size plus the
// bytes delivered. Nothing is written to disk. A zip's own signatures (jar
// signing, the APK signing block, MSIX/AppX signatures) are not verified
// here: their members are judged as members.
package zip

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"sync"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Kind is the container kind zip archives report.
const Kind container.Kind = "zip"

// Reader reads zip archives. Its zero value is ready to use.
type Reader struct{}

var _ container.Reader = Reader{}

// Kind returns "zip".
func (Reader) Kind() container.Kind { return Kind }

// Sniff reports whether head begins a zip archive (see the package
// documentation); name is not used.
func (Reader) Sniff(head []byte, name string) bool {
	if len(head) < 4 {
		return false
	}
	switch le32(head) {
	case sigLocal:
		return true
	case sigEnd:
		// An empty archive: no entries, no central directory.
		return len(head) >= endLen && le16(head[8:]) == 0 && le16(head[10:]) == 0 && le32(head[12:]) == 0 && le32(head[16:]) == 0
	case sigSpan, sigSpan1:
		return len(head) >= 8 && le32(head[4:]) == sigLocal
	}
	off, ok := crxHeader(head, math.MaxInt64)
	// A header longer than head (CRX3 headers carry keys and signatures)
	// is taken on its magic and version; Walk checks the zip after it.
	return ok && (off+4 > int64(len(head)) || le32(head[off:]) == sigLocal)
}

// SniffTail reports whether tail, the last bytes of a file, end with an
// end of central directory record whose comment ends at the end of the
// file: a zip, which extractors read whatever comes before it (a script,
// an image), when Sniff did not recognise the file by its first bytes.
func (Reader) SniffTail(tail []byte) bool {
	// The record's signature, searched for with bytes.Index (vectorised;
	// any record that ends the file will do, so the order is free):
	// every file of no format is sniffed so, and a byte-by-byte scan of
	// 64 KiB cost a quarter of csv's CPU on a tree of small files.
	last := len(tail) - endLen // a record must fit after it
	for i := 0; i <= last; {
		j := bytes.Index(tail[i:last+len(endSig)], endSig[:])
		if j < 0 {
			return false
		}
		i += j
		if i+endLen+int(le16(tail[i+20:])) == len(tail) {
			return true
		}
		i++
	}
	return false
}

// endSig is sigEnd as it is stored.
var endSig = [4]byte{sigEnd & 0xff, sigEnd >> 8 & 0xff, sigEnd >> 16 & 0xff, sigEnd >> 24}

var _ container.TailSniffer = Reader{}

// crxHeader returns the length of a Chrome extension's header (CRX2: magic,
// version, key and signature lengths, key, signature; CRX3: magic,
// version, header length, header), when head starts with one.
func crxHeader(head []byte, size int64) (int64, bool) {
	if len(head) < 12 || string(head[:4]) != "Cr24" {
		return 0, false
	}
	switch le32(head[4:]) {
	case 2:
		if len(head) < 16 {
			return 0, false
		}
		n := 16 + int64(le32(head[8:])) + int64(le32(head[12:]))
		return n, n <= size
	case 3:
		n := 12 + int64(le32(head[8:]))
		return n, n <= size
	}
	return 0, false
}

// Walk calls yield for each member of the zip in src, in central-directory
// order, after checking the archive's structure (see the package
// documentation). A nil lim means the defaults of internal/limits.
func (Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	l := defaultLimits()
	if lim != nil {
		l = *lim
	}
	if l.Expanded == nil {
		l.Expanded = new(int64)
	}
	if l.MaxDepth > 0 && l.Depth > l.MaxDepth {
		return &container.LimitError{Cap: "max-container-depth", Value: int64(l.MaxDepth),
			What: fmt.Sprintf("zip %s is nested %d deep", name, l.Depth)}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var head [16]byte
	n, _ := src.ReadAt(head[:], 0)
	if n >= 8 && (le32(head[:]) == sigSpan || le32(head[:]) == sigSpan1) {
		return malformed(0, "a spanned or split archive (marker %q at offset 0)", head[:4])
	}
	if off, ok := crxHeader(head[:n], size); ok {
		src, size = io.NewSectionReader(src, off, size-off), size-off
	} else if string(head[:4]) == "Cr24" {
		return malformed(0, "a Chrome extension header that is not version 2 or 3, or runs past the end of the file")
	}
	a, err := readArchive(ctx, src, size, &l)
	if err != nil {
		return err
	}
	w := walkers.Get().(*walker)
	defer func() {
		*w = walker{br: w.br, fl: w.fl, buf: w.buf}
		w.br.Reset(nil)
		walkers.Put(w)
	}()
	w.ctx, w.src, w.lim, w.yield, w.names = ctx, src, &l, yield, container.Names{}
	if err := w.checkDeclared(a); err != nil {
		return err
	}
	for i := range a.hidden {
		if err := yield(&a.hidden[i], nil); err != nil {
			return err
		}
	}
	for i := range a.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.member(&a.entries[i]); err != nil {
			return err
		}
	}
	return nil
}

func defaultLimits() container.Limits {
	return container.Limits{
		Depth: 1, MaxDepth: limits.MaxContainerDepth,
		MaxMembers:      limits.MaxContainerMembers,
		MaxExpandedSize: limits.MaxContainerSize,
		MaxRatio:        limits.MaxContainerRatio, RatioGrace: limits.ContainerRatioGrace,
		MemberInMemory: limits.MaxMemberInMemory,
	}
}

// methodNames names the compression methods of APPNOTE 4.4.5.
var methodNames = map[uint16]string{
	1: "shrink", 2: "reduce", 3: "reduce", 4: "reduce", 5: "reduce", 6: "implode",
	9: "deflate64", 10: "PKWARE implode", 12: "bzip2", 14: "LZMA", 16: "IBM z/OS CMPSC",
	18: "IBM TERSE", 19: "IBM LZ77", 20: "zstd (deprecated id)", 93: "zstd", 94: "MP3",
	95: "xz", 96: "JPEG", 97: "WavPack", 98: "PPMd", 99: "AES encryption",
}

// Unix file types in the high half of the external attributes.
const (
	sIFMT  = 0o170000
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
)

// problem returns why e cannot be judged, or nil; dir reports a directory
// entry.
func (e *entry) check() (name string, typ container.MemberType, dir bool, problem error) {
	name, nerr := e.memberName()
	unix := e.ext >> 16
	dir = len(e.raw) > 0 && e.raw[len(e.raw)-1] == '/'
	typ = container.Regular
	switch unix & sIFMT {
	case 0, sIFREG:
	case sIFDIR:
		dir = true
	case sIFLNK:
		typ = container.Symlink
	default:
		typ = container.Other
	}
	member := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", container.ErrMember, fmt.Sprintf(format, args...))
	}
	switch {
	case e.flags&flagMaskedCD != 0:
		problem = member("encrypted (the central directory's fields are masked)")
	case e.flags&flagStrong != 0:
		problem = member("encrypted (PKWARE strong encryption)")
	case e.method == 99:
		problem = member("encrypted (AES, method 99)")
	case e.flags&flagEncrypted != 0:
		problem = member("encrypted")
	case e.flags&flagPatched != 0:
		problem = member("PKWARE patched data (a delta against a file csv does not have)")
	case e.problem != nil:
		problem = e.problem
	case typ == container.Symlink:
		problem = member("a symbolic link (Unix mode %#o): an extractor would create a link, not a file", unix)
	case typ == container.Other:
		problem = member("a special file (Unix mode %#o), not a regular file", unix)
	case nerr != nil:
		problem = nerr
	case e.method != methodStore && e.method != methodDeflate:
		m := methodNames[e.method]
		if m == "" {
			m = "unknown"
		}
		problem = member("compressed with method %d (%s), which csv does not read (store and deflate only)", e.method, m)
	case dir && (e.usize > 0 || (e.csize > 0 && !(e.method == methodDeflate && e.csize <= 8))):
		// jar writes directories as empty deflate streams (2 bytes),
		// other writers as an empty final stored block (5): no file
		// fits in 8 bytes of deflate that expand to none.
		problem = member("a directory entry that holds %d bytes (%d compressed)", e.usize, e.csize)
	case e.usize > 1<<62:
		problem = &signing.MalformedError{Format: "zip", Offset: int64(e.off),
			Reason: fmt.Sprintf("member %q declares %d bytes, past any file", e.raw, e.usize)}
	case e.method == methodStore && e.csize != e.usize:
		problem = &signing.MalformedError{Format: "zip", Offset: int64(e.off),
			Reason: fmt.Sprintf("member %q is stored but its sizes differ (%d compressed, %d not)", e.raw, e.csize, e.usize)}
	}
	if problem != nil {
		dir = false // a directory with a problem is passed to yield
	}
	return name, typ, dir, problem
}

// walkers keeps walkers' buffers and decompressors (some 300 KiB) between
// walks: a nested zip or a package of many small zips costs one each.
var walkers = sync.Pool{New: func() any {
	return &walker{br: bufio.NewReaderSize(nil, 32<<10), buf: make([]byte, 32<<10)}
}}

// walker delivers members, reusing one bufio.Reader and one decompressor.
type walker struct {
	ctx   context.Context
	src   io.ReaderAt
	lim   *container.Limits
	yield func(*container.Member, io.Reader) error
	names container.Names
	br    *bufio.Reader
	in    container.Counter
	fl    io.ReadCloser
	buf   []byte
}

// checkDeclared refuses early an archive whose declared sizes are over the
// caps: their total over MaxExpandedSize, a member's ratio over MaxRatio.
func (w *walker) checkDeclared(a *archive) error {
	total := *w.lim.Expanded
	for i := range a.entries {
		e := &a.entries[i]
		if e.method != methodDeflate && e.method != methodStore {
			continue
		}
		total += int64(min(e.usize, 1<<62))
		if w.lim.MaxExpandedSize > 0 && total > w.lim.MaxExpandedSize {
			return &container.LimitError{Cap: "max-container-size", Value: w.lim.MaxExpandedSize,
				What: fmt.Sprintf("the zip's members declare more than %d bytes (at member %s)", w.lim.MaxExpandedSize, e.raw)}
		}
		if w.lim.MaxRatio > 0 && int64(min(e.usize, 1<<62)) > w.lim.RatioGrace && e.usize/max(e.csize, 1) > uint64(w.lim.MaxRatio) {
			return &container.LimitError{Cap: "max-container-ratio", Value: w.lim.MaxRatio,
				What: fmt.Sprintf("member %s declares %d bytes from %d", e.raw, e.usize, e.csize)}
		}
	}
	return nil
}

func (w *walker) member(e *entry) error {
	name, typ, dir, problem := e.check()
	m := &container.Member{Name: name, Type: typ, Size: int64(min(e.usize, 1<<62))}
	if e.creator>>8 == 3 || e.ext>>16 != 0 {
		m.Mode = fs.FileMode(e.ext>>16) & fs.ModePerm
	}
	if dir {
		return nil
	}
	if problem == nil && e.method == methodStore && e.flags&flagDesc != 0 {
		k, err := w.earlyDescriptor(e)
		if err != nil {
			return err
		}
		if k >= 0 {
			problem = fmt.Errorf("%w: member %s is stored with a data descriptor, and its bytes hold one at offset %d (the signature, then the CRC-32 of the bytes before it): an extractor streaming the archive (libarchive, bsdtar reading a pipe) ends the member there and takes what follows for further members", container.ErrMember, name, k)
		}
	}
	if problem == nil && typ == container.Regular {
		problem = w.names.Add(name)
	}
	if problem != nil {
		m.Problem = problem
		if typ == container.Symlink {
			m.Link = w.link(e, name)
		}
		return w.yield(m, nil)
	}
	r := &seen{r: w.open(e, name)}
	detached := false
	m.Detach = func() io.Reader {
		detached = true
		return w.detach(e, name)
	}
	if err := w.yield(m, r); err != nil {
		return err
	}
	if detached {
		return nil // read by the reader Detach returned
	}
	if r.err != nil {
		// The caller was given the member's error: a corrupt member is
		// its finding, and the walk goes on; a cap reached or ctx done
		// ends it.
		if errors.Is(r.err, container.ErrLimit) || w.ctx.Err() != nil {
			return r.err
		}
		return nil
	}
	// Read what the caller left, so that a corrupt member is found (and
	// is the container's error, as the caller did not see it).
	for {
		_, err := r.r.Read(w.buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// earlyDescriptor returns the first offset in a stored member's bytes, short
// of their end, where libarchive's streaming reader ends a stored member
// with a data descriptor (it cannot know its size): a data descriptor
// signature followed by the CRC-32 of the bytes before it; -1 when there
// is none. It reads the member's bytes once more, from src, in w.buf's
// chunks overlapping by the 8 bytes a candidate needs (which may lie in
// the descriptor that follows), updating the CRC-32 from one candidate to
// the next: linear in the member's size however many candidates it holds.
func (w *walker) earlyDescriptor(e *entry) (int64, error) {
	sig := []byte("PK\x07\x08")
	csize := int64(e.csize)
	step := int64(len(w.buf) - 8)
	var crc uint32 // of the member's bytes before pos
	for pos := int64(0); pos < csize; pos += step {
		if err := w.ctx.Err(); err != nil {
			return -1, err
		}
		lim := min(step, csize-pos) // candidates start before lim
		chunk := w.buf[:min(step+8, csize+7-pos)]
		if _, err := w.src.ReadAt(chunk, e.dataStart+pos); err != nil {
			return -1, &signing.MalformedError{Format: "zip", Offset: e.dataStart + pos, Reason: fmt.Sprintf("cannot read member %q's data", e.raw), Err: err}
		}
		c, last := crc, 0
		for off := 0; ; {
			i := bytes.Index(chunk[off:], sig)
			if i < 0 || int64(off+i) >= lim {
				break
			}
			j := off + i
			c, last = crc32.Update(c, crc32.IEEETable, chunk[last:j]), j
			if le32(chunk[j+4:]) == c {
				return pos + int64(j), nil
			}
			off = j + 1
		}
		crc = crc32.Update(crc, crc32.IEEETable, chunk[:lim])
	}
	return -1, nil
}

// maxLink caps the link target Walk reads to report it.
const maxLink = 4096

// link returns a symbolic link's target (its data), when it can be read
// and checked, for the report; "" otherwise.
func (w *walker) link(e *entry, name string) string {
	if e.flags&(flagEncrypted|flagStrong|flagMaskedCD) != 0 || e.problem != nil || e.usize > maxLink ||
		e.csize > maxLink || (e.method != methodStore && e.method != methodDeflate) {
		return ""
	}
	lim := container.Limits{Expanded: new(int64)}
	saved := w.lim
	w.lim = &lim
	b, err := io.ReadAll(io.LimitReader(w.open(e, name), maxLink+1))
	w.lim = saved
	if err != nil || len(b) > maxLink {
		return ""
	}
	return string(b)
}

// seen remembers the error a member's reader returned to the caller.
type seen struct {
	r   io.Reader
	err error
}

func (s *seen) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// open returns the reader of e's bytes: from src, through flate for a
// deflated member, checked by crcReader and container.Meter.
func (w *walker) open(e *entry, name string) io.Reader {
	sec := io.NewSectionReader(w.src, e.dataStart, int64(e.csize))
	c := &crcReader{want: e.crc, size: int64(e.usize), name: name}
	meter := &container.Meter{R: c, Ctx: w.ctx, Lim: w.lim, Name: name, Declared: int64(e.usize), Format: "zip"}
	if e.method == methodStore {
		c.r = sec
		return meter
	}
	w.in = container.Counter{R: sec}
	w.br.Reset(&w.in)
	w.fl = resetFlate(w.fl, w.br)
	c.r = w.fl
	csize := int64(e.csize)
	taken := func() int64 { return w.in.N - int64(w.br.Buffered()) }
	c.end = func() error {
		if n := taken(); n != csize {
			return &signing.MalformedError{Format: "zip", Offset: e.dataStart + n,
				Reason: fmt.Sprintf("member %s's deflate stream ends %d bytes before its %d compressed bytes do", name, csize-n, csize)}
		}
		return nil
	}
	meter.Compressed = taken
	return meter
}

// detach returns a reader of e's bytes as open does, with a decompressor
// and buffers of its own, for another goroutine: it meters the member's
// declared size and ratio (checkDeclared counted its declared size in the
// container's expanded total), not the walk's running total.
func (w *walker) detach(e *entry, name string) io.Reader {
	sec := io.NewSectionReader(w.src, e.dataStart, int64(e.csize))
	c := &crcReader{want: e.crc, size: int64(e.usize), name: name}
	lim := *w.lim
	lim.Expanded = new(int64)
	meter := &container.Meter{R: c, Ctx: w.ctx, Lim: &lim, Name: name, Declared: int64(e.usize), Format: "zip"}
	if e.method == methodStore {
		c.r = sec
		return meter
	}
	in := &container.Counter{R: sec}
	br := bufio.NewReaderSize(in, 32<<10)
	fl := resetFlate(nil, br)
	c.r = fl
	csize := int64(e.csize)
	taken := func() int64 { return in.N - int64(br.Buffered()) }
	c.end = func() error {
		if n := taken(); n != csize {
			return &signing.MalformedError{Format: "zip", Offset: e.dataStart + n,
				Reason: fmt.Sprintf("member %s's deflate stream ends %d bytes before its %d compressed bytes do", name, csize-n, csize)}
		}
		return nil
	}
	meter.Compressed = taken
	return meter
}

// crcReader checks the CRC-32 of a member's bytes when they end, and turns
// the decompressor's errors into signing.ErrMalformed ones. Its errors are
// sticky.
type crcReader struct {
	r    io.Reader
	crc  uint32
	want uint32
	n    int64
	size int64
	name string
	end  func() error
	err  error
}

func (c *crcReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
	c.n += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if c.n == c.size && c.crc != c.want {
			err = &signing.MalformedError{Format: "zip", Offset: -1,
				Reason: fmt.Sprintf("member %s's CRC-32 is %08x, its header says %08x", c.name, c.crc, c.want)}
		} else if c.end != nil {
			if e := c.end(); e != nil {
				err = e
			}
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = &signing.MalformedError{Format: "zip", Offset: -1,
			Reason: fmt.Sprintf("member %s's deflate stream runs past its compressed size", c.name), Err: err}
	default:
		if !errors.Is(err, signing.ErrMalformed) {
			err = &signing.MalformedError{Format: "zip", Offset: -1,
				Reason: fmt.Sprintf("member %s's data cannot be read: %v", c.name, err), Err: err}
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}
