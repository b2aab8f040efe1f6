package rpm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

const (
	cpioHeaderSize = 110
	cpioTrailer    = "TRAILER!!!"
	maxSymlink     = 4096

	modeType    = 0o170000
	modeRegular = 0o100000
	modeDir     = 0o040000
	modeSymlink = 0o120000
)

// archive walks a cpio stream (the uncompressed payload).
type archive struct {
	ctx        context.Context
	lim        *container.Limits
	r          *bufio.Reader
	pos        int64 // in the uncompressed payload
	yield      func(*container.Member, io.Reader) error
	compressed func() int64
	names      container.Names
	members    int
	payloadOff int64
	comp       string

	// files is the main header's file list (nil: none), which rpm
	// installs from: each payload entry must be a file of it, of the same
	// type and size.
	files map[string]headerFile

	links   map[linkKey]*linkGroup
	pending []*linkGroup // groups in order of first link; those without data wait for it
}

// linkKey identifies a file that several cpio entries (hard links) name.
type linkKey struct{ devMajor, devMinor, ino uint32 }

type linkGroup struct {
	key       linkKey
	nlink     int
	members   []*container.Member
	delivered string // the name the data came with, once it has
	done      bool   // the data came
}

// cpioHeader is a newc/crc entry header.
type cpioHeader struct {
	crc                                 bool
	ino, mode, nlink, size, nameSize    uint32
	devMajor, devMinor, check, uid, gid uint32
	at                                  int64 // of the header in the uncompressed payload
}

// payloadErr is a malformation of the uncompressed payload: offsets there
// are not file offsets, so the reason says where and Offset is -1.
func (a *archive) payloadErr(at int64, format string, args ...any) error {
	return &signing.MalformedError{Format: "RPM", Offset: -1,
		Reason: fmt.Sprintf("cpio payload at uncompressed offset %#x: ", at) + fmt.Sprintf(format, args...)}
}

// readFull reads len(b) bytes of the payload.
func (a *archive) readFull(b []byte, what string) error {
	n, err := io.ReadFull(a.r, b)
	a.pos += int64(n)
	if err != nil {
		return a.streamErr(err, what)
	}
	return nil
}

// streamErr describes an error reading the payload.
func (a *archive) streamErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return a.payloadErr(a.pos, "the payload ends in %s", what)
	}
	if errors.Is(err, container.ErrLimit) || errors.Is(err, signing.ErrMalformed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &signing.MalformedError{Format: "RPM", Offset: -1,
		Reason: fmt.Sprintf("decompressing the %s payload at uncompressed offset %#x (%s): %v", a.comp, a.pos, what, err), Err: err}
}

// discard skips n bytes of the payload (all of it, n < 0), counting them
// against the container's expanded size.
func (a *archive) discard(n int64, what string) (int64, error) {
	m := &container.Meter{R: a.r, Ctx: a.ctx, Lim: a.lim, Name: what, Declared: -1, Format: "RPM"}
	var r io.Reader = m
	if n >= 0 {
		r = io.LimitReader(m, n)
	}
	got, err := io.Copy(io.Discard, r)
	a.pos += got
	if err != nil {
		return got, a.streamErr(err, what)
	}
	if n >= 0 && got < n {
		return got, a.payloadErr(a.pos, "the payload ends in %s", what)
	}
	return got, nil
}

func (a *archive) pad(what string) error {
	if p := (4 - a.pos%4) % 4; p > 0 {
		var b [3]byte
		return a.readFull(b[:p], what)
	}
	return nil
}

func (a *archive) readHeader() (*cpioHeader, string, error) {
	var b [cpioHeaderSize]byte
	at := a.pos
	if err := a.readFull(b[:], "a cpio header (no TRAILER!!!)"); err != nil {
		return nil, "", err
	}
	h := &cpioHeader{at: at}
	switch string(b[:6]) {
	case "070701":
	case "070702":
		h.crc = true
	default:
		if bytes.Equal(b[:6], []byte("07070X")) {
			return nil, "", a.payloadErr(at, "rpm's stripped cpio format (07070X: rpm 6, or files over 4 GiB) is not supported")
		}
		return nil, "", a.payloadErr(at, "no cpio newc magic 070701 or 070702 (%q)", b[:6])
	}
	// newc: ino mode uid gid nlink mtime filesize devmajor devminor
	// rdevmajor rdevminor namesize check.
	fields := []*uint32{&h.ino, &h.mode, &h.uid, &h.gid, &h.nlink, nil, &h.size,
		&h.devMajor, &h.devMinor, nil, nil, &h.nameSize, &h.check}
	for i, f := range fields {
		s := b[6+8*i : 14+8*i]
		v, err := strconv.ParseUint(string(s), 16, 32)
		if err != nil {
			return nil, "", a.payloadErr(at+6+8*int64(i), "cpio header field %d is %q, not 8 hex digits", i, s)
		}
		if f != nil {
			*f = uint32(v)
		}
	}
	if h.nameSize == 0 || h.nameSize > limits.MaxRPMCpioName {
		return nil, "", a.payloadErr(at, "cpio name size %d is not between 1 and %d", h.nameSize, limits.MaxRPMCpioName)
	}
	name := make([]byte, h.nameSize)
	if err := a.readFull(name, "a cpio name"); err != nil {
		return nil, "", err
	}
	if name[len(name)-1] != 0 {
		return nil, "", a.payloadErr(at+cpioHeaderSize, "the cpio name does not end with a NUL byte")
	}
	if err := a.pad("a cpio name's padding"); err != nil {
		return nil, "", err
	}
	return h, string(name[:len(name)-1]), nil
}

func (a *archive) walk() error {
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		h, stored, err := a.readHeader()
		if err != nil {
			return err
		}
		if stored == cpioTrailer {
			return a.flushLinks()
		}
		a.members++
		if a.lim != nil && a.lim.MaxMembers > 0 && a.members > a.lim.MaxMembers {
			return &container.LimitError{Cap: "max-container-members", Value: int64(a.lim.MaxMembers),
				What: fmt.Sprintf("the package holds more than %d payload entries", a.lim.MaxMembers)}
		}
		if err := a.inHeader(h, stored); err != nil {
			return err
		}
		if err := a.entry(h, stored); err != nil {
			return err
		}
	}
}

// inHeader checks a payload entry against the main header's file list,
// when there is one. rpm installs a file of the type the header gives, from
// the payload entry of its name (a directory's or symbolic link's entry
// whose header file is a regular one is installed as a regular file
// holding the entry's bytes), and refuses an entry not in the header: csv
// reads entries as cpio does, so the two must agree. A hard link's entry
// without the data (size 0) is exempt from the size check.
func (a *archive) inHeader(h *cpioHeader, stored string) error {
	if a.files == nil {
		return nil
	}
	name, err := container.CleanName(stored)
	if err != nil {
		return nil // the member's Problem
	}
	f, ok := a.files[container.NameKey(name)]
	switch {
	case !ok:
		return a.payloadErr(h.at, "entry %s is not in the main header's file list (rpm refuses to install it)", name)
	case f.mode&modeType != h.mode&modeType:
		return a.payloadErr(h.at, "entry %s has mode %#o, the main header %#o: rpm installs it as the header says, cpio as the entry does", name, h.mode, f.mode)
	case h.mode&modeType == modeRegular && int64(h.size) != f.size && !(h.size == 0 && h.nlink > 1):
		return a.payloadErr(h.at, "entry %s holds %d bytes, the main header says %d", name, h.size, f.size)
	}
	return nil
}

func (a *archive) member(h *cpioHeader, stored string, typ container.MemberType) *container.Member {
	mode := fs.FileMode(h.mode & 0o777)
	for bit, fm := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if h.mode&bit != 0 {
			mode |= fm
		}
	}
	m := &container.Member{Type: typ, Size: int64(h.size), Mode: mode}
	name, err := container.CleanName(stored)
	m.Name = name
	if err == nil {
		err = a.names.Add(name)
	}
	m.Problem = err
	return m
}

func (a *archive) entry(h *cpioHeader, stored string) error {
	switch h.mode & modeType {
	case modeDir:
		_, err := a.discard(int64(h.size), "a directory's data")
		if err == nil {
			err = a.pad("data padding")
		}
		return err
	case modeSymlink:
		m := a.member(h, stored, container.Symlink)
		if h.size > maxSymlink {
			return a.payloadErr(h.at, "symbolic link %q has a %d-byte target", stored, h.size)
		}
		target := make([]byte, h.size)
		if err := a.readFull(target, "a symbolic link's target"); err != nil {
			return err
		}
		if err := a.pad("data padding"); err != nil {
			return err
		}
		m.Link = string(target)
		if m.Problem == nil {
			m.Problem = fmt.Errorf("%w: %s is a symbolic link to %q", container.ErrMember, m.Name, m.Link)
		}
		return a.yield(m, nil)
	case modeRegular:
	default:
		m := a.member(h, stored, container.Other)
		if m.Problem == nil {
			m.Problem = fmt.Errorf("%w: %s is not a regular file (mode %#o)", container.ErrMember, m.Name, h.mode)
		}
		if _, err := a.discard(int64(h.size), "a special file's data"); err != nil {
			return err
		}
		if err := a.pad("data padding"); err != nil {
			return err
		}
		return a.yield(m, nil)
	}
	m := a.member(h, stored, container.Regular)
	if h.nlink > 1 {
		return a.hardLink(h, m)
	}
	if err := a.deliver(h, m); err != nil {
		return err
	}
	return a.pad("data padding")
}

// data returns a reader of the entry's bytes that checks, as they flow,
// the crc format's checksum and the caps. The ratio is the member's bytes
// to the compressed bytes the payload has consumed so far, its own and
// those before it: the decompressor reads ahead, so a member's own share
// cannot be told, and this bound is reached by no member of a payload
// whose overall ratio is under the cap.
func (a *archive) data(h *cpioHeader, name string) *container.Meter {
	return &container.Meter{
		R:   &sumReader{a: a, r: a.r, left: int64(h.size), check: h.crc, want: h.check, name: name, at: h.at},
		Ctx: a.ctx, Lim: a.lim, Name: name, Declared: int64(h.size), Format: "RPM",
		Compressed: a.compressed,
	}
}

// deliver yields m with the entry's bytes streamed (nil when m has a
// Problem), then reads what the consumer left of them, so that the
// checksum is checked and the stream is at the entry's end.
func (a *archive) deliver(h *cpioHeader, m *container.Member) error {
	d := a.data(h, m.Name)
	var r io.Reader = d
	if m.Problem != nil {
		r = nil
	}
	if err := a.yield(m, r); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, d); err != nil {
		return err
	}
	return nil
}

// hardLink handles an entry of a file with several links. cpio's newc
// format, as rpm and GNU cpio write it, stores the data once, with the
// last link of the file; the links before it have no data. csv yields
// every link as a member of its own with the file's bytes: the links
// before the data wait until it comes, which is then held in memory (up to
// Limits.MemberInMemory) and yielded once per link, in the archive's
// order.
func (a *archive) hardLink(h *cpioHeader, m *container.Member) error {
	key := linkKey{h.devMajor, h.devMinor, h.ino}
	g := a.links[key]
	if g == nil {
		g = &linkGroup{key: key, nlink: int(h.nlink)}
		a.links[key] = g
		a.pending = append(a.pending, g)
	}
	if g.done {
		// A link after the one that carried the data: GNU cpio links it
		// to the file it extracted; csv no longer has the bytes.
		if m.Problem == nil {
			m.Problem = fmt.Errorf("%w: %s is a hard link to %s stored after the file's data", container.ErrMember, m.Name, g.delivered)
		}
		m.Type = container.Hardlink
		m.Link = g.delivered
		if _, err := a.discard(int64(h.size), "a hard link's data"); err != nil {
			return err
		}
		if err := a.pad("data padding"); err != nil {
			return err
		}
		return a.yield(m, nil)
	}
	g.members = append(g.members, m)
	if h.size == 0 && len(g.members) < g.nlink {
		return a.pad("data padding") // waits for the link with the data
	}
	// Out of a.pending: flushLinks skips a group with its data (removing
	// it here, a search and a shift per file, was quadratic).
	g.delivered, g.done = m.Name, true
	for _, x := range g.members {
		x.Size = int64(h.size)
	}
	if len(g.members) == 1 {
		if err := a.deliver(h, m); err != nil {
			return err
		}
		return a.pad("data padding")
	}
	inMemory := int64(limits.MaxMemberInMemory)
	if a.lim != nil && a.lim.MemberInMemory > 0 {
		inMemory = a.lim.MemberInMemory
	}
	if int64(h.size) > inMemory {
		for _, x := range g.members[:len(g.members)-1] {
			if x.Problem == nil {
				x.Problem = &container.LimitError{Cap: "max-member-in-memory", Value: inMemory,
					What: fmt.Sprintf("hard link %s to %s, of %d bytes, held in memory to be yielded once per link", x.Name, m.Name, h.size)}
			}
			if err := a.yield(x, nil); err != nil {
				return err
			}
		}
		if err := a.deliver(h, m); err != nil {
			return err
		}
		return a.pad("data padding")
	}
	buf, err := io.ReadAll(a.data(h, m.Name))
	if err != nil {
		return err
	}
	for _, x := range g.members {
		var r io.Reader
		if x.Problem == nil {
			r = bytes.NewReader(buf)
		}
		if err := a.yield(x, r); err != nil {
			return err
		}
	}
	return a.pad("data padding")
}

// flushLinks yields, at the trailer, the links whose data never came.
func (a *archive) flushLinks() error {
	for _, g := range a.pending {
		if g.done {
			continue
		}
		for _, m := range g.members {
			m.Type = container.Hardlink
			if m.Problem == nil {
				m.Problem = &signing.MalformedError{Format: "RPM", Offset: -1,
					Reason: fmt.Sprintf("%s is one of %d hard links of a file whose data no link carries (%d links stored)", m.Name, g.nlink, len(g.members))}
			}
			if err := a.yield(m, nil); err != nil {
				return err
			}
		}
	}
	a.pending = nil
	return nil
}

// sumReader reads an entry's data, left bytes of it, summing them for the
// crc format's checksum, which it checks at the last byte.
type sumReader struct {
	a     *archive
	r     io.Reader
	left  int64
	sum   uint32
	want  uint32
	check bool
	name  string
	at    int64
	err   error
}

func (s *sumReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.a.pos += int64(n)
	s.left -= int64(n)
	if s.check {
		for _, c := range p[:n] {
			s.sum += uint32(c)
		}
	}
	switch {
	case s.left == 0:
		if s.check && s.sum != s.want {
			s.err = s.a.payloadErr(s.at, "member %s's data sums to %#x, its crc header says %#x", s.name, s.sum, s.want)
			return n, s.err
		}
		return n, nil
	case err == io.EOF:
		s.err = s.a.payloadErr(s.a.pos, "the payload ends in member %s's data, %d bytes short", s.name, s.left)
		return n, s.err
	case err != nil:
		s.err = s.a.streamErr(err, "member "+s.name+"'s data")
		return n, s.err
	}
	return n, nil
}
