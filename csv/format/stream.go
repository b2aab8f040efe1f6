package format

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// A Streamer is a Handler that can also inspect a file it cannot read by
// random access: a large member of a compressed archive, read once, front
// to back (NewStreamedFile). Its InspectStream is Inspect for such a file:
// before the read, f.R serves only f.Head (the file's first bytes, at most
// limits.StreamHead); what the handler must read elsewhere it names with
// f.Keep, and reads in finish, after the read, when f.R serves those
// ranges too. The digests it adds to the pass must be chosen without
// those ranges (a PE's signatures are not read yet: it computes every
// digest they could need).
type Streamer interface {
	Handler
	InspectStream(f *File, need cipolicy.Needs, opts *InspectOptions, p *Pass, facts *Facts) (finish func() error, err error)
}

// ErrNotKept is the error of a read, from a file streamed once, of bytes
// that are neither its first bytes nor kept (File.Keep).
var ErrNotKept = errors.New("format: bytes of a streamed file that were not kept")

// NewStreamedFile returns the file whose bytes r yields, once, front to
// back, size of them; head holds its first bytes (at most
// limits.StreamHead, as many as there are for a shorter file), which the
// File keeps a copy of; r yields the bytes after them. The file is read
// through buf.
func NewStreamedFile(r io.Reader, size int64, head, buf []byte) *File {
	k := &kept{head: slices.Clone(head), size: size}
	n := copy(buf, head) // Stream starts with the head, from buf
	return &File{Head: k.head, R: k, Size: size, f: r, buf: buf, kept: k, headInBuf: n}
}

// Streamed reports whether the file is read once, front to back, without
// random access (NewStreamedFile).
func (f *File) Streamed() bool { return f.kept != nil }

// Keep asks that the n bytes at off of a streamed file be kept as they
// pass, for f.R to serve once the file is read (ranges past the end are
// cut to it); for a file read by random access it does nothing. The bytes
// kept for one file are capped (limits.MaxStreamKept): past it Keep
// returns an error wrapping signing.ErrLimit.
func (f *File) Keep(off, n int64) error {
	k := f.kept
	if k == nil || n <= 0 || off >= f.Size {
		return nil
	}
	if off < 0 {
		return fmt.Errorf("format: keeping bytes at offset %d", off)
	}
	n = min(n, f.Size-off)
	if k.total+n > limits.MaxStreamKept {
		return signing.Errorf(signing.ErrLimit, "csv reads this file (of %d bytes, a member of a container) once, as it streams by, and would have to keep %d bytes of it, over the limit of %d", f.Size, k.total+n, limits.MaxStreamKept)
	}
	k.total += n
	k.ranges = append(k.ranges, keptRange{off: off, b: make([]byte, n)})
	slices.SortFunc(k.ranges, func(a, b keptRange) int { return cmp.Compare(a.off, b.off) })
	return nil
}

// kept serves a streamed file's first bytes and, once it is read, the
// ranges kept.
type kept struct {
	head   []byte
	size   int64
	ranges []keptRange
	total  int64
	done   bool // the file was read to its end
}

type keptRange struct {
	off int64
	b   []byte
}

func (k *kept) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("format: read at negative offset %d", off)
	}
	if off >= k.size {
		return 0, io.EOF
	}
	want := p
	var short error
	if rest := k.size - off; int64(len(p)) > rest {
		want, short = p[:rest], io.EOF
	}
	if end := off + int64(len(want)); end <= int64(len(k.head)) {
		return copy(want, k.head[off:]), short
	}
	if k.done {
		for _, r := range k.ranges {
			if off >= r.off && off+int64(len(want)) <= r.off+int64(len(r.b)) {
				return copy(want, r.b[off-r.off:]), short
			}
		}
	}
	return 0, fmt.Errorf("%w: %d bytes at offset %#x", ErrNotKept, len(want), off)
}

// capture is the writer that fills the kept ranges as the file passes.
type capture struct {
	k   *kept
	pos int64
}

func (c *capture) Write(p []byte) (int, error) {
	start, end := c.pos, c.pos+int64(len(p))
	for _, r := range c.k.ranges {
		rs, re := r.off, r.off+int64(len(r.b))
		if re <= start || rs >= end {
			continue
		}
		lo, hi := max(rs, start), min(re, end)
		copy(r.b[lo-rs:hi-rs], p[lo-start:hi-start])
	}
	c.pos = end
	return len(p), nil
}

// stream reads a streamed file to its end through writers, keeping the
// ranges asked for.
func (f *File) stream(ctx context.Context, writers []io.Writer) error {
	if len(f.kept.ranges) > 0 {
		writers = append(writers, &capture{k: f.kept})
	}
	if err := Stream(ctx, f.f, f.buf, f.headInBuf, f.Size, writers); err != nil {
		return err
	}
	f.kept.done = true
	return nil
}
