package csv

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codesignval/csv/container/oci"
	"github.com/codesignval/csv/internal/limits"
)

// entry is one regular file to inspect.
type entry struct {
	root     int          // index into the roots
	rel      string       // slash-separated, relative to the root
	abs      string       // path to open
	follow   bool         // open even if the last element is a symbolic link
	fileRoot bool         // the root names this file
	problem  error        // set for entries that are blocked without inspection
	format   Format       // for problem entries
	skipped  *SkippedFile // set for entries that are reported as skipped
	dest     string       // where Sign writes its signed copy (set by plan)
	// real is the file's absolute path with every symbolic link resolved,
	// for entries that are inspected or blocked ("" otherwise).
	real string
	// link, set while discovering, is a symbolic link whose fate is decided
	// once the whole tree is known (see walker.settleLinks).
	link *pendingLink
	// includeOnly: --include leaves the file out, but were it a container,
	// its members could be in (only its inspection says).
	includeOnly bool
	// layout: a directory that is an OCI image layout, read as one
	// container (container/oci.Dir) when containers are opened.
	layout bool
	// walk is the entry's place in the walk (walker.stream).
	walk Walk
	// noSidecar: the directory's listing has no name+".sig" beside the
	// file, so there is no IMA sidecar to open (fileIMA); false when the
	// walk did not list the directory (a root, a link's target).
	noSidecar bool
}

// Walk is a file's place in the walk of a run: the same for every shard of
// a run, which lets csv report merge put the shards' files back in the
// order of one run, in constant memory, and check that every file the walk
// listed was judged by exactly one shard.
type Walk struct {
	// Entry is the number of the walk's listed entry the file is (or, a
	// container's member, is in), from 1 (Listing.Entries in all).
	Entry int
	// After, for an entry the walk passed for its members alone (--include
	// leaves it out, but it could be a container), is its place among
	// those after the listed entry Entry, from 1 (Entry may be 0); 0 for a
	// listed entry.
	After int
	// Member is a member's place in its container's members, from 1; 0
	// for the entry itself.
	Member int
}

// isTodo reports whether the entry is a file to inspect (neither skipped
// nor blocked without inspection).
func (e *entry) isTodo() bool { return e.skipped == nil && e.problem == nil }

// pendingLink is a symbolic link within the roots that the walk does not
// follow (or, following links, a second way into a directory already
// walked). Its target's files are judged where they lie, but not
// necessarily alike: --include and --exclude match paths, and so do policy
// rules' path scopes. A packager that follows links (tar -h, zip) ships the
// target's bytes under the link's name, so the link is judged itself
// unless its target is judged at a path the policy treats alike.
type pendingLink struct {
	path   string // the link, to open
	target string // absolute, every link resolved
	dir    bool   // the target is a directory
}

// globMatch matches a path against --include, --exclude and the policy's
// path globs (a variable for tests, which count the matches).
var globMatch = doublestar.Match

// readDir lists a directory (a variable for tests, which hold the walk).
var readDir = os.ReadDir

// maxLinked is limits.MaxLinkedEntries (a variable for tests).
var maxLinked = limits.MaxLinkedEntries

// errTooManyLinked ends the walk of the files reached through a link when
// maxLinked is reached.
var errTooManyLinked = errors.New("too many files and directories reached through symbolic links: not judged")

// SkippedFile is a file the validator did not judge, and why.
type SkippedFile struct {
	Root   string
	Path   string
	Reason string
	// Origin is as a Result's.
	Origin string
	// Walk is the file's place in the walk.
	Walk     Walk
	fileRoot bool
}

// DisplayPath is the path to show a user (see Result.DisplayPath).
func (s *SkippedFile) DisplayPath() string {
	return withOrigin(s.Origin, displayPath(s.Root, s.Path, s.fileRoot))
}

// Skip reasons that are not "not a PE or ELF file".
const (
	reasonSymlink    = "symbolic link, not followed (use --follow-symlinks)"
	reasonNotRegular = "not a regular file"
	reasonDangling   = "symbolic link whose target does not exist"
)

type walker struct {
	ctx      context.Context
	roots    []string      // as given
	resolved []string      // absolute, symbolic links resolved
	info     []fs.FileInfo // the roots' (links followed)
	include  []string
	exclude  []string
	follow   bool
	excluded int
	// containers: files --include leaves out are passed on for their
	// members, should they be containers (entry.includeOnly).
	containers bool
	// emit receives the entries in discovery order. Until the first link is
	// postponed each goes to it as soon as it is listed; after that they
	// are held until the links are settled, at the end of the walk (held).
	// err is emit's first error, which ends the walk.
	emit func(*entry) error
	err  error
	held []entry
	// settling is set while settleLinks walks a link's directory: the
	// entries it lists go to out, to be dropped if the link reaches too
	// many, or emitted in the link's place.
	settling bool
	out      []entry
	// visited holds the resolved paths of the directories walked, so that
	// a followed link to one of them (a loop, or a second way in) is not
	// walked again in full.
	visited map[string]bool
	// scopes are the path globs of the policy's rules: two paths are judged
	// alike when every one matches both or neither (nil: any two paths).
	scopes []string
	// judged and also record the files inspected or blocked where the walk
	// found them, for settleLinks, which asks whether a link's target is
	// judged at a path the policy treats alike (see isJudged). judged
	// holds a 128-bit keyed hash (random seeds, so nobody can choose paths
	// that collide) of the resolved path and path of each file found at
	// its natural path (its resolved path relative to its root's: every
	// file the walk finds but through a followed link), and also, by
	// resolved path, the scope classes of the paths of the others (a file
	// root, a file reached through a followed link: a set per file, so that
	// a link is settled in time linear in the scopes however many paths its
	// target is judged at). The walk keeps no more of the files it has
	// passed on, and matches no glob for those at their natural path.
	judged map[[2]uint64]struct{}
	also   map[string]map[string]bool
	seeds  [2]maphash.Seed
	mh     maphash.Hash
	// viaLink counts the followed links the walk is under.
	viaLink int
	// linked counts the directory entries listed through links, against
	// limits.MaxLinkedEntries; pending counts the links postponed.
	linked  int
	pending int
	// walked identifies the entries listed, before a shard's cut (set by
	// scan).
	walked Listing
}

// ErrRoot is wrapped by errors about a PATH argument that cannot be walked.
var ErrRoot = errors.New("csv: cannot validate path")

// newWalker resolves the roots of a walk (see walker.run): a root that
// cannot be resolved or is neither a directory nor a regular file is an
// error wrapping ErrRoot, before anything is walked.
func newWalker(ctx context.Context, roots []string, include, exclude []string, follow bool, scopes []string) (*walker, error) {
	w := &walker{ctx: ctx, roots: roots, include: include, exclude: exclude, follow: follow, visited: map[string]bool{}, scopes: scopes,
		judged: map[[2]uint64]struct{}{}, also: map[string]map[string]bool{}, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrRoot, r, unwrapPath(err))
		}
		fi, err := os.Stat(r)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrRoot, r, unwrapPath(err))
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w %s: not a regular file or directory", ErrRoot, r)
		}
		w.resolved = append(w.resolved, abs)
		w.info = append(w.info, fi)
	}
	return w, nil
}

// run walks the roots in a deterministic order (roots as given, then
// lexical order within each directory) and passes emit, in that order, the
// regular files to inspect, the files it skips, and the entries that are
// blocked without inspection (an unreadable directory could hide binaries).
// Entries flow as they are listed: the walk holds none of them, unless a
// symbolic link must wait for the end of the walk to be settled (below);
// then the entries after it are held until the end. The entry passed is
// emit's to keep. An error from emit ends the walk and is returned.
//
// A symbolic link whose target is not judged in this run, at a path whose
// policy scopes are the same, is judged itself (its target's bytes under its
// own path): see pendingLink. scopes are the policy's path globs.
func (w *walker) run(emit func(*entry) error) error {
	w.emit = emit
	for i, r := range w.roots {
		if w.info[i].IsDir() && w.containers && oci.IsLayoutDir(r) {
			// An OCI image layout named as a root: one container, named
			// by its base name as a file argument is.
			base := filepath.Base(w.resolved[i])
			w.add(entry{root: i, rel: base, abs: r, follow: true, fileRoot: true, real: w.resolved[i], layout: true})
			continue
		}
		if w.info[i].IsDir() {
			w.visited[w.resolved[i]] = true
			if err := w.walkDir(i, r, w.resolved[i], ""); err != nil {
				return err
			}
			continue
		}
		// A file argument is named by its base name, and the user
		// named it explicitly: a symbolic link to it is followed.
		w.add(entry{root: i, rel: filepath.Base(r), abs: r, follow: true, fileRoot: true, real: w.resolved[i]})
	}
	if err := w.settleLinks(); err != nil {
		return err
	}
	return w.err
}

// discover walks the roots (newWalker, walker.run) and lists every entry:
// for csv sign, which plans the whole tree before it signs anything.
func discover(ctx context.Context, roots []string, include, exclude []string, follow bool, scopes []string) (*walker, []entry, error) {
	w, err := newWalker(ctx, roots, include, exclude, follow, scopes)
	if err != nil {
		return nil, nil, err
	}
	var entries []entry
	err = w.run(func(e *entry) error {
		entries = append(entries, *e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return w, entries, nil
}

// add lists one entry: to emit, or held (see run).
func (w *walker) add(e entry) {
	switch {
	case w.err != nil:
	case w.settling:
		w.out = append(w.out, e)
	default:
		if e.real != "" {
			// Only files judged where the walk found them count: a file
			// judged through one link does not spare another link to it.
			if e.fileRoot || e.follow || w.viaLink > 0 {
				c := w.also[e.real]
				if c == nil {
					c = map[string]bool{}
					w.also[e.real] = c
				}
				c[w.class(e.rel)] = true
			} else {
				w.judged[w.judgedKey(e.real, e.rel)] = struct{}{}
			}
		}
		if w.pending > 0 {
			w.held = append(w.held, e)
			return
		}
		w.err = w.emit(&e)
	}
}

// judgedKey is the key in judged of the file whose resolved path is real,
// judged at rel.
func (w *walker) judgedKey(real, rel string) [2]uint64 {
	var k [2]uint64
	for i := range k {
		w.mh.SetSeed(w.seeds[i])
		w.mh.WriteString(real)
		w.mh.WriteByte(0)
		w.mh.WriteString(rel)
		k[i] = w.mh.Sum64()
	}
	return k
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (w *walker) isExcluded(rel string) bool {
	for _, p := range w.exclude {
		if ok, _ := globMatch(p, rel); ok {
			return true
		}
	}
	return false
}

func (w *walker) isIncluded(rel string) bool {
	if len(w.include) == 0 {
		return true
	}
	for _, p := range w.include {
		if ok, _ := globMatch(p, rel); ok {
			return true
		}
	}
	return false
}

func (w *walker) skip(root int, rel, reason string) {
	w.add(entry{root: root, rel: rel, skipped: &SkippedFile{Root: w.roots[root], Path: rel, Reason: reason}})
}

func (w *walker) block(root int, rel string, err error) {
	w.add(entry{root: root, rel: rel, problem: err, format: FormatOther})
}

// inRoots reports whether the resolved absolute path p lies within one of the
// resolved roots.
func (w *walker) inRoots(p string) bool {
	for _, r := range w.resolved {
		if within(p, r) {
			return true
		}
	}
	return false
}

// walkDir walks directory dir, whose resolved absolute path is real and
// whose path relative to the root is rel.
func (w *walker) walkDir(root int, dir, real, rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.err != nil {
		return w.err
	}
	ents, err := readDir(dir)
	sorted := slices.IsSortedFunc(ents, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	if err != nil {
		// A directory that cannot be listed could hide binaries: block it.
		name := rel
		if name == "" {
			name = "."
		}
		w.block(root, name+"/", &UnreadableError{Path: dir, Err: unwrapPathAs(err, "list directory")})
		if len(ents) == 0 {
			return nil
		}
	}
	for _, e := range ents {
		if w.err != nil {
			return w.err
		}
		name := e.Name()
		r := path.Join(rel, name)
		p := filepath.Join(dir, name)
		if w.isExcluded(r) {
			w.excluded++
			continue
		}
		switch t := e.Type(); {
		case t.IsDir():
			sub := filepath.Join(real, name)
			if w.containers && oci.IsLayoutDir(p) {
				// An OCI image layout: its blobs are what its images
				// are made of, read as the images (whiteouts applied).
				w.add(entry{root: root, rel: r, abs: p, real: sub, layout: true, includeOnly: !w.isIncluded(r)})
				continue
			}
			w.visited[sub] = true
			if err := w.walkDir(root, p, sub, r); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			if !w.follow {
				// Not followed: its target, if within the roots, is judged
				// where it lies (settleLinks checks that it is, alike). A
				// link out of the roots would let a packager that follows
				// links ship what nobody judged.
				target, err := resolve(p)
				switch {
				case err != nil:
					w.skip(root, r, reasonSymlink) // dangling, a loop: it ships nothing
				case !w.inRoots(target):
					w.block(root, r, &UnreadableError{Path: p, Err: fmt.Errorf("symbolic link to %s, outside the validated paths: not judged", target)})
				default:
					fi, err := os.Stat(target)
					if err != nil {
						w.skip(root, r, reasonSymlink)
						continue
					}
					w.postpone(root, r, &pendingLink{path: p, target: target, dir: fi.IsDir()})
				}
				continue
			}
			if err := w.followLink(root, p, r); err != nil {
				return err
			}
		case t.IsRegular():
			if !w.isIncluded(r) {
				if !w.containers {
					w.excluded++
					continue
				}
				// A container is opened whatever its name: --include
				// matches its members (csv/members.go).
				w.add(entry{root: root, rel: r, abs: p, includeOnly: true})
				continue
			}
			if isSignLeftover(name) {
				w.add(entry{root: root, rel: r, problem: &UnreadableError{Path: p, Err: errSignLeftover}, format: FormatOther, real: filepath.Join(real, name)})
				continue
			}
			// No lstat(2) here: the worker's open and fstat(2) tell
			// (a file gone since the listing is blocked then).
			// A file's IMA sidecar (name.sig) is looked for in the listing,
			// sorted by name, rather than by a failed open per file.
			noSidecar := false
			if sorted {
				_, found := slices.BinarySearchFunc(ents, name+".sig", func(e os.DirEntry, n string) int { return strings.Compare(e.Name(), n) })
				noSidecar = !found
			}
			w.add(entry{root: root, rel: r, abs: p, real: filepath.Join(real, name), noSidecar: noSidecar})
		default:
			w.skip(root, r, fmt.Sprintf("%s (%s)", reasonNotRegular, typeName(t)))
		}
	}
	return nil
}

// resolve returns the absolute path a symbolic link leads to.
func resolve(p string) (string, error) {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(target)
}

func (w *walker) followLink(root int, p, r string) error {
	target, err := resolve(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.skip(root, r, reasonDangling)
			return nil
		}
		// A link loop or an unreadable target: it cannot be judged.
		w.block(root, r, &UnreadableError{Path: p, Err: unwrapPathAs(err, "resolve symbolic link")})
		return nil
	}
	if !w.inRoots(target) {
		w.block(root, r, &UnreadableError{Path: p, Err: fmt.Errorf("symbolic link to %s, outside the validated paths: not followed, so not judged", target)})
		return nil
	}
	fi, err := os.Stat(target)
	if err != nil {
		w.block(root, r, &UnreadableError{Path: p, Err: err})
		return nil
	}
	switch {
	case fi.IsDir() && w.containers && oci.IsLayoutDir(target):
		w.add(entry{root: root, rel: r, abs: p, follow: true, real: target, layout: true, includeOnly: !w.isIncluded(r)})
	case fi.IsDir():
		if w.visited[target] {
			// Already walked (a loop, or a second way in): its files are
			// judged where they were found, but perhaps not alike.
			w.postpone(root, r, &pendingLink{path: p, target: target, dir: true})
			return nil
		}
		w.visited[target] = true
		w.viaLink++
		defer func() { w.viaLink-- }()
		return w.walkDir(root, p, target, r)
	case fi.Mode().IsRegular():
		if !w.isIncluded(r) {
			w.excluded++
			return nil
		}
		w.add(entry{root: root, rel: r, abs: p, follow: true, real: target})
	default:
		w.skip(root, r, fmt.Sprintf("%s (%s)", reasonNotRegular, typeName(fi.Mode().Type())))
	}
	return nil
}

func unwrapPathAs(err error, op string) error {
	return &fs.PathError{Op: op, Path: "", Err: unwrapPath(err)}
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeIrregular != 0:
		return "irregular file"
	}
	return m.String()
}

// postpone records a link for settleLinks, in its place in the walk's order
// (the entries after it are held until then).
func (w *walker) postpone(root int, rel string, l *pendingLink) {
	w.pending++
	w.add(entry{root: root, rel: rel, link: l})
}

// settleLinks decides, once the whole tree is walked, what becomes of each
// link postponed. A link whose target is judged where it lies, at a path
// the policy treats alike, is skipped as before (when following links: left
// out, its directory walked already). Any other is judged itself: a link to
// a file as its target's bytes under the link's path (if --include admits
// that path), a link to a directory as the files under it that are not
// judged alike where they lie (--include and --exclude applied to their
// paths under the link). A link whose target lies out of the roots was
// blocked by the walk; links reached under a link are treated alike.
func (w *walker) settleLinks() error {
	if w.pending == 0 || w.err != nil {
		return nil
	}
	held := w.held
	w.held = nil
	for i := range held {
		e := &held[i]
		if e.link == nil {
			c := *e // emit keeps it
			if w.err = w.emit(&c); w.err != nil {
				return w.err
			}
			held[i] = entry{}
			continue
		}
		w.settling, w.out = true, w.out[:0]
		err := w.settle(e.root, e.rel, e.link)
		w.settling = false
		if err != nil {
			return err
		}
		for j := range w.out {
			c := w.out[j] // emit keeps it; out is reused
			if w.err = w.emit(&c); w.err != nil {
				return w.err
			}
		}
		held[i] = entry{} // let the link's entries go
	}
	return nil
}

// settle decides one postponed link.
func (w *walker) settle(root int, rel string, l *pendingLink) error {
	if l.dir && w.containers && oci.IsLayoutDir(l.target) {
		// A link to an OCI image layout: one container, as a link to a
		// file is one file.
		if w.isJudged(l.target, rel) {
			w.skip(root, rel, reasonSymlink)
			return nil
		}
		w.add(entry{root: root, rel: rel, abs: l.path, follow: true, real: l.target, layout: true, includeOnly: !w.isIncluded(rel)})
		return nil
	}
	if !l.dir {
		switch fi, err := os.Stat(l.target); {
		case w.isJudged(l.target, rel):
			w.skip(root, rel, reasonSymlink)
		case !w.isIncluded(rel):
			w.excluded++
		case err != nil:
			w.block(root, rel, &UnreadableError{Path: l.path, Err: err})
		case !fi.Mode().IsRegular():
			w.skip(root, rel, reasonSymlink)
		default:
			w.add(entry{root: root, rel: rel, abs: l.path, follow: true, real: l.target})
		}
		return nil
	}
	if w.visited[l.target] && len(w.include) == 0 && len(w.exclude) == 0 && len(w.scopes) == 0 {
		// Walked in full, and every path is judged alike: nothing to add.
		if !w.follow {
			w.skip(root, rel, reasonSymlink)
		}
		return nil
	}
	mark := len(w.out)
	err := w.shadow(root, l.path, l.target, rel, nil)
	switch {
	case errors.Is(err, errTooManyLinked):
		w.out = w.out[:mark]
		w.block(root, rel, &UnreadableError{Path: l.path, Err: err})
	case err != nil:
		return err
	case len(w.out) == mark && !w.follow:
		w.skip(root, rel, reasonSymlink) // everything under it is judged alike where it lies
	}
	return nil
}

// shadow walks directory dir, reached through a link, whose resolved path
// is real and whose path relative to the root is rel, and lists the files
// under it that are not judged alike where they lie. stack holds the
// resolved directories being walked, so that a loop ends.
func (w *walker) shadow(root int, dir, real, rel string, stack []string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ents, err := readDir(dir)
	if err != nil {
		w.block(root, rel+"/", &UnreadableError{Path: dir, Err: unwrapPathAs(err, "list directory")})
	}
	if w.linked += len(ents); w.linked > maxLinked {
		return fmt.Errorf("%w (more than %d: the cap, limits.MaxLinkedEntries)", errTooManyLinked, maxLinked)
	}
	stack = append(stack, real)
	for _, e := range ents {
		name := e.Name()
		r, p, x := path.Join(rel, name), filepath.Join(dir, name), filepath.Join(real, name)
		if w.isExcluded(r) {
			continue
		}
		t, follow := e.Type(), false
		if t&fs.ModeSymlink != 0 {
			target, err := resolve(p)
			if err != nil {
				continue // dangling, or a loop: it ships nothing
			}
			if !w.inRoots(target) {
				w.block(root, r, &UnreadableError{Path: p, Err: fmt.Errorf("symbolic link to %s, outside the validated paths: not judged", target)})
				continue
			}
			fi, err := os.Stat(target)
			if err != nil {
				continue
			}
			x, t, follow = target, fi.Mode().Type(), true
		}
		switch {
		case t.IsDir():
			if slices.Contains(stack, x) {
				continue // a loop
			}
			if err := w.shadow(root, p, x, r, stack); err != nil {
				return err
			}
		case t.IsRegular():
			if !w.isIncluded(r) || w.isJudged(x, r) {
				continue
			}
			if isSignLeftover(name) {
				w.block(root, r, &UnreadableError{Path: p, Err: errSignLeftover})
				continue
			}
			w.add(entry{root: root, rel: r, abs: p, follow: follow, real: x})
		}
		// Anything else (a FIFO, a device) is skipped where it lies.
	}
	return nil
}

// isJudged reports whether the file whose resolved path is real is judged
// where the walk found it, at a path the policy treats as it treats rel.
func (w *walker) isJudged(real, rel string) bool {
	class := w.class(rel)
	for i, root := range w.resolved {
		if !w.info[i].IsDir() || !within(real, root) {
			continue
		}
		nat, err := filepath.Rel(root, real)
		if err != nil {
			continue
		}
		nat = filepath.ToSlash(nat)
		if _, ok := w.judged[w.judgedKey(real, nat)]; ok && w.class(nat) == class {
			return true
		}
	}
	return w.also[real][class]
}

// class is the policy's view of path rel: which of its rules' path globs
// match it, one byte each. The policy judges a file alike at two paths of
// one class: every glob matches both or neither ("" for all paths when
// there are no globs).
func (w *walker) class(rel string) string {
	if len(w.scopes) == 0 {
		return ""
	}
	b := make([]byte, len(w.scopes))
	for i, g := range w.scopes {
		b[i] = '0'
		if m, _ := globMatch(g, rel); m {
			b[i] = '1'
		}
	}
	return string(b)
}
