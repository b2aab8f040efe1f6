// Package format is the seam between csv's pipeline and the kinds of file it
// judges. Each kind is one [Handler] in a package of its own (csv/format/pe,
// csv/format/elf; PowerShell scripts, catalogs, MSI and CAB next): it
// recognises its files, inspects them in the pipeline's one read (parsing
// headers, adding the digests it computes to the read, verifying
// signatures once the digests are known) and signs them. Package csv ranges
// over one list of handlers; nothing else in the pipeline knows a format.
//
// # Security
//
// Handlers read untrusted bytes. Each parses with bounds-checked parsers
// that check every length against what remains and a cap
// (internal/limits), and reports what it cannot accept as a
// [MalformedError]; the pipeline still recovers from a panic around each
// file, so that a bug in a handler becomes a finding, never a crash and
// never a pass. A handler never judges: it establishes facts (digests,
// verified signatures, attributes) that cipolicy judges.
package format

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/dmverity"
)

// Handler recognises, inspects and signs the files of one format.
type Handler interface {
	// Format is the format the handler recognises.
	Format() cipolicy.Format
	// Sniff reports whether the file is of the handler's format, by its
	// content (f.Head, and f.R for more). A format without magic numbers
	// (scripts) is recognised by its name and says so in its doc.
	Sniff(f *File) bool
	// Inspect parses the file's headers and establishes the facts need
	// asks for: it fills facts (Info as soon as the headers are read, so
	// that a report shows it even when a later part is malformed), adds
	// the digests it computes, and those its signatures need, to the read
	// p, and returns a function to call once p has read the whole file
	// (nil if there is nothing left to do): it verifies the signatures.
	// Whatever need says, a file whose signatures are malformed is
	// malformed. Errors are *MalformedError for what the file holds, any
	// other error for a failure to read it.
	Inspect(f *File, need cipolicy.Needs, opts *InspectOptions, p *Pass, facts *Facts) (finish func() error, err error)
	// Sign writes the file, signed, to out, reading it once. With
	// opts.Expect, a file whose digests differ from those is not signed:
	// the error wraps [ErrChanged].
	Sign(ctx context.Context, f *File, out Output, opts *SignOptions) (*Signed, error)
}

// Lookalike is implemented by a handler whose format's magic number files
// carry without being of the format (an "MZ" text file is no PE): such a
// file is of no format, and csv inspect shows it without a digest, as it
// always has, where it hashes the other files of no format.
type Lookalike interface {
	// LooksLike reports whether the file starts as the format's files
	// do, whatever Sniff says.
	LooksLike(f *File) bool
}

// SniffSize is how much of a file is read, once, before the handlers look
// at it: their headers come from these bytes.
const SniffSize = 4096

// File is one file being read, once, by the pipeline: its first bytes,
// random access to the rest for headers and trailers, and the sequential
// read that feeds every digest.
type File struct {
	// Head is the file's first bytes (up to SniffSize).
	Head []byte
	// R reads the file at any offset, Head from memory. Like Head, it is
	// valid until Stream is called.
	R io.ReaderAt
	// Size is the file's size when it was opened: a file that changes
	// size while it is read is refused.
	Size int64
	// Name is the file's base name as discovered (a link's own name),
	// which formats without magic numbers (scripts) are recognised by.
	Name string
	// Sidecar, for a loose file (nil for a container member), opens the
	// file beside it named Name+suffix, where formats keep what a file
	// cannot hold (a dm-verity image's IMAGE.verity, IMAGE.roothash): an
	// error wrapping fs.ErrNotExist when there is none. The caller closes
	// it.
	Sidecar func(suffix string) (*os.File, error)
	// Attrs are the extended attributes the pipeline read with the file
	// (csv/ima.go): security.ima, a loose file's own or its evmctl
	// sidecar's (FILE.sig), a tar member's from its PAX record
	// SCHILY.xattr.security.ima. AttrsFrom says where they came from,
	// for messages. Nil when the file has none.
	Attrs     map[string][]byte
	AttrsFrom string

	f   io.Reader
	buf []byte
	// kept, for a streamed file (NewStreamedFile), serves R; headInBuf
	// bytes of the head are at buf's start for Stream.
	kept      *kept
	headInBuf int
	// whole: buf[:Size] holds the whole file (NewWholeFile).
	whole bool
}

// NewWholeFile returns the File whose every byte is in buf[:size], read
// already by a read that found the file's end there: R reads from memory,
// and Stream reads nothing more. A file of a few KiB is so read in one
// read(2), where reading its head, then its tail (container.SniffTail),
// then the rest took three or four.
func NewWholeFile(buf []byte, size int) *File {
	return &File{Head: buf[:min(size, SniffSize)], R: bytes.NewReader(buf[:size]), Size: int64(size), f: eof{}, buf: buf, whole: true}
}

// eof is a reader at its end.
type eof struct{}

func (eof) Read([]byte) (int, error) { return 0, io.EOF }

// NewFile returns the File read from f (an *os.File, or any reader with
// ReadAt), of size bytes, whose first bytes buf[:n] are read already (f's
// offset is n); buf is the read buffer the rest streams through.
func NewFile(f interface {
	io.Reader
	io.ReaderAt
}, size int64, buf []byte, n int) *File {
	return &File{Head: buf[:n], R: binfmt.PrefixReader{Prefix: buf[:n], R: f}, Size: size, f: f, buf: buf}
}

// Stream feeds the whole file, in order, to every writer: Head, then the
// rest through the read buffer (which Head and R then no longer hold). It
// fails if the file does not have exactly Size bytes (it changed while it
// was read) and stops when ctx is done. It is called at most once.
func (f *File) Stream(ctx context.Context, writers ...io.Writer) error {
	if f.kept != nil {
		return f.stream(ctx, writers)
	}
	if f.whole {
		return Stream(ctx, f.f, f.buf, int(f.Size), f.Size, writers)
	}
	return Stream(ctx, f.f, f.buf, len(f.Head), f.Size, writers)
}

// Buffer is the file's read buffer, for a handler to reuse once the file
// is streamed (hashing its output, say).
func (f *File) Buffer() []byte { return f.buf }

// Stream feeds the bytes of file f to every writer: first buf[:n], already
// read, then the rest of the file through buf. It fails if the file does
// not have exactly size bytes (it changed while being read) and stops when
// ctx is done.
func Stream(ctx context.Context, f io.Reader, buf []byte, n int, size int64, writers []io.Writer) error {
	// Read ahead only where a core would otherwise wait: while as many
	// files stream as there are cores, each core hashes one already, and
	// the reader goroutine only adds its hand-offs (a validate run over
	// the bench corpus took 8% longer with it).
	streams := streaming.Add(1)
	defer streaming.Add(-1)
	if size-int64(n) >= streamAheadMin && len(buf) > 0 && len(writers) > 0 && int(streams) < runtime.GOMAXPROCS(0) {
		return streamAhead(ctx, f, buf, n, size, writers)
	}
	return streamSeq(ctx, f, buf, n, size, writers)
}

// streaming counts the Streams under way in the process.
var streaming atomic.Int32

// streamSeq is Stream reading and writing by turns.
func streamSeq(ctx context.Context, f io.Reader, buf []byte, n int, size int64, writers []io.Writer) error {
	total := int64(0)
	for {
		for _, w := range writers {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		total += int64(n)
		if total > size {
			return FileChanged(nil)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		n, err = f.Read(buf)
		if errors.Is(err, io.EOF) {
			// A reader may return its last bytes with io.EOF (a
			// decompressor does).
			for _, w := range writers {
				if _, err := w.Write(buf[:n]); err != nil {
					return err
				}
			}
			if total += int64(n); total != size {
				return FileChanged(nil)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// streamAheadMin is the size past the bytes read already from which
// Stream reads ahead: a goroutine reads the next block while the writers
// hash this one (a file of a few KiB gains nothing from it).
const streamAheadMin = 1 << 20

// block is a block streamAhead's reader read: b[:n], and the read's error.
type block struct {
	b   []byte
	n   int
	err error
}

// streamAhead is Stream with the reads done by a goroutine, one block
// ahead of the writers, in buf and a second buffer of its size by turns:
// reading (a system call and a copy from the page cache, or a member's
// decompression) overlaps hashing. The writers are called from this
// goroutine, in order, as Stream calls them. It returns once the reader
// has stopped: no read of f is under way after it, and buf is the
// caller's again.
func streamAhead(ctx context.Context, f io.Reader, buf []byte, n int, size int64, writers []io.Writer) error {
	full := make(chan block, 1)
	free := make(chan []byte, 2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	free <- make([]byte, len(buf))
	wg.Go(func() {
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			k, err := f.Read(b)
			select {
			case full <- block{b, k, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	})
	write := func(p []byte) error {
		for _, w := range writers {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
	cur := block{b: buf, n: n}
	total := int64(0)
	for {
		if err := write(cur.b[:cur.n]); err != nil {
			return err
		}
		if total += int64(cur.n); total > size {
			return FileChanged(nil)
		}
		if cur.err != nil {
			if !errors.Is(cur.err, io.EOF) {
				return cur.err
			}
			// A reader may return its last bytes with io.EOF (a
			// decompressor does).
			if total != size {
				return FileChanged(nil)
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		free <- cur.b // the reader's for the block after next
		cur = <-full
	}
}

// errChanged says a file changed size while it was read. Its text is part
// of reports ("cannot read: ...").
var errChanged = errors.New("the file changed size while it was being read")

// FileChanged turns the error of a read that ended early (or nil) into the
// error that says the file changed while it was read; other errors are
// returned as they are.
func FileChanged(err error) error {
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errChanged
	}
	return err
}

// IsChanged reports whether err says a file changed size while it was
// read.
func IsChanged(err error) bool { return errors.Is(err, errChanged) }

// Pass is the one read of a file: before it streams, handlers add the
// writers it feeds (digesters) and the digests it yields.
type Pass struct {
	writers []io.Writer
	sums    []sum
	closers []func() error
}

type sum struct {
	alg cipolicy.HashAlgorithm
	h   hash.Hash
}

// Write adds w to the writers fed every byte of the file, in order.
func (p *Pass) Write(w io.Writer) { p.writers = append(p.writers, w) }

// Digest records h, which a writer of the pass feeds (or which is one), as
// the file's digest a: once the pass is done, its sum is Digests[a].
func (p *Pass) Digest(a cipolicy.HashAlgorithm, h hash.Hash) {
	p.sums = append(p.sums, sum{a, h})
}

// Hash adds h to the writers and records it as digest a.
func (p *Pass) Hash(a cipolicy.HashAlgorithm, h hash.Hash) {
	p.Write(h)
	p.Digest(a, h)
}

// OnDone adds a function to call after the last byte (a digester's Close).
func (p *Pass) OnDone(f func() error) { p.closers = append(p.closers, f) }

// Writers are the writers the pass feeds.
func (p *Pass) Writers() []io.Writer { return p.writers }

// Done calls the OnDone functions and returns the digests.
func (p *Pass) Done() (cipolicy.Digests, error) {
	for _, c := range p.closers {
		if err := c(); err != nil {
			return nil, err
		}
	}
	var d cipolicy.Digests
	for _, s := range p.sums {
		d.Set(s.alg, s.h.Sum(nil))
	}
	return d, nil
}

// Facts are what a handler learns of a file besides its digests.
type Facts struct {
	// Info is the format's own facts (its headers, where its signatures
	// lie), for people and scripts: the JSON report and csv inspect write
	// it under the format's name.
	Info Info
	// Signed says the file carries a signature, whether or not it
	// verifies.
	Signed bool
	// Signatures are the file's signatures, verified, when the needs ask
	// for them (nil otherwise; empty when it has none).
	Signatures []*signing.Signature
	// Attributes are the file's attributes (a PE version resource), when
	// the needs ask for them and the file has them.
	Attributes *cipolicy.FileAttributes
}

// Info is a format's own facts about a file. Its JSON form (a JSON object)
// is written under the format's name in reports.
type Info interface {
	// Describe is the file's kind for people, the format row of csv
	// inspect ("PE32+ (machine 0x8664, subsystem 3, 4 sections)").
	Describe() string
	// WriteText writes, for people, what csv inspect shows after the
	// digests (where the signatures lie): row writes one "key: value"
	// line, escaping the value; w takes lines of its own, which the Info
	// escapes itself.
	WriteText(w io.Writer, row func(key, value string))
}

// InspectOptions are what every inspection of a run shares.
type InspectOptions struct {
	// Certificates complete signature chains and identify the signers of
	// signatures that carry no certificates.
	Certificates []*signing.Certificate
	// Cache holds the certificates and chains the run's signatures share
	// (every file of a build carries the same chains).
	Cache *authenticode.CertCache
	// Verity, when set, are the dm-verity parameters (salt, block sizes)
	// a filesystem image without a hash device beside it is hashed with,
	// in the one read, as veritysetup format would with them: its root
	// hash is then its dmverity_sha256.
	Verity *dmverity.Params
}

// Output is where Sign writes a signed file: sequentially, then a few
// small patches (a header's checksum). *os.File satisfies it.
type Output interface {
	io.Writer
	io.WriterAt
	io.ReaderAt
}

// SignOptions configure a handler's Sign.
type SignOptions struct {
	// Key signs; Chain is the certificate chain, leaf first.
	Key   crypto.Signer
	Chain []*x509.Certificate
	// Append keeps the signatures a file carries and adds one; a format
	// that holds one signature refuses it.
	Append bool
	// Authenticode configures the Authenticode formats' signatures (its
	// Append is set from Append).
	Authenticode authenticode.SignOptions
	// PageHashes asks the PE handler for a page-hash table in the
	// signature (signtool /ph, osslsigncode -ph); other formats ignore it.
	PageHashes bool
	// MSIExtended asks the MSI handler for the extended signature
	// (\x05MsiDigitalSignatureEx, osslsigncode -add-msi-dse); other
	// formats ignore it.
	MSIExtended bool
	// Expect, if not nil, holds the digests validation saw: the file's
	// SHA256 and the digest its format's hash rules compare
	// (cipolicy.Format.RuleDigest). A file read otherwise is not signed.
	Expect cipolicy.Digests
	// Sum asks for the SHA-256 of the signed file.
	Sum bool
}

// Signed is what a handler's Sign did.
type Signed struct {
	// SHA256 is the signed file's digest (nil unless asked for, or known
	// anyway).
	SHA256   []byte
	Warnings []string
}

// ErrOneSignature is wrapped when SignOptions.Append asks a format that
// holds one signature (ELF) for a second. Handlers report it with
// signing.Errorf, in words of their own ("an ELF file carries one appended
// signature: it cannot take a second").
var ErrOneSignature = errors.New("format: the file cannot take a second signature")

// ErrChanged is wrapped when a file changed between validation and signing.
// Handlers and the pipeline report it with signing.Errorf, in words of
// their own ("the file changed after it was validated: SHA256 ...").
var ErrChanged = errors.New("format: the file changed after it was validated")

// MalformedError says why a file that claims to be of a format cannot be
// judged: what is wrong and where. Offset is -1 when there is no single
// place. It is csv.MalformedBinaryError; handlers leave Path empty and the
// pipeline fills it.
type MalformedError struct {
	Path   string
	Format cipolicy.Format
	Offset int64
	Reason string
	// Err is the parser's own error, if any (errors.As finds the
	// *signing.MalformedError, errors.Is signing.ErrMalformed).
	Err error
}

// Unwrap returns the parser's error.
func (e *MalformedError) Unwrap() error { return e.Err }

func (e *MalformedError) Error() string {
	return e.Path + ": " + e.Message()
}

// Message is the error without the path, as reports print it next to the
// path.
func (e *MalformedError) Message() string {
	name := ""
	if e.Format != cipolicy.FormatOther {
		name = " " + e.Format.Label()
	}
	if e.Offset < 0 {
		return fmt.Sprintf("malformed%s: %s", name, e.Reason)
	}
	return fmt.Sprintf("malformed%s at offset %#x: %s", name, e.Offset, e.Reason)
}

// Malformed returns the *MalformedError of format f that says what a
// parser of internal/binfmt found (a *binfmt.MalformedError), or err as it
// is (a read error).
//
// The reason of a parser of the file's own format ("PE", "ELF") reads as
// it is; a nested structure's is prefixed by its name ("appended
// signature: ..."), since the error names the file's format.
func Malformed(f cipolicy.Format, err error) error {
	var me *signing.MalformedError
	if errors.As(err, &me) {
		reason := me.Reason
		if me.Format != "PE" && me.Format != "ELF" {
			reason = me.Format + ": " + reason
		}
		return &MalformedError{Format: f, Offset: me.Offset, Reason: reason, Err: me}
	}
	return err
}

// MalformedAs is Malformed for a handler whose subject's parsers name
// their own format otherwise (own: "MSI", "APPX", ...): their reasons read
// as they are, a nested structure's prefixed by its name. The error wraps
// err whole.
func MalformedAs(f cipolicy.Format, err error, own ...string) error {
	var me *signing.MalformedError
	if errors.As(err, &me) {
		reason := me.Reason
		if !slices.Contains(own, me.Format) {
			reason = me.Format + ": " + reason
		}
		return &MalformedError{Format: f, Offset: me.Offset, Reason: reason, Err: err}
	}
	return err
}
