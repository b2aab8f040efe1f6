// Package container reads archives, packages, images and compressed files
// as sequences of members, for the validator to judge each member as it
// judges a loose file (../shared/DESIGN.md, "Containers: one walker, the
// same pipeline").
//
// A Reader recognises one kind of container by content (Sniff) and walks
// its members in the container's own order (Walk). Walk never writes a
// member to disk: it streams each member's bytes to the caller through an
// io.Reader valid during the yield, decompressing as it goes, or reads
// them by the container's own random access (zip). Everything a hostile
// container can cost is capped by Limits; a cap reached is an error that
// names it (ErrLimit), and a member that cannot be read or trusted
// (encrypted, corrupt, unsupported compression, a name that is absolute,
// climbs out with "..", repeats an earlier one, a link) is passed to yield
// with Problem set, never skipped: the validator blocks it, saying what
// and where.
//
// Nesting is the caller's: a member that is itself a container is walked
// again through Sniff and Walk, with Limits.Depth counting the levels.
package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/codesignval/csv/internal/limits"
)

// Separator joins a container's path and a member's name in reports and
// policy globs: "dist/app.zip!/lib/native/x.dll". One separator for every
// kind and every depth ("a.tar.gz!/b.zip!/c.dll").
const Separator = "!/"

// Kind names a container format in reports ("zip", "tar", "deb", "rpm",
// "oci", "docker", "gzip", "xz", "zstd", "bzip2").
type Kind string

// MemberType is what a member is.
type MemberType uint8

// Member types. Only Regular members have bytes; directories are not passed
// to yield; links and other types are passed with Problem set.
const (
	Regular MemberType = iota
	Symlink
	Hardlink
	Other // device, FIFO, socket, whatever the container stores that is not a file
)

// Member is one member of a container, as the reader found it.
type Member struct {
	// Name is the member's path inside the container, '/'-separated,
	// relative, without "." or ".." elements or a trailing slash. A name
	// that could not be made so is reported as stored, with Problem set.
	Name string
	// Type says what the member is.
	Type MemberType
	// Link is a link's target, as stored.
	Link string
	// Size is the member's size once decompressed, as the container
	// declares it (-1 when it does not): the reader checks that the bytes
	// it delivers are exactly this many.
	Size int64
	// Mode is the member's permission bits, where the container stores
	// them (0 otherwise).
	Mode fs.FileMode
	// Problem, when not nil, says why the member cannot be judged: its
	// bytes are not delivered (yield's reader is nil) and the validator
	// blocks it. Problem wraps ErrMember, ErrLimit or
	// signing.ErrMalformed.
	Problem error
	// Attrs are extended attributes stored with the member (tar PAX
	// SCHILY.xattr.*, keyed by attribute name, e.g. "security.ima").
	Attrs map[string][]byte
	// Detach, when set (a container read by random access: a zip), may
	// be called during yield instead of reading the member on from yield's
	// reader: it returns a reader of the member's bytes from their start,
	// which does every check yield's reader does (declared size, checksum,
	// caps) and stays valid after yield returns, until Walk does: it may
	// be read concurrently with the walk, by another goroutine. Once it is
	// called, the walk reads the member no further.
	Detach func() io.Reader
	// Decompressed says the member is the content of a single compressed
	// file (x.ko.xz's x.ko), not a file a container lays down: the kernel
	// reads a compressed module or firmware file as it is stored, so what
	// it measures of the file (its fs-verity digest, its security.ima) is
	// the compressed bytes', not this content's.
	Decompressed bool
}

// Path is the report path of a member of the container at outer:
// outer + Separator + name.
func Path(outer, name string) string { return outer + Separator + name }

// Reader reads one kind of container.
type Reader interface {
	// Kind names the container format.
	Kind() Kind
	// Sniff reports whether a file whose first bytes are head (at most
	// SniffSize, fewer for a shorter file) and whose base name is name is
	// a container of this kind. Recognise by content; name only breaks ties
	// that content cannot (say so in the reader's documentation).
	Sniff(head []byte, name string) bool
	// Walk calls yield for every member, in the container's order, and
	// returns the first error yield returns, or an error about the
	// container itself (malformed, a cap reached, ctx done). r is the
	// member's bytes, valid only until yield returns, nil when m.Problem
	// is set; a read from r past the member's declared size, or a
	// checksum the container stores that does not match, is an error from
	// r (wrapping signing.ErrMalformed) at the read that finds it, at the
	// latest with io.EOF's place. Walk consumes at most what the caps in
	// lim allow, and checks ctx between members and during long reads.
	//
	// src is the container's bytes, size bytes of them (a loose file is an
	// *os.File; a nested container is its member's bytes held in memory,
	// see Limits.MemberInMemory); name is its base name (a compressed
	// single file, "x.ko.xz", yields one member named "x.ko").
	Walk(ctx context.Context, src io.ReaderAt, size int64, name string, lim *Limits, yield func(m *Member, r io.Reader) error) error
}

// Signed is implemented by a Reader whose containers carry a signature of
// their own that a format handler judges (an MSI or a cabinet is signed with
// Authenticode over the whole file): the pipeline then judges the file as
// that format (the handler whose Format is JudgedAs claims it too) and
// walks its members, where a file that two readings claim is otherwise
// blocked.
type Signed interface {
	Reader
	// JudgedAs names the format (cipolicy.Format) whose handler judges
	// the container file itself.
	JudgedAs() string
}

// SniffSize is how many bytes Sniff is given (the validator reads this much
// of every file anyway).
const SniffSize = 4096

// Limits caps what a container may cost. Every field has a default in
// internal/limits; the CLI can raise them (--max-container-*).
type Limits struct {
	// Depth is the nesting level of the container being walked (1 for a
	// container found on disk); MaxDepth caps it.
	Depth, MaxDepth int
	// MaxMembers caps the members of one container (directories count).
	MaxMembers int
	// MaxExpandedSize caps the bytes all members of one container, and of
	// the containers nested in it, decompress to (Expanded counts them:
	// share one Limits value down a nest).
	MaxExpandedSize int64
	// MaxRatio caps decompressed bytes per compressed byte, per member and
	// per container, once a member has expanded past RatioGrace bytes.
	MaxRatio   int64
	RatioGrace int64
	// MemberInMemory caps a member the caller must hold in memory to
	// judge it (a member of a streamed container that is a binary or a
	// nested container); the caller enforces it.
	MemberInMemory int64
	// Expanded counts the bytes delivered so far (readers add to it).
	Expanded *int64
}

// DefaultLimits are the caps of internal/limits, for a container found on
// disk (depth 1), with a fresh count of the bytes expanded.
func DefaultLimits() *Limits {
	var n int64
	return &Limits{Depth: 1, MaxDepth: limits.MaxContainerDepth, MaxMembers: limits.MaxContainerMembers,
		MaxExpandedSize: limits.MaxContainerSize, MaxRatio: limits.MaxContainerRatio,
		RatioGrace: limits.ContainerRatioGrace, MemberInMemory: limits.MaxMemberInMemory, Expanded: &n}
}

// ErrLimit is wrapped by errors about a container over a cap; the message
// names the cap and its value.
var ErrLimit = errors.New("container: over a cap")

// ErrMember is wrapped by a member's Problem when the member itself cannot
// be judged (encrypted, unsupported compression, link, duplicate or unsafe
// name).
var ErrMember = errors.New("container: member cannot be judged")

// ExternalError is a member's Problem (it wraps ErrMember) when what the
// container installs lies outside it: an installer's external cabinet or
// the files it lays down uncompressed from beside it. Name, when not
// empty, is the one file it names, relative to the container's own
// directory ('/'-separated, as the container stores it): the validator
// may find it there, in the tree it judges.
type ExternalError struct {
	Name   string
	Reason string
}

func (e *ExternalError) Error() string { return e.Reason }

// Unwrap returns ErrMember.
func (e *ExternalError) Unwrap() error { return ErrMember }

// LimitError says which cap a container reached.
type LimitError struct {
	// Cap is the cap's name as the CLI spells its flag
	// ("max-container-ratio"), Value its value.
	Cap   string
	Value int64
	// What says what reached it ("member lib/x.dll expands 2100:1").
	What string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("container: %s: over the cap %s=%d", e.What, e.Cap, e.Value)
}

// Is reports that a LimitError is ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Readers is every container kind csv opens, in the order Sniff is tried.
// Reader packages add themselves from csv/containers.go (the one list).
var readers []Reader

// Register adds r to the readers Sniff tries, after those already there.
func Register(r Reader) { readers = append(readers, r) }

// TailSize is how many of a file's last bytes SniffTail is given: a zip's
// end record with the longest comment.
const TailSize = 22 + 0xffff

// A TailSniffer is a Reader that also recognises its kind of container by
// the file's last bytes: a container appended to other bytes (a zip after
// a shell script), which extractors read (unzip, Python's zipfile, Java,
// libarchive skip what comes before) and Sniff does not recognise.
type TailSniffer interface {
	// SniffTail reports whether tail, the last bytes of a file (at most
	// TailSize, all of a shorter file), ends a container of this kind.
	SniffTail(tail []byte) bool
}

// SniffTail returns the kind of container that the last bytes of a file
// (at most TailSize) end, for a file that Sniff and the file formats do
// not recognise by its first bytes; "" when none. Such a file is blocked:
// csv does not read a container that does not start at the file's start.
func SniffTail(tail []byte) Kind {
	for _, r := range readers {
		if t, ok := r.(TailSniffer); ok && t.SniffTail(tail) {
			return r.Kind()
		}
	}
	return ""
}

// Sniff returns the reader for a file with these first bytes and base name,
// or nil when it is no container csv opens.
func Sniff(head []byte, name string) Reader {
	for _, r := range readers {
		if r.Sniff(head, name) {
			return r
		}
	}
	return nil
}
