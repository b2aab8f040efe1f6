package csv

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/oci"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/fsverity"
)

// Format is a file's format: "pe", "elf" or "other". It is
// [cipolicy.Format], the one format type, under the name this package has
// always used.
type Format = cipolicy.Format

// Formats.
const (
	FormatPE    = cipolicy.FormatPE
	FormatELF   = cipolicy.FormatELF
	FormatOther = cipolicy.FormatOther
)

// FormatPowerShell is a PowerShell script (told by its name's extension).
const FormatPowerShell = cipolicy.FormatPowerShell

// MalformedBinaryError says why a file that claims to be of a format
// cannot be judged: what is wrong and where. Offset is -1 when there is no
// single place. It is the format handlers' [format.MalformedError].
type MalformedBinaryError = format.MalformedError

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

// Inspection is the facts about one file, established in one read.
type Inspection struct {
	Format  Format
	Size    int64
	Digests cipolicy.Digests
	// Info is the format's own facts (its handler's: *pe.Info, *elf.Info),
	// nil for a file of no format or whose headers could not be read.
	Info format.Info
	// Signatures are the file's signatures, verified, when asked for (nil
	// otherwise); Attributes its file attributes (a PE version resource),
	// when asked for.
	Signatures []*signing.Signature
	Attributes *cipolicy.FileAttributes
	// Err is a *MalformedBinaryError or *UnreadableError when the file
	// could not be fully inspected; Format is then what it claimed to be.
	Err error
	// Container is the kind of container the file is, when it is one
	// whose members are judged (Format is then FormatOther, but for a
	// container with a signature of its own, container.Signed: an MSI is
	// judged as FormatMSI, then its members).
	Container container.Kind

	signed bool
	// walk, for a container, judges its members (csv/members.go), and
	// closes the file; release closes it when walk is not called.
	walk    func(ctx context.Context, emit func(*member) error) error
	release func()
	// members are the container's members as the worker inspects them.
	members <-chan *member
	// deferred: the inspection computed the needs without their Later
	// part (cipolicy.Needs.Later), which asked for something.
	deferred bool
	// judged is the file's result when the worker judged the first read
	// final (Validator.ValidateTo's again), nil otherwise.
	judged *Result
	// fsverityPath is a loose file's path, where its fs-verity signature
	// sidecar is looked for (csv/fsverity.go).
	fsverityPath string
	// decompressed: the member is a single compressed file's content
	// (container.Member.Decompressed).
	decompressed bool
}

// Signed reports whether the file carries a signature.
func (in *Inspection) Signed() bool { return in.signed }

// NeedsFunc says which digests to compute for a file of a format.
type NeedsFunc func(cipolicy.Format) cipolicy.Needs

// AllFacts is a NeedsFunc that asks for every digest and fact.
func AllFacts(cipolicy.Format) cipolicy.Needs { return cipolicy.AllNeeds() }

// sniffSize is how much of a file is read to tell its format.
const sniffSize = format.SniffSize

// InspectOptions configure InspectFile. The zero value computes every
// digest and verifies signatures with the certificates they carry.
type InspectOptions struct {
	// Certificates complete signature chains and identify the signers of
	// ELF appended signatures, which carry no certificates.
	Certificates []*signing.Certificate
}

// InspectFile inspects the file at path, computing every digest and
// verifying every signature. buf, if not nil, is the read buffer to use (at
// least 4 KiB).
func InspectFile(ctx context.Context, path string, buf []byte, opts InspectOptions) *Inspection {
	if len(buf) < sniffSize {
		buf = make([]byte, limits.ReadBuffer)
	}
	cfg := &inspectConfig{needs: AllFacts, opts: format.InspectOptions{Certificates: opts.Certificates, Cache: authenticode.NewCertCache()}, follow: true}
	return inspect(ctx, path, buf, cfg)
}

// InspectMembers inspects the file at path as InspectFile does and, when it
// is a container (an archive, package, image or compressed file), each of
// its members, nested containers depth first, calling each with every
// member's path ("x.zip!/lib/a.dll"), its inspection, or why it could not
// be judged (then in is nil: a member the container marks as such, or the
// point past which the container could not be read, at the container's
// path). lim nil is DefaultContainerLimits.
func InspectMembers(ctx context.Context, path string, buf []byte, opts InspectOptions, lim *container.Limits, each func(rel string, in *Inspection, problem error) error) (*Inspection, error) {
	if len(buf) < sniffSize {
		buf = make([]byte, limits.ReadBuffer)
	}
	o := Options{ContainerLimits: lim}
	var excluded atomic.Int64
	o.openContainers(&excluded)
	cfg := &inspectConfig{needs: AllFacts, opts: format.InspectOptions{Certificates: opts.Certificates, Cache: authenticode.NewCertCache()}, follow: true,
		containers: o.containers, rel: filepath.Base(path)}
	if st, err := os.Stat(path); err == nil && st.IsDir() && oci.IsLayoutDir(path) {
		cfg.layout = true
	}
	in := inspect(ctx, path, buf, cfg)
	if in.walk == nil {
		return in, nil
	}
	err := in.walk(ctx, func(m *member) error {
		display := filepath.ToSlash(path) + strings.TrimPrefix(m.rel, cfg.rel)
		if m.problem != nil {
			return each(display, nil, m.problem)
		}
		return each(display, m.in, nil)
	})
	var stop *emitStop
	if errors.As(err, &stop) {
		err = stop.err
	}
	return in, err
}

// inspectConfig is what one inspection needs besides the file.
type inspectConfig struct {
	needs  NeedsFunc
	opts   format.InspectOptions
	follow bool
	// noSidecar: the walk's listing shows the file has no IMA sidecar
	// (entry.noSidecar).
	noSidecar bool
	// containers, when set, opens containers (archives, packages, images,
	// compressed files) and judges their members (csv/members.go);
	// needsAt then says what to compute for a file or member at a path
	// (rel is the file's), and containerOnly opens the file only if it is
	// a container (the walk passes it for its members alone).
	containers    *containerConfig
	needsAt       func(rel string, f cipolicy.Format) cipolicy.Needs
	rel           string
	containerOnly bool
	// layout: path is an OCI image layout directory, read as one
	// container (container/oci.Dir).
	layout bool
	// again says whether a member whose first read deferred facts must be
	// read again with them (inspectInOrder's again, at the member's path).
	again func(rel string, in *Inspection) bool
	// dispatch, when set, passes the inspection of a member held in memory
	// (size bytes) to a free worker, which calls task with its read
	// buffer; it reports false when none can take it now (the caller then
	// inspects the member itself).
	dispatch func(size int64, task func(buf []byte)) bool
	// help runs tasks dispatched by any worker until done is closed (a
	// walk waiting for its detached members).
	help func(done <-chan struct{})
	// inTree says the file was found under a directory root, so that the
	// files beside it are judged too (an installer's external cabinet);
	// besideDir is then, while its members are walked, its directory.
	inTree    bool
	besideDir string
}

// at returns the configuration for a member at rel.
func (c *inspectConfig) at(rel string) *inspectConfig {
	m := *c
	m.rel = rel
	m.containerOnly = false
	if c.needsAt != nil {
		m.needs = func(f cipolicy.Format) cipolicy.Needs { return c.needsAt(rel, f) }
	}
	return &m
}

// full returns the configuration for a second read of the member at rel,
// with the needs its first read deferred.
func (c *inspectConfig) full(rel string) *inspectConfig {
	m := c.at(rel)
	first := m.needs
	m.needs = func(f cipolicy.Format) cipolicy.Needs { return first(f).Full() }
	m.again = nil
	return m
}

// inspect reads the file at path once: its first block tells the format
// (the first handler whose Sniff says so) and holds the headers; the
// handler reads what else it needs first (a PE certificate table or an ELF
// signature trailer, small and at the end), so that the digests its
// signatures need are known; then the whole file streams through buf into
// every digest needed, and the handler verifies the signatures. A panic in
// a parser becomes a MalformedBinaryError.
func inspect(ctx context.Context, path string, buf []byte, cfg *inspectConfig) (in *Inspection) {
	in = &Inspection{Format: FormatOther}
	only := cfg.containerOnly // the walk passes it for its members alone
	if cfg.needsAt != nil && cfg.needs == nil {
		cfg = cfg.at(cfg.rel)
	}
	defer func() {
		if r := recover(); r != nil {
			in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
				Reason: fmt.Sprintf("internal error while parsing (please report it): %v", r), Err: panicerr.New(r)}
		}
	}()
	if cfg.layout && cfg.containers != nil {
		inspectLayout(path, cfg, in)
		return in
	}
	f, st, err := openRegular(path, cfg.follow)
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: err}
		return in
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if !st.Mode().IsRegular() {
		in.Err = &UnreadableError{Path: path, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
		return in
	}
	in.Size = st.Size()
	var file *format.File
	if in.Size > sniffSize && in.Size < int64(len(buf)) {
		// All of it, in one read, and the read that finds its end.
		n, err := io.ReadFull(f, buf[:in.Size+1])
		if !errors.Is(err, io.ErrUnexpectedEOF) || int64(n) != in.Size {
			in.Err = &UnreadableError{Path: path, Err: format.FileChanged(err)}
			return in
		}
		file = format.NewWholeFile(buf, n)
	} else {
		n, err := io.ReadFull(f, buf[:min(int64(sniffSize), in.Size)])
		if err != nil {
			in.Err = &UnreadableError{Path: path, Err: format.FileChanged(err)}
			return in
		}
		file = format.NewFile(f, in.Size, buf, n)
	}
	file.Name = filepath.Base(path)
	file.Sidecar = sidecars(path) // a loose file's sidecars (csv/image.go)
	if cfg.containers != nil {
		h, r := sniff(file), container.Sniff(file.Head, file.Name)
		if r != nil {
			signed := h != nil && judgedAs(r, h.Format())
			if h != nil && !signed {
				// Judged as the one, the file would ship the other unjudged.
				in.Format, in.Container, in.Err = h.Format(), r.Kind(), bothError(path, h.Format(), r.Kind())
				return in
			}
			if signed && !only {
				// A container with a signature of its own (an MSI, a
				// cabinet): judged as its format, then its members.
				inspectData(ctx, path, file, cfg, in)
				if in.Err != nil {
					return in // its members are not walked: the file is blocked
				}
			}
			// Its members are judged, in the worker, after the inspection
			// is passed on (see walkContainer): the file stays open.
			in.Container = r.Kind()
			g := f
			f = nil
			wcfg := cfg
			if cfg.inTree {
				c := *cfg
				c.besideDir = filepath.Dir(path)
				wcfg = &c
			}
			in.walk = func(ctx context.Context, emit func(*member) error) error {
				defer g.Close()
				return walkContainer(ctx, wcfg, r, g, in.Size, cfg.rel, file.Name, 1, new(int64), emit)
			}
			in.release = func() { g.Close() }
			return in
		}
		if kind, err := appendedContainer(file.R, in.Size, file.Head); err != nil {
			in.Err = &UnreadableError{Path: path, Err: format.FileChanged(err)}
			return in
		} else if kind != "" {
			in.Err = appendedContainerError(path, kind)
			return in
		}
	}
	if only {
		return in // not a container: excluded
	}
	in.fsverityPath = path // fs-verity: a loose file's sidecar (csv/fsverity.go)
	// IMA (csv/ima.go): the file's security.ima, or its sidecar.
	if file.Attrs, file.AttrsFrom, err = fileIMA(f, path, !cfg.noSidecar); err != nil {
		in.Err = err
		return in
	}
	inspectData(ctx, path, file, cfg, in)
	return in
}

// inspectLayout makes in the container of the OCI image layout directory
// at path: its images' files are its members, judged in the worker after
// the inspection is passed on (see walkContainer), as a tarball's are.
func inspectLayout(path string, cfg *inspectConfig, in *Inspection) {
	d := oci.NewDir(path)
	r := oci.Reader{}
	in.Container = r.Kind()
	in.walk = func(ctx context.Context, emit func(*member) error) error {
		defer d.Close()
		return walkContainer(ctx, cfg, r, d, 0, cfg.rel, filepath.Base(path), 1, new(int64), emit)
	}
	in.release = func() { d.Close() }
}

// judgedAs reports whether r's containers are files of format f, judged as
// such as well as walked (container.Signed).
func judgedAs(r container.Reader, f Format) bool {
	s, ok := r.(container.Signed)
	return ok && s.JudgedAs() == string(f)
}

// bothError is the error of a file that is at once of a format csv judges
// and a container (a tar whose first member's name is "\x7fELF..."): the
// binary and the container's members are different files, and an
// extractor lays down the members csv would not judge as the binary.
func bothError(path string, f Format, k container.Kind) error {
	return &MalformedBinaryError{Path: path, Format: f, Offset: 0,
		Reason: fmt.Sprintf("the file reads both as %s and as a %s container, whose members an extractor lays down: csv judges neither reading alone", strings.ToUpper(string(f)), k)}
}

// inspectData inspects a file whose first bytes are read (file.Head): the
// part of inspect after the file is open, for loose files and container
// members alike.
func inspectData(ctx context.Context, path string, file *format.File, cfg *inspectConfig, in *Inspection) {
	var err error
	var pass format.Pass
	var facts format.Facts
	var finish func() error // verifies signatures once the digests are known
	h := sniff(file)
	if h != nil {
		in.Format = h.Format()
	}
	need := cfg.needs(in.Format)
	in.deferred = !need.Later.IsZero()
	if h != nil {
		if st, ok := h.(format.Streamer); ok && file.Streamed() {
			finish, err = st.InspectStream(file, need, &cfg.opts, &pass, &facts)
		} else if file.Streamed() {
			err = fmt.Errorf("csv: internal error: a %s file cannot be inspected as it streams by", in.Format.Label())
		} else {
			finish, err = h.Inspect(file, need, &cfg.opts, &pass, &facts)
		}
		in.setFacts(&facts)
		if err != nil {
			in.Err = fileError(path, in.Format, err)
			return
		}
	} else if kind := format.Unjudgeable(file.Head); kind != "" {
		// A binary csv cannot judge (Mach-O): blocked, never skipped.
		in.Err = format.UnjudgeableError(path, kind)
		return
	} else if !need.Digests.Has(cipolicy.SHA256) || lookalike(file) {
		// Not a binary: judged by nothing, hashed only if asked (inspect),
		// and a file that only starts as a binary does not even then.
		return
	}
	if in.Size > limits.MaxBinarySize {
		in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
			Reason: fmt.Sprintf("file is %d bytes, over the limit of %d", in.Size, limits.MaxBinarySize)}
		return
	}
	if need.Digests.Has(cipolicy.SHA256) {
		pass.Hash(cipolicy.SHA256, sha256.New())
	}
	// The fs-verity file digest, for the formats it applies to
	// (cipolicy.FSVeritySHA256): as flat as the SHA256, in the same read;
	// and for a built-in signature in a sidecar (csv/fsverity.go).
	fsv, err := fsveritySidecar(in, need)
	if err != nil {
		in.Err = fileError(path, in.Format, err)
		return
	}
	if (need.Digests.Has(cipolicy.FSVeritySHA256) || fsv != nil) && cipolicy.FSVeritySHA256.AppliesTo(in.Format) {
		pass.Hash(cipolicy.FSVeritySHA256, fsverity.New())
	}
	imaCheck := startIMA(file, &pass) // IMA (csv/ima.go)
	if ws := pass.Writers(); len(ws) > 0 || file.Streamed() {
		if err := file.Stream(ctx, ws...); err != nil {
			if ctx.Err() != nil {
				in.Err = ctx.Err()
			} else {
				in.Err = &UnreadableError{Path: path, Err: err}
			}
			return
		}
	}
	if in.Digests, err = pass.Done(); err != nil {
		in.Err = &UnreadableError{Path: path, Err: err}
		return
	}
	if finish != nil {
		err := finish()
		in.setFacts(&facts)
		if err != nil {
			in.Err = fileError(path, in.Format, err)
		}
	}
	if fsv != nil && in.Err == nil {
		fsv.verify(in, &cfg.opts) // csv/fsverity.go
	}
	imaCheck.finish(path, in, cfg.opts.Certificates, cfg.opts.Cache) // IMA (csv/ima.go)
}

// setFacts copies what the handler learnt.
func (in *Inspection) setFacts(f *format.Facts) {
	in.Info, in.signed, in.Signatures, in.Attributes = f.Info, f.Signed, f.Signatures, f.Attributes
}

// fileError names the file in a handler's error: a *MalformedBinaryError
// for what the file holds, an *UnreadableError for a failure to read it.
func fileError(path string, f Format, err error) error {
	var me *format.MalformedError
	if errors.As(err, &me) {
		e := *me
		e.Path, e.Format = path, f
		return &e
	}
	return &UnreadableError{Path: path, Err: err}
}
