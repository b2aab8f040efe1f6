// Package compress reads single-stream compressed files (gzip, xz, zstd,
// bzip2) as containers: of the members of the tar the stream holds
// ("x.tar.gz"), or else of one member, the decompressed file ("x.ko.xz"
// holds "x.ko"), so that compressed kernel modules reach the ELF judge.
//
// A stream is recognised by its magic number: gzip 1F 8B 08, xz FD 37 7A
// 58 5A 00, zstd 28 B5 2F FD (or a skippable frame, 5x 2A 4D 18), bzip2
// "BZh" and a block size digit. What the stream holds is a tar when its
// first 512 decompressed bytes are a tar header with a right checksum
// (tar.IsHeader). The one member of a stream that is not a tar is named
// after the file minus its compression suffix, as the tools strip it (.gz
// -gz .z -z _z .xz .lzma .zst .zstd .bz2 .bz; .tgz .taz .tbz .tbz2 .txz
// .tlz .tzst become .tar); a name without a known
// suffix is kept as it is ("a.bin" holds "a.bin").
//
// Every decompressor reads all the concatenated parts of its stream, as
// gzip(1), xz(1), zstd(1) and bzip2(1) do: gzip members, xz streams and
// their padding, zstd frames and skippable frames, bzip2 streams. Bytes
// after the last part that are not another part are an error of the
// container, where gzip(1) only warns "trailing garbage ignored": a tool
// that reads further (or a different tool) could find another payload
// there, so csv blocks rather than judges part of what ships.
//
// # Security
//
// The compressed bytes are untrusted. Walk caps the stream's expansion:
// decompressed bytes per compressed byte consumed (Limits.MaxRatio past
// Limits.RatioGrace, counted under the decompressor) and the decompressed
// total (Limits.MaxExpandedSize), both for the whole stream, bytes the tar
// skips included, so work is linear in the input. zstd windows and xz
// dictionaries are capped at limits.MaxContainerWindow before the
// decoder allocates them (xz: every block's header, found through the
// streams' indexes before decoding). The
// decoder's checksums (gzip CRC-32, xz check, zstd content checksum,
// bzip2 CRCs) are verified at the end of each part: bytes already
// delivered from a part whose checksum then fails make Walk return an
// error.
package compress

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/tar"
	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// Format is a compression format.
type Format uint8

// The formats read.
const (
	Gzip Format = iota + 1
	XZ
	Zstd
	Bzip2
	// LZMA is the legacy .lzma format (LZMA-alone), which has no magic
	// number: Detect never returns it; LZMAReader recognises it by its
	// name (.lzma, .tlz) and a header that holds, and a Debian package's
	// data.tar.lzma is read by its name.
	LZMA
)

var formatNames = [...]string{Gzip: "gzip", XZ: "xz", Zstd: "zstd", Bzip2: "bzip2", LZMA: "lzma"}
var tarNames = [...]string{Gzip: "tar.gz", XZ: "tar.xz", Zstd: "tar.zst", Bzip2: "tar.bz2", LZMA: "tar.lzma"}

func (f Format) String() string {
	if int(f) < len(formatNames) && formatNames[f] != "" {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// Detect returns the format whose magic number head starts with, or 0.
func Detect(head []byte) Format {
	switch {
	case len(head) >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8:
		return Gzip
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return XZ
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && head[1] == 0x2a && head[2] == 0x4d && head[3] == 0x18:
		return Zstd // a skippable frame first
	case len(head) >= 4 && head[0] == 'B' && head[1] == 'Z' && head[2] == 'h' && head[3] >= '1' && head[3] <= '9':
		return Bzip2
	}
	return 0
}

// Reader reads files compressed in one format. Its Kind is the format's
// name ("gzip"): the interface's Kind takes no file, so errors about a
// stream that holds a tar name it "tar.gz", and KindOf tells it from the
// file.
type Reader struct{ Format Format }

var _ container.Reader = Reader{}

// The readers, one per format, for the list of readers.
var (
	GzipReader  = Reader{Gzip}
	XZReader    = Reader{XZ}
	ZstdReader  = Reader{Zstd}
	Bzip2Reader = Reader{Bzip2}
)

// LZMAReader reads LZMA-alone files (.lzma, .tlz: xz --format=lzma,
// tar --lzma), which tar and xz -d extract.
var LZMAReader = Reader{LZMA}

// Kind is the format's name: "gzip", "xz", "zstd", "bzip2", "lzma".
func (r Reader) Kind() container.Kind { return container.Kind(r.Format.String()) }

// Sniff reports whether head starts with the format's magic number; name is
// not used, but for LZMA, which has no magic number: a file named .lzma or
// .tlz whose header holds (properties under 225, an uncompressed size
// unknown or under 2^48).
func (r Reader) Sniff(head []byte, name string) bool {
	if r.Format == LZMA {
		lower := strings.ToLower(name)
		if !strings.HasSuffix(lower, ".lzma") && !strings.HasSuffix(lower, ".tlz") || len(head) < 13 || head[0] >= 9*5*5 {
			return false
		}
		n := binary.LittleEndian.Uint64(head[5:13])
		return n == 1<<64-1 || n < 1<<48
	}
	return Detect(head) == r.Format
}

// Unsupported recognises compressed files csv does not decompress (lz4,
// lzip, lzop, compress's .Z), which tar -x --use-compress-program or the
// tools themselves extract: Walk refuses the file (Kind "compressed"),
// since what it holds cannot be judged.
type Unsupported struct{}

var _ container.Reader = Unsupported{}

// Kind is "compressed".
func (Unsupported) Kind() container.Kind { return "compressed" }

// unsupported names the format whose magic number head starts with, or "".
func unsupported(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x04, 0x22, 0x4d, 0x18}), bytes.HasPrefix(head, []byte{0x02, 0x21, 0x4c, 0x18}):
		return "lz4"
	case len(head) >= 5 && bytes.HasPrefix(head, []byte("LZIP")) && head[4] <= 1:
		return "lzip"
	case bytes.HasPrefix(head, []byte{0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n'}):
		return "lzop"
	case len(head) >= 3 && head[0] == 0x1f && head[1] == 0x9d && head[2]&0x60 == 0 && head[2]&0x1f >= 9 && head[2]&0x1f <= 16:
		return "compress (.Z)"
	}
	return ""
}

// Sniff reports lz4, lzip, lzop and .Z files by their magic numbers.
func (Unsupported) Sniff(head []byte, _ string) bool { return unsupported(head) != "" }

// Walk yields nothing and returns an error about the file, which the
// caller blocks whatever --include says of member names (the file may
// hold anything).
func (Unsupported) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	var head [9]byte
	n, _ := src.ReadAt(head[:], 0)
	return unsupportedError(unsupported(head[:n]))
}

// unsupportedError is Unsupported's error: it is container.ErrMember.
type unsupportedError string

func (e unsupportedError) Error() string {
	return fmt.Sprintf("the file is compressed with %s, which csv does not decompress: what it holds cannot be judged", string(e))
}

func (e unsupportedError) Is(target error) bool { return target == container.ErrMember }

// KindOf is the kind of a file of this format: "tar.gz" (and so on) when
// it decompresses to a tar, the format's name otherwise or when its start
// does not decompress. It decompresses 512 bytes, from at most the first
// MiB of src (a bzip2 block, an xz chunk or a zstd block holds them).
func (r Reader) KindOf(src io.ReaderAt, size int64) container.Kind {
	if CheckWindow(r.Format, src, size) != nil {
		return r.Kind() // the decoder would allocate the window first
	}
	d, err := open(r.Format, bufio.NewReader(io.NewSectionReader(src, 0, min(size, 1<<20))))
	if err != nil {
		return r.Kind()
	}
	defer d.Close()
	var blk [tar.BlockSize]byte
	if _, err := io.ReadFull(d, blk[:]); err == nil && tar.IsHeader(blk[:]) {
		return container.Kind(tarNames[r.Format])
	}
	return r.Kind()
}

// Walk decompresses the file and yields the members of the tar it holds,
// or its one member (see the package documentation).
func (r Reader) Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	w := Walker{Format: r.Format}
	return w.Walk(ctx, io.NewSectionReader(src, 0, size), name, lim, yield)
}

// Walker walks one compressed stream.
type Walker struct {
	Format Format
	// Tar, when set, walks a stream that holds a tar (a Debian package
	// sets it for its two tars, sharing names and the member count);
	// Tar.Format is set to the stream's kind when empty.
	Tar *tar.Walker
	// TarOnly refuses a stream that does not hold a tar.
	TarOnly bool
}

// Walk decompresses src (name is the file's base name, for the one member
// of a stream that holds no tar).
func (w *Walker) Walk(ctx context.Context, src io.Reader, name string, lim *container.Limits, yield func(*container.Member, io.Reader) error) error {
	kind := w.Format.String()
	if ra, ok := src.(*io.SectionReader); ok {
		if err := CheckWindow(w.Format, ra, ra.Size()); err != nil {
			return err
		}
	}
	in := &container.Counter{R: src}
	d, err := open(w.Format, bufio.NewReaderSize(in, 64<<10))
	if err != nil {
		return malformed(kind, in.N, "reading the stream header", err)
	}
	defer d.Close()
	s := &stream{r: d, in: in, ctx: ctx, lim: lim, kind: kind}
	out := bufio.NewReaderSize(s, 64<<10)
	head, err := out.Peek(tar.BlockSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if tar.IsHeader(head) && binfmt.Sniff(head) != binfmt.Other {
		// A tar header can start as a binary does (its name field is the
		// first 100 bytes: "\x7fELF\x02\x01\x01"): gzip -d lays down
		// that binary, tar -x the tar's members. Judging one reading
		// would ship the other unjudged.
		// Refused as a whole (not one blocked member, which --include
		// could leave out): neither reading is judged.
		return &signing.MalformedError{Format: kind, Offset: 0,
			Reason: fmt.Sprintf("the stream decompresses to a file that is both a tar and a %s binary: %s -d lays down the binary, tar -x the tar's members", strings.ToUpper(string(binfmt.Sniff(head))), kind)}
	}
	if tar.IsHeader(head) || w.Tar == nil && tar.Claims(head, Stem(name)) {
		tw := w.Tar
		if tw == nil {
			tw = &tar.Walker{}
		}
		if tw.Format == "" {
			tw.Format = tarNames[w.Format]
		}
		s.kind = tw.Format
		return tw.Walk(ctx, out, lim, yield)
	}
	if w.TarOnly {
		return &signing.MalformedError{Format: kind, Offset: -1, Reason: "the stream does not hold a tar"}
	}
	m := &container.Member{Name: Stem(name), Type: container.Regular, Size: -1, Decompressed: true}
	var body io.Reader = &container.Meter{R: out, Ctx: ctx, Lim: lim, Name: m.Name, Declared: -1, Format: kind}
	if _, err := container.CleanName(m.Name); err != nil {
		m.Problem, body = err, nil // a base name the caller did not give
	}
	if err := yield(m, body); err != nil {
		return err
	}
	// Read the rest: the checksums are at the end of each part, and bytes
	// after the last part are refused there.
	if _, err := io.Copy(io.Discard, out); err != nil {
		return err
	}
	return nil
}

// CheckWindow refuses an xz or lzma stream (size bytes of ra) whose
// dictionary is over limits.MaxContainerWindow, every xz block's, before a
// decoder allocates it (ulikunitz/xz allocates whatever a header declares,
// up to 4 GiB). Readers of formats that carry such streams (an RPM
// payload) call it too.
func CheckWindow(f Format, ra io.ReaderAt, size int64) error {
	switch f {
	case XZ:
		return checkXZDict(ra, size)
	case LZMA:
		// The header: properties, then the dictionary size (LE32).
		var h [5]byte
		if _, err := ra.ReadAt(h[:], 0); err == nil {
			if d := binary.LittleEndian.Uint32(h[1:]); d > limits.MaxContainerWindow {
				return &container.LimitError{Cap: "max-container-window", Value: limits.MaxContainerWindow,
					What: fmt.Sprintf("the lzma stream's dictionary of %d bytes", d)}
			}
		}
	}
	return nil
}

// suffixes maps a compressed file's suffix to what replaces it.
// (gzip -d also strips -gz, -z, _z and makes .taz .tar; xz -d strips
// .lzma and makes .tlz .tar: "x.ps1-gz" lays down x.ps1.)
var suffixes = []struct{ from, to string }{
	{".tgz", ".tar"}, {".taz", ".tar"}, {".tbz2", ".tar"}, {".tbz", ".tar"}, {".txz", ".tar"}, {".tlz", ".tar"}, {".tzst", ".tar"},
	{".lz4", ""}, {".lz", ""}, {".lzo", ""},
	{".gz", ""}, {"-gz", ""}, {".z", ""}, {"-z", ""}, {"_z", ""}, {".xz", ""}, {".lzma", ""}, {".zst", ""}, {".zstd", ""}, {".bz2", ""}, {".bz", ""},
}

// Stem is the name of the one member of a compressed file named name: name
// minus its compression suffix, matched without regard to case ("x.ko.xz":
// "x.ko", "a.tgz": "a.tar"), or name itself when it has no known suffix or
// is nothing but the suffix.
func Stem(name string) string {
	lower := strings.ToLower(name)
	for _, s := range suffixes {
		if strings.HasSuffix(lower, s.from) && len(name) > len(s.from) {
			return name[:len(name)-len(s.from)] + s.to
		}
	}
	return name
}

// decoder is a decompressor with its resources.
type decoder interface {
	io.Reader
	Close()
}

type nopClose struct{ io.Reader }

func (nopClose) Close() {}

type zstdDecoder struct{ *zstd.Decoder }

func (z zstdDecoder) Close() { z.Decoder.Close() }

type gzipDecoder struct{ *kgzip.Reader }

func (g gzipDecoder) Close() { _ = g.Reader.Close() }

// open starts decompressing br.
func open(f Format, br *bufio.Reader) (decoder, error) {
	switch f {
	case Gzip:
		z, err := kgzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		z.Multistream(true)
		return gzipDecoder{z}, nil
	case XZ:
		z, err := xz.ReaderConfig{}.NewReader(br)
		if err != nil {
			return nil, err
		}
		return nopClose{z}, nil
	case Zstd:
		z, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(limits.MaxContainerWindow),
			zstd.WithDecoderMaxMemory(limits.MaxContainerWindow),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		return zstdDecoder{z}, nil
	case Bzip2:
		return nopClose{bzip2.NewReader(br)}, nil
	case LZMA:
		z, err := lzma.NewReader(br)
		if err != nil {
			return nil, err
		}
		return nopClose{z}, nil
	}
	return nil, fmt.Errorf("compress: unknown format %d", f)
}

// stream is the decompressed stream: it enforces the stream's caps
// (ratio, expanded total, ctx) and turns the decompressor's errors into
// MalformedErrors, once and for all (a later Read returns the same error).
type stream struct {
	r           io.Reader
	in          *container.Counter
	ctx         context.Context
	lim         *container.Limits
	kind        string
	n, sinceCtx int64
	err         error
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	s.sinceCtx += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			err = &container.LimitError{Cap: "max-container-window", Value: limits.MaxContainerWindow,
				What: fmt.Sprintf("the %s stream's window (at compressed offset %d)", s.kind, s.in.N)}
		} else {
			err = malformed(s.kind, s.in.N, "decompressing", err)
		}
	}
	if cerr := s.check(); cerr != nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

func (s *stream) check() error {
	if s.sinceCtx >= 1<<20 {
		s.sinceCtx = 0
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
	if s.lim == nil {
		return nil
	}
	if s.lim.MaxExpandedSize > 0 && s.n > s.lim.MaxExpandedSize {
		return &container.LimitError{Cap: "max-container-size", Value: s.lim.MaxExpandedSize,
			What: fmt.Sprintf("the %s stream decompresses to more than %d bytes", s.kind, s.lim.MaxExpandedSize)}
	}
	if s.lim.MaxRatio > 0 && s.n > s.lim.RatioGrace && s.n/max(s.in.N, 1) > s.lim.MaxRatio {
		return &container.LimitError{Cap: "max-container-ratio", Value: s.lim.MaxRatio,
			What: fmt.Sprintf("the %s stream expands %d bytes from %d", s.kind, s.n, s.in.N)}
	}
	return nil
}

func malformed(kind string, at int64, what string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &signing.MalformedError{Format: kind, Offset: at, Reason: what + ": " + err.Error(), Err: err}
}

// checkXZDict refuses an xz file one of whose blocks has an LZMA2
// dictionary larger than limits.MaxContainerWindow, before the decoder
// allocates it (github.com/ulikunitz/xz takes the size from the block
// header). It finds every block from the streams' ends, as xz --list does:
// stream padding, the footer, the index, whose records give each block's
// size. A file whose structure this walk cannot follow is malformed (xz
// refuses it too).
func checkXZDict(ra io.ReaderAt, size int64) error {
	bad := func(at int64, f string, args ...any) error {
		return &signing.MalformedError{Format: "xz", Offset: at, Reason: fmt.Sprintf(f, args...)}
	}
	end := size
	for end > 0 {
		// Stream padding: zero bytes, a multiple of four.
		var w [4]byte
		for end >= 4 {
			if _, err := ra.ReadAt(w[:], end-4); err != nil {
				return bad(end-4, "reading: %v", err)
			}
			if w != [4]byte{} {
				break
			}
			end -= 4
		}
		if end < 24 {
			return bad(end, "no stream footer")
		}
		var foot [12]byte
		if _, err := ra.ReadAt(foot[:], end-12); err != nil {
			return bad(end-12, "reading the stream footer: %v", err)
		}
		if foot[10] != 'Y' || foot[11] != 'Z' {
			return bad(end-12, "no stream footer magic number")
		}
		checkSize := int64(xzCheckSizes[foot[9]&0x0f])
		indexSize := (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4
		indexStart := end - 12 - indexSize
		if indexStart < 12 {
			return bad(end-12, "an index of %d bytes, past the file's start", indexSize)
		}
		// Two passes over the index, which is not held in memory: the
		// blocks' total size gives the stream's start, then each block.
		index := io.NewSectionReader(ra, indexStart, indexSize)
		var total int64
		err := xzIndex(index, checkSize, func(b int64) error {
			total += b
			if total > indexStart {
				return fmt.Errorf("the blocks (%d bytes and more) begin before the file", total)
			}
			return nil
		})
		if err != nil {
			return bad(indexStart, "index: %v", err)
		}
		start := indexStart - total - 12
		if start < 0 {
			return bad(indexStart, "the index's blocks (%d bytes) begin before the file", total)
		}
		var head [6]byte
		if _, err := ra.ReadAt(head[:], start); err != nil || string(head[:]) != "\xfd7zXZ\x00" {
			return bad(start, "no stream header where the index puts it")
		}
		off := start + 12
		err = xzIndex(index, checkSize, func(b int64) error {
			if err := checkXZBlock(ra, off, b); err != nil {
				return err
			}
			off += b
			return nil
		})
		if err != nil {
			return err
		}
		end = start
	}
	return nil
}

// xzCheckSizes is the size of an xz block's check by check type.
var xzCheckSizes = [16]uint8{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

// xzIndex reads an xz index and calls block with the size of each block it
// lists, padding and check included.
func xzIndex(r *io.SectionReader, checkSize int64, block func(int64) error) error {
	br := bufio.NewReader(io.NewSectionReader(r, 0, r.Size()))
	if b, err := br.ReadByte(); err != nil || b != 0 {
		return errors.New("no index indicator")
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	if n > uint64(r.Size()/2) { // each record takes two bytes at least
		return fmt.Errorf("%d records in %d bytes", n, r.Size())
	}
	for range n {
		unpadded, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		if _, err := binary.ReadUvarint(br); err != nil {
			return err
		}
		if unpadded <= uint64(checkSize) || unpadded > 1<<62 {
			return fmt.Errorf("a block of %d bytes", unpadded)
		}
		data := int64(unpadded) - checkSize
		if err := block((data+3)&^3 + checkSize); err != nil {
			return err
		}
	}
	return nil
}

// checkXZBlock refuses the block at off when its LZMA2 dictionary is over
// the cap.
func checkXZBlock(ra io.ReaderAt, off, size int64) error {
	// Read the header's size, then the header, no more than the block
	// holds: the reads add up to the file's size at most.
	var h [1024]byte
	if _, err := ra.ReadAt(h[:1], off); err != nil {
		return &signing.MalformedError{Format: "xz", Offset: off, Reason: fmt.Sprintf("reading a block header: %v", err)}
	}
	hsize := (int(h[0]) + 1) * 4
	if h[0] == 0 || int64(hsize) > size {
		return &signing.MalformedError{Format: "xz", Offset: off, Reason: "a block header missing or larger than its block"}
	}
	if _, err := ra.ReadAt(h[1:hsize], off+1); err != nil {
		return &signing.MalformedError{Format: "xz", Offset: off, Reason: fmt.Sprintf("reading a block header: %v", err)}
	}
	blk := h[1:hsize]
	flags := blk[0]
	p := 1
	uvarint := func() (uint64, bool) {
		v, k := binary.Uvarint(blk[p:])
		if k <= 0 {
			return 0, false
		}
		p += k
		return v, true
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, ok := uvarint(); !ok {
				return &signing.MalformedError{Format: "xz", Offset: off, Reason: "a block header's sizes"}
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := uvarint()
		psize, ok2 := uvarint()
		if !ok1 || !ok2 || psize > uint64(len(blk)-p) {
			return &signing.MalformedError{Format: "xz", Offset: off, Reason: "a block header's filters"}
		}
		props := blk[p : p+int(psize)]
		p += int(psize)
		if id == 0x21 && len(props) == 1 && props[0] <= 40 {
			d := props[0]
			dict := uint64(2|d&1) << (d/2 + 11)
			if d == 40 {
				dict = 1<<32 - 1
			}
			if dict > limits.MaxContainerWindow {
				return &container.LimitError{Cap: "max-container-window", Value: limits.MaxContainerWindow,
					What: fmt.Sprintf("the xz block at %d has a dictionary of %d bytes", off, dict)}
			}
		}
	}
	return nil
}
