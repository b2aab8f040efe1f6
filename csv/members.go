package csv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// Containers (archives, packages, images, compressed files) are judged by
// their members: a worker that finds one (inspect) passes the container's
// own inspection on at once, then walks its members in the container's
// order and inspects each as it inspects a loose file, nested containers
// depth first, passing each member on through a channel as it is decided;
// the emitter reads them at the container's place in the run's order (see
// inspectInOrder). Members of one container are inspected by one worker,
// one after the other; separate containers and loose files go to the
// others.

// containerConfig is what opening containers needs.
type containerConfig struct {
	lim container.Limits
	// include and exclude match member paths as they match files.
	include, exclude []string
	// excluded counts members --exclude or --include left out.
	excluded func()
}

// DefaultContainerLimits are the caps containers get unless raised
// (internal/limits).
func DefaultContainerLimits() container.Limits {
	l := *container.DefaultLimits()
	l.Depth, l.Expanded = 0, nil // set per walk
	return l
}

// member is one member of a container, decided: its path (relative to the
// root, "dist/app.zip!/lib/x.dll" as rel "app.zip!/lib/x.dll"), and its
// inspection, or why it was not inspected.
type member struct {
	rel string
	in  *Inspection
	// problem: the member cannot be judged (Member.Problem, or the
	// container could not be read past it: then rel is the container's).
	problem error
	// container: the member is itself a container, whose members follow.
	container container.Kind
	// skipped, when set, says why the member is not judged (a link to a
	// member judged at its own path).
	skipped string
	// ready, when set, is closed once in is set: the member is inspected
	// by another worker (dispatch).
	ready chan struct{}
}

// memberLink is a link member, settled once the whole container is known.
type memberLink struct {
	rel, name, target string
	hard              bool
	problem           error
}

// links settles a container's link members (symbolic and hard links),
// which a packager or an installer lays down as links or as copies of their
// targets: a link to a file of the container judged at its own path, or to
// a directory of such files, ships nothing csv has not judged and is
// listed as skipped; a link that leads out of the container, to nothing,
// or through more than maxLinkHops links, is blocked.
type links struct {
	files, dirs map[string]struct{} // by container.NameKey
	pending     []memberLink
	targets     map[string]string // a symbolic link's name -> its target
}

const maxLinkHops = 40 // as Linux's path resolution

func (l *links) file(name string) {
	if l.files == nil {
		l.files, l.dirs = map[string]struct{}{}, map[string]struct{}{}
	}
	l.files[container.NameKey(name)] = struct{}{}
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		k := container.NameKey(d)
		if _, ok := l.dirs[k]; ok {
			break
		}
		l.dirs[k] = struct{}{}
	}
}

// add records a link member; it reports false for a member that is no link
// csv can follow (then its Problem stands).
func (l *links) add(rel string, m *container.Member) bool {
	if (m.Type != container.Symlink && m.Type != container.Hardlink) || m.Link == "" {
		return false
	}
	name, err := container.CleanName(m.Name)
	if err != nil {
		return false
	}
	var target string
	switch {
	case m.Type == container.Hardlink:
		// Archive-relative, as stored ("./usr/bin/x" in a tar).
		target = path.Clean(strings.TrimPrefix(m.Link, "./"))
	case strings.HasPrefix(m.Link, "/"):
		// A package's or image's root is the host's.
		target = path.Clean(m.Link[1:])
	default:
		target = path.Join(path.Dir(name), m.Link)
	}
	if l.targets == nil {
		l.targets = map[string]string{}
	}
	if m.Type == container.Symlink {
		l.targets[container.NameKey(name)] = target
	}
	l.pending = append(l.pending, memberLink{rel: rel, name: name, target: target, hard: m.Type == container.Hardlink, problem: m.Problem})
	return true
}

// settle decides the links, in the order the container stores them.
func (l *links) settle(emit func(*member) error) error {
	for _, k := range l.pending {
		t, why := k.target, ""
		for hop := 0; ; hop++ {
			if t == ".." || strings.HasPrefix(t, "../") {
				why = "leads out of the container"
				break
			}
			if _, ok := l.files[container.NameKey(t)]; ok {
				break
			}
			if _, ok := l.dirs[container.NameKey(t)]; ok && !k.hard {
				break
			}
			next, ok := l.targets[container.NameKey(t)]
			if !ok || hop == maxLinkHops {
				why = "leads to no file of the container"
				if ok {
					why = fmt.Sprintf("leads through more than %d links", maxLinkHops)
				}
				break
			}
			t = next
		}
		kind := "symbolic link"
		if k.hard {
			kind = "hard link"
		}
		var m *member
		if why == "" {
			m = &member{rel: k.rel, skipped: fmt.Sprintf("%s to %s, judged at its own path", kind, t)}
		} else {
			m = &member{rel: k.rel, problem: fmt.Errorf("%w (%s to %s, which %s: a packager that follows it ships what csv did not judge)", k.problem, kind, k.target, why)}
		}
		if err := emit(m); err != nil {
			return err
		}
	}
	return nil
}

// walkContainer walks the container src (size bytes, at report path p, its
// file named name) at nesting depth, and emits its members.
func walkContainer(ctx context.Context, cfg *inspectConfig, r container.Reader, src io.ReaderAt, size int64, p, name string, depth int, expanded *int64, emit func(*member) error) (err error) {
	cc := cfg.containers
	lim := cc.lim
	outer := emit
	emit = func(m *member) error {
		if err := outer(m); err != nil {
			return &emitStop{err}
		}
		return nil
	}
	lim.Depth, lim.Expanded = depth, expanded
	if lim.MaxDepth > 0 && depth > lim.MaxDepth {
		return emit(&member{rel: p, problem: &container.LimitError{Cap: "max-container-depth", Value: int64(lim.MaxDepth),
			What: fmt.Sprintf("%s container nested %d deep", r.Kind(), depth)}})
	}
	var buf, data []byte // the member's first block; a member held in memory
	var ls links
	var pending sync.WaitGroup // detached members not yet inspected
	count := 0
	yield := func(m *container.Member, mr io.Reader) (err error) {
		count++
		rel := container.Path(p, m.Name)
		excluded := func() error {
			if cc.excluded != nil {
				cc.excluded()
			}
			return nil
		}
		// A member --include leaves out is still opened if it is a
		// container (a tar inside a tar): --include matches the members
		// of nested containers as it does a loose container's.
		includeOnly := !isIncludedBy(cc.include, rel)
		if isExcludedBy(cc.exclude, rel) || includeOnly && (m.Problem != nil || mr == nil) {
			return excluded()
		}
		if lim.MaxMembers > 0 && count > lim.MaxMembers {
			return &container.LimitError{Cap: "max-container-members", Value: int64(lim.MaxMembers),
				What: fmt.Sprintf("%s container holds more than %d members", r.Kind(), lim.MaxMembers)}
		}
		if m.Problem != nil {
			if ls.add(rel, m) {
				return nil // settled at the end
			}
			if depth == 1 && cfg.besideDir != "" {
				if note := besideNote(cfg, p, m.Problem); note != "" {
					return emit(&member{rel: rel, skipped: note})
				}
			}
			return emit(&member{rel: rel, problem: m.Problem})
		}
		if buf == nil {
			buf = make([]byte, limits.ReadBuffer)
		}
		mcfg := cfg.at(rel)
		mcfg.containerOnly = includeOnly
		in, h, err := readMember(ctx, mcfg, rel, m, mr, buf, &data)
		if err != nil {
			return err
		}
		if in == nil {
			return excluded() // --include leaves it out, and it is no container
		}
		if name, err := container.CleanName(m.Name); err == nil {
			ls.file(name)
		}
		if h != nil && h.detached != nil {
			// A binary the container reads by random access: read and
			// inspected by whichever worker is free (or this one, when
			// none is), while this one walks on.
			mem := &member{rel: rel, ready: make(chan struct{})}
			task := func(buf []byte) {
				defer pending.Done()
				if err := ctx.Err(); err != nil {
					mem.in = &Inspection{Format: FormatOther, Err: err} // the run ends
				} else {
					mem.in = h.inspectDetached(ctx, buf)
				}
				close(mem.ready)
			}
			pending.Add(1)
			if !cfg.dispatch(min(m.Size, limits.StreamMember), task) {
				task(buf)
			}
			return emit(mem)
		}
		if h != nil && h.nested == nil && cfg.dispatch != nil {
			// A binary held in memory: inspected by whichever worker is
			// free, while this one reads on; the member keeps its place.
			mem := &member{rel: rel, ready: make(chan struct{})}
			if cfg.dispatch(int64(cap(data)), func(buf []byte) {
				mem.in = h.inspect(ctx, buf)
				putMemberBuffer(h.d) // the inspection keeps no part of it
				close(mem.ready)
			}) {
				data = nil // the task's now
				return emit(mem)
			}
		}
		var nested container.Reader
		if h != nil {
			in, nested = h.inspect(ctx, buf), h.nested
			if in.Container == "" {
				nested = nil // its own reading blocks it: not walked
			}
		}
		if nested == nil {
			if cap(data) > limits.StreamMember {
				data = nil // a large member's buffer is not kept for the next
			}
			return emit(&member{rel: rel, in: in})
		}
		if err := emit(&member{rel: rel, in: in, container: nested.Kind()}); err != nil {
			return err
		}
		// The nested container's bytes are data: the next member needs its
		// own buffer.
		held := data
		data = nil
		defer putMemberBuffer(held)
		return walkContainer(ctx, cfg, nested, bytes.NewReader(held), int64(len(held)), rel, path.Base(m.Name), depth+1, expanded, emit)
	}
	defer func() { putMemberBuffer(data) }()
	defer func() {
		if v := recover(); v != nil {
			err = emit(&member{rel: p, problem: &MalformedBinaryError{Path: p, Format: FormatOther, Offset: -1,
				Reason: fmt.Sprintf("internal error while reading the %s container (please report it): %v", r.Kind(), v), Err: panicerr.New(v)}})
		}
	}()
	werr := r.Walk(ctx, src, size, name, &lim, yield)
	// Detached members read src: the walk ends when they are read.
	if cfg.help != nil {
		done := make(chan struct{})
		go func() { pending.Wait(); close(done) }()
		cfg.help(done)
	}
	pending.Wait()
	if werr == nil {
		werr = ls.settle(emit)
	}
	var stop *emitStop
	switch {
	case werr == nil:
		return nil
	case errors.As(werr, &stop):
		return stop // the emitter's: passed up through every level
	case ctx.Err() != nil:
		return ctx.Err()
	}
	// What could not be read past is a finding on the container itself:
	// members after it could hide anything.
	return emit(&member{rel: p, problem: fmt.Errorf("%s container: %w (read %d members before it)", r.Kind(), werr, count)})
}

// besideNote says why a member that is a file beside the container (an
// installer's external cabinet: container.ExternalError with a Name) is
// not a finding: the container (at p, root-relative) was found under a
// directory root, and the file is a regular file beside it that the run
// does not leave out, so it is judged at its own path as a loose file.
// It returns "" otherwise: the member stays blocked.
func besideNote(cfg *inspectConfig, p string, problem error) string {
	var ext *container.ExternalError
	if !errors.As(problem, &ext) || ext.Name == "" {
		return ""
	}
	clean, err := container.CleanName(ext.Name)
	if err != nil {
		return ""
	}
	rel := path.Join(path.Dir(p), clean)
	if rel == ".." || strings.HasPrefix(rel, "../") || isExcludedBy(cfg.containers.exclude, rel) || !isIncludedBy(cfg.containers.include, rel) {
		return ""
	}
	fi, err := os.Lstat(filepath.Join(cfg.besideDir, filepath.FromSlash(clean)))
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return fmt.Sprintf("the files it installs are in the external cabinet beside the package, judged at its own path %s", rel)
}

// Buffers of members held in memory are used again, by size class (powers
// of two from 64 KiB to limits.StreamMember), a few of them (at most
// keptBuffers bytes in all): a build's binaries pass through a few buffers
// rather than leave one of garbage each, and the buffers kept do not add
// to the memory a run holds more than that.
var (
	memberBuffers [memberClasses]chan []byte
	keptBytes     atomic.Int64
)

func init() {
	for i := range memberBuffers {
		memberBuffers[i] = make(chan []byte, 4)
	}
}

const (
	minMemberClass = 16 // 64 KiB
	memberClasses  = 9  // to 16 MiB
	keptBuffers    = 16 << 20
)

// memberClass returns the size class of a buffer of n bytes, -1 if none.
func memberClass(n int64) int {
	c := max(bits.Len64(uint64(n-1)), minMemberClass) - minMemberClass
	if n <= 0 || c >= memberClasses {
		return -1
	}
	return c
}

// getMemberBuffer returns an empty buffer that holds at least n bytes.
func getMemberBuffer(n int64) []byte {
	c := memberClass(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	// A kept buffer of its class, or of the next two (a build's binaries
	// come in many sizes: some room left unused costs less than a new
	// buffer, which the kernel must fault in page by page).
	for k := c; k < min(c+3, memberClasses); k++ {
		select {
		case b := <-memberBuffers[k]:
			keptBytes.Add(-int64(cap(b)))
			return b[:0]
		default:
		}
	}
	return make([]byte, 0, 1<<(c+minMemberClass))
}

// putMemberBuffer gives a buffer of getMemberBuffer's back.
func putMemberBuffer(b []byte) {
	c := memberClass(int64(cap(b)))
	if c < 0 || cap(b) != 1<<(c+minMemberClass) {
		return
	}
	if keptBytes.Add(int64(cap(b))) > keptBuffers {
		keptBytes.Add(-int64(cap(b)))
		return
	}
	select {
	case memberBuffers[c] <- b:
	default:
		keptBytes.Add(-int64(cap(b)))
	}
}

// emitStop carries an error of the emitter (the run is ending) through a
// reader's Walk, which returns yield's errors; the worker unwraps it.
type emitStop struct{ err error }

func (e *emitStop) Error() string { return e.err.Error() }

// heldMember is a member read into memory (for the handlers' random
// access), to be inspected: a binary, or a nested container (nested), with
// a signature of its own when signed.
type heldMember struct {
	cfg    *inspectConfig
	rel    string
	d      []byte
	n      int // the first n bytes of d were the member's first block
	name   string
	size   int64
	nested container.Reader
	signed bool
	attrs  map[string][]byte // the member's extended attributes (IMA)
	// detached, for a member the container reads by random access
	// (container.Member.Detach): its bytes from their start, read by
	// inspectDetached; m is the member.
	detached io.Reader
	m        *container.Member
	// decompressed: container.Member.Decompressed.
	decompressed bool
}

// inspectDetached reads a detached member from its start, as readMember
// reads one from the walk (held in memory, or read as it streams by), and
// inspects it.
func (h *heldMember) inspectDetached(ctx context.Context, buf []byte) *Inspection {
	m := *h.m
	m.Detach = nil
	var data []byte
	defer func() { putMemberBuffer(data) }()
	in, held, err := readMember(ctx, h.cfg, h.rel, &m, h.detached, buf, &data)
	switch {
	case err != nil:
		return &Inspection{Format: FormatOther, Size: m.Size, Err: &UnreadableError{Path: h.rel, Err: err}}
	case held != nil && held.nested == nil:
		return held.inspect(ctx, buf)
	case held != nil:
		// It read as a container the first time it did not: a member
		// that changes is not judged.
		return &Inspection{Format: FormatOther, Size: m.Size, Err: &UnreadableError{Path: h.rel, Err: format.FileChanged(nil)}}
	}
	return in
}

// readMember reads one member as inspect does a loose file: its first
// block tells the format (with cfg.containerOnly, a member that is no
// container is not read on: in is nil); a binary (or a nested container)
// is read into memory (*data, reused, at most lim.MemberInMemory bytes)
// and returned as h, to be inspected (h.inspect); in is then a
// placeholder. A member of no format is not read further, and in is its
// inspection.
func readMember(ctx context.Context, cfg *inspectConfig, rel string, m *container.Member, r io.Reader, buf []byte, data *[]byte) (in *Inspection, h *heldMember, err error) {
	in = &Inspection{Format: FormatOther, Size: m.Size, decompressed: m.Decompressed}
	readErr := func(err error) (*Inspection, *heldMember, error) {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var stop *emitStop
		if errors.As(err, &stop) {
			return nil, nil, err
		}
		var me *format.MalformedError
		var le *container.LimitError
		if errors.As(err, &me) || errors.As(err, &le) {
			in.Err = err
		} else {
			in.Err = &UnreadableError{Path: rel, Err: err}
		}
		return in, nil, nil
	}
	n, err := io.ReadFull(r, buf[:format.SniffSize])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return readErr(err)
	}
	head := buf[:n]
	// The handlers tell a format by the first block (a PE's headers may lie
	// past it: a file that starts as a binary is read whole and told
	// again, by inspectData).
	probe := &format.File{Head: head, R: bytes.NewReader(head), Name: path.Base(m.Name), Size: int64(n)}
	hd, cr := sniff(probe), container.Sniff(head, probe.Name)
	signed := hd != nil && cr != nil && judgedAs(cr, hd.Format())
	if hd != nil && cr != nil && !signed {
		in.Format, in.Err = hd.Format(), bothError(rel, hd.Format(), cr.Kind())
		return in, nil, nil
	}
	var nested container.Reader
	if hd == nil || signed {
		nested = cr
	}
	if nested == nil && cfg.containerOnly {
		return nil, nil, nil // --include leaves it out
	}
	if hd == nil && nested == nil {
		if kind := format.Unjudgeable(head); kind != "" {
			// A binary csv cannot judge (Mach-O): blocked, never skipped.
			in.Err = format.UnjudgeableError(rel, kind)
			return in, nil, nil
		}
	}
	if hd == nil && nested == nil && !lookalike(probe) && !cfg.needs(FormatOther).Digests.Has(cipolicy.SHA256) {
		// Of no format: read to its end only to see whether it ends
		// as a container (a zip after a script), not judged further.
		kind, err := tailKind(r, head, n == format.SniffSize)
		if err != nil {
			return readErr(err)
		}
		if kind != "" {
			in.Err = appendedContainerError(rel, kind)
		}
		return in, nil, nil
	}
	if m.Detach != nil && cfg.dispatch != nil && hd != nil && cr == nil {
		// A binary the container reads by random access: read again
		// from its start by the worker that inspects it.
		return in, &heldMember{cfg: cfg, rel: rel, m: m, detached: m.Detach()}, nil
	}
	if _, ok := hd.(format.Streamer); ok && nested == nil && m.Size > streamMember {
		// Large, and its handler can read it as it streams by: not held.
		return inspectStreamed(ctx, cfg.full(rel), rel, m, r, buf, n, probe.Name, in), nil, nil
	}
	// Held in memory: the handlers read by random access.
	capacity := cfg.containers.lim.MemberInMemory
	if capacity > 0 && m.Size > capacity {
		in.Err = &container.LimitError{Cap: "max-member-size", Value: capacity,
			What: fmt.Sprintf("member is %d bytes, and csv holds a member in memory to judge it", m.Size)}
		return in, nil, nil
	}
	if m.Size > int64(cap(*data)) && (capacity <= 0 || m.Size <= capacity) {
		// Its declared size, at once: growing as it arrives would copy
		// it over and over (a 100 MB module took seconds).
		putMemberBuffer(*data)
		*data = getMemberBuffer(m.Size)
	}
	d := append((*data)[:0], head...)
	if n == format.SniffSize {
		var rerr error
		d, rerr = readAllCapped(r, d, capacity)
		*data = d
		if rerr != nil {
			return readErr(rerr)
		}
	}
	*data = d
	in.Size = int64(len(d))
	if hd == nil && nested != nil && !signed {
		// A container whose own format only the whole member tells (an
		// MSI's root entry, which tells an installer from another
		// compound file, often lies past the first block): told again
		// from all of it, so that an installer named setup.dat is judged
		// as one, as it would be loose.
		full := &format.File{Head: head, R: bytes.NewReader(d), Name: probe.Name, Size: int64(len(d))}
		if h := sniff(full); h != nil && judgedAs(nested, h.Format()) {
			signed = true
		}
	}
	return in, &heldMember{cfg: cfg, rel: rel, d: d, n: n, name: probe.Name, size: m.Size, nested: nested, signed: signed, attrs: m.Attrs, decompressed: m.Decompressed}, nil
}

// inspect inspects a member held in memory: a binary, or a container with a
// signature of its own (judged as its format; in.Container is set when its
// members are to be walked), or a nested container (in.Container set,
// nothing else inspected).
func (h *heldMember) inspect(ctx context.Context, buf []byte) *Inspection {
	cfg, rel := h.cfg, h.rel
	if h.nested != nil && (!h.signed || cfg.containerOnly) {
		in := &Inspection{Format: FormatOther, Size: int64(len(h.d)), Container: h.nested.Kind()}
		if in.Err = storedIMA(rel, h.attrs, h.d, cfg.opts.Certificates, cfg.opts.Cache); in.Err != nil {
			in.Container = "" // blocked as it is stored: not walked
		}
		return in
	}
	in := inspectHeld(ctx, cfg, rel, h.d, buf, h.n, h.name, &Inspection{Format: FormatOther, Size: h.size, decompressed: h.decompressed}, h.attrs)
	if cfg.again != nil && in.deferred && in.Err == nil && ctx.Err() == nil && cfg.again(rel, in) {
		// The first read's digests leave it blocked, and those the policy
		// deferred could admit it: read it again, from memory.
		in = inspectHeld(ctx, cfg.full(rel), rel, h.d, buf, h.n, h.name, &Inspection{Format: FormatOther, Size: h.size, decompressed: h.decompressed}, h.attrs)
	}
	if h.signed && in.Err == nil {
		// A container with a signature of its own, judged as its format:
		// its members follow.
		in.Container = h.nested.Kind()
	}
	return in
}

// streamMember is the size over which a member whose handler can inspect
// it as it streams by (format.Streamer) is, rather than held in memory (a
// variable for tests).
var streamMember int64 = limits.StreamMember

// inspectStreamed inspects a member read once, front to back, from r (its
// first n bytes are in buf): its first limits.StreamHead bytes are read,
// then the handler keeps what it reads out of order as the member passes
// (format.NewStreamedFile). It is read with every fact the policy may need
// (no second read). A panic in a parser becomes a MalformedBinaryError.
func inspectStreamed(ctx context.Context, cfg *inspectConfig, rel string, m *container.Member, r io.Reader, buf []byte, n int, name string, in *Inspection) (out *Inspection) {
	defer func() {
		if v := recover(); v != nil {
			in.Err = &MalformedBinaryError{Path: rel, Format: in.Format, Offset: -1,
				Reason: fmt.Sprintf("internal error while parsing (please report it): %v", v), Err: panicerr.New(v)}
			out = in
		}
	}()
	hn := int(min(m.Size, limits.StreamHead))
	if hn > n {
		k, err := io.ReadFull(r, buf[n:hn])
		if err != nil {
			if ctx.Err() != nil {
				in.Err = ctx.Err()
				return in
			}
			in.Err = &UnreadableError{Path: rel, Err: format.FileChanged(err)}
			return in
		}
		n += k
	}
	file := format.NewStreamedFile(r, m.Size, buf[:n], buf)
	file.Name = name
	file.Attrs, file.AttrsFrom = memberIMA(m.Attrs) // IMA (csv/ima.go)
	inspectData(ctx, rel, file, cfg, in)
	return in
}

// inspectHeld inspects a member held in memory (d; its first n bytes are
// also in buf) as inspect does a file, with a recover of its own.
func inspectHeld(ctx context.Context, cfg *inspectConfig, rel string, d, buf []byte, n int, name string, in *Inspection, attrs map[string][]byte) *Inspection {
	in.Size = int64(len(d))
	copy(buf[:n], d[:n])
	br := bytes.NewReader(d)
	if _, err := br.Seek(int64(n), io.SeekStart); err != nil {
		in.Err = &UnreadableError{Path: rel, Err: err}
		return in
	}
	file := format.NewFile(br, in.Size, buf, n)
	file.Name = name
	file.Attrs, file.AttrsFrom = memberIMA(attrs) // IMA (csv/ima.go)
	defer func() {
		if v := recover(); v != nil {
			in.Err = &MalformedBinaryError{Path: rel, Format: in.Format, Offset: -1,
				Reason: fmt.Sprintf("internal error while parsing (please report it): %v", v), Err: panicerr.New(v)}
		}
	}()
	inspectData(ctx, rel, file, cfg, in)
	return in
}

// readAllCapped appends r's bytes to d, refusing more than capacity in all
// (0: no cap).
func readAllCapped(r io.Reader, d []byte, capacity int64) ([]byte, error) {
	for {
		if len(d) == cap(d) {
			// Doubling: each byte is copied a bounded number of times.
			nd := make([]byte, len(d), max(2*cap(d), 64<<10))
			copy(nd, d)
			d = nd
		}
		n, err := r.Read(d[len(d):cap(d)])
		d = d[:len(d)+n]
		if capacity > 0 && int64(len(d)) > capacity {
			return d, &container.LimitError{Cap: "max-member-size", Value: capacity,
				What: "member is larger, and csv holds a member in memory to judge it"}
		}
		if errors.Is(err, io.EOF) {
			return d, nil
		}
		if err != nil {
			return d, err
		}
	}
}

// isExcludedBy and isIncludedBy match a path against --exclude and
// --include as the walk does.
func isExcludedBy(globs []string, rel string) bool {
	for _, p := range globs {
		if ok, _ := globMatch(p, rel); ok {
			return true
		}
	}
	return false
}

func isIncludedBy(globs []string, rel string) bool {
	return len(globs) == 0 || isExcludedBy(globs, rel)
}

// appendedContainerError says a file ends as a container that does not
// start at its start.
func appendedContainerError(path string, kind container.Kind) error {
	return &MalformedBinaryError{Path: path, Format: FormatOther, Offset: -1,
		Reason: fmt.Sprintf("ends as a %s archive that does not start at the file's start (a script or other bytes come first): extractors (unzip, Python's zipfile, Java, libarchive) skip those bytes and extract its members, and csv does not read such an archive", kind)}
}

// appendedContainer returns the kind of container a loose file of no
// format ends as (container.SniffTail), reading its last bytes; head is
// its first bytes, all of a file that short.
func appendedContainer(f io.ReaderAt, size int64, head []byte) (container.Kind, error) {
	if size <= int64(len(head)) {
		return container.SniffTail(head), nil
	}
	bp := tails.Get().(*[]byte)
	defer tails.Put(bp)
	t := (*bp)[:min(size, container.TailSize)]
	if _, err := f.ReadAt(t, size-int64(len(t))); err != nil {
		return "", err
	}
	return container.SniffTail(t), nil
}

// tails are buffers of container.TailSize bytes, twice over (tailKind
// keeps the last TailSize bytes of a stream in one).
var tails = sync.Pool{New: func() any { b := make([]byte, 2*container.TailSize); return &b }}

// tailKind reads a member of no format to its end and returns the kind of
// container its last bytes end (container.SniffTail); head is its first
// bytes, and more follow them when more is set.
func tailKind(r io.Reader, head []byte, more bool) (container.Kind, error) {
	if !more {
		return container.SniffTail(head), nil
	}
	bp := tails.Get().(*[]byte)
	defer tails.Put(bp)
	t := append((*bp)[:0], head...)
	for {
		if len(t) == cap(t) {
			// Keep the last TailSize bytes: linear, as each byte is
			// moved at most once.
			t = t[:copy(t, t[len(t)-container.TailSize:])]
		}
		n, err := r.Read(t[len(t):cap(t)])
		t = t[:len(t)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return container.SniffTail(t[max(0, len(t)-container.TailSize):]), nil
}
