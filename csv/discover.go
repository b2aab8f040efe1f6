package csv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codesignval/csv/internal/limits"
)

// entry is one regular file to inspect.
type entry struct {
	root     int    // index into the roots
	rel      string // slash-separated, relative to the root
	abs      string // path to open
	size     int64
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
}

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

// maxLinked is limits.MaxLinkedEntries (a variable for tests).
var maxLinked = limits.MaxLinkedEntries

// errTooManyLinked ends the walk of the files reached through a link when
// maxLinked is reached.
var errTooManyLinked = errors.New("too many files and directories reached through symbolic links: not judged")

// SkippedFile is a file the validator did not judge, and why.
type SkippedFile struct {
	Root     string
	Path     string
	Reason   string
	fileRoot bool
}

// DisplayPath is the path to show a user (see Result.DisplayPath).
func (s *SkippedFile) DisplayPath() string { return displayPath(s.Root, s.Path, s.fileRoot) }

// Skip reasons that are not "not a PE or ELF file".
const (
	reasonSymlink    = "symbolic link, not followed (use --follow-symlinks)"
	reasonNotRegular = "not a regular file"
	reasonDangling   = "symbolic link whose target does not exist"
)

type walker struct {
	ctx      context.Context
	roots    []string // as given
	resolved []string // absolute, symbolic links resolved
	include  []string
	exclude  []string
	follow   bool
	entries  []entry
	excluded int
	// visited holds the resolved paths of the directories walked, so that
	// a followed link to one of them (a loop, or a second way in) is not
	// walked again in full.
	visited map[string]bool
	// scopes are the path globs of the policy's rules: two paths are judged
	// alike when every one matches both or neither (nil: any two paths).
	scopes []string
	// judged maps the resolved path of each file inspected or blocked to
	// the scope classes of the paths it is judged at (built by
	// settleLinks): a set per file, so that a link is settled in time
	// linear in the scopes however many paths its target is judged at
	// (with --follow-symlinks, one per link followed to it).
	judged map[string]map[string]bool
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

// discover walks the roots in a deterministic order (roots as given, then
// lexical order within each directory) and lists the regular files to
// inspect, the files it skips, and the entries that are blocked without
// inspection (an unreadable directory could hide binaries).
//
// A symbolic link whose target is not judged in this run, at a path whose
// policy scopes are the same, is judged itself (its target's bytes under its
// own path): see pendingLink. scopes are the policy's path globs.
func discover(ctx context.Context, roots []string, include, exclude []string, follow bool, scopes []string) (*walker, error) {
	w := &walker{ctx: ctx, roots: roots, include: include, exclude: exclude, follow: follow, visited: map[string]bool{}, scopes: scopes}
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrRoot, r, unwrapPath(err))
		}
		w.resolved = append(w.resolved, abs)
	}
	for i, r := range roots {
		fi, err := os.Stat(r)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrRoot, r, unwrapPath(err))
		}
		switch {
		case fi.IsDir():
			w.visited[w.resolved[i]] = true
			if err := w.walkDir(i, r, w.resolved[i], ""); err != nil {
				return nil, err
			}
		case fi.Mode().IsRegular():
			// A file argument is named by its base name, and the user
			// named it explicitly: a symbolic link to it is followed.
			w.entries = append(w.entries, entry{root: i, rel: filepath.Base(r), abs: r, size: fi.Size(), follow: true, fileRoot: true, real: w.resolved[i]})
		default:
			return nil, fmt.Errorf("%w %s: not a regular file or directory", ErrRoot, r)
		}
	}
	if err := w.settleLinks(); err != nil {
		return nil, err
	}
	return w, nil
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
	w.entries = append(w.entries, entry{root: root, rel: rel, skipped: &SkippedFile{Root: w.roots[root], Path: rel, Reason: reason}})
}

func (w *walker) block(root int, rel string, err error) {
	w.entries = append(w.entries, entry{root: root, rel: rel, problem: err, format: FormatOther})
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
	ents, err := os.ReadDir(dir)
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
				w.excluded++
				continue
			}
			if isSignLeftover(name) {
				w.entries = append(w.entries, entry{root: root, rel: r, problem: &UnreadableError{Path: p, Err: errSignLeftover}, format: FormatOther, real: filepath.Join(real, name)})
				continue
			}
			info, err := e.Info()
			if err != nil {
				w.block(root, r, &UnreadableError{Path: p, Err: err})
				continue
			}
			w.entries = append(w.entries, entry{root: root, rel: r, abs: p, size: info.Size(), real: filepath.Join(real, name)})
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
	case fi.IsDir():
		if w.visited[target] {
			// Already walked (a loop, or a second way in): its files are
			// judged where they were found, but perhaps not alike.
			w.postpone(root, r, &pendingLink{path: p, target: target, dir: true})
			return nil
		}
		w.visited[target] = true
		return w.walkDir(root, p, target, r)
	case fi.Mode().IsRegular():
		if !w.isIncluded(r) {
			w.excluded++
			return nil
		}
		w.entries = append(w.entries, entry{root: root, rel: r, abs: p, size: fi.Size(), follow: true, real: target})
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

// postpone records a link for settleLinks, in its place in the walk's order.
func (w *walker) postpone(root int, rel string, l *pendingLink) {
	w.entries = append(w.entries, entry{root: root, rel: rel, link: l})
	w.pending++
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
	if w.pending == 0 {
		return nil
	}
	// Only files judged where the walk found them count: a file judged
	// through one link does not spare another link to it.
	w.judged = map[string]map[string]bool{}
	for i := range w.entries {
		if e := &w.entries[i]; e.real != "" {
			c := w.judged[e.real]
			if c == nil {
				c = map[string]bool{}
				w.judged[e.real] = c
			}
			c[w.class(e.rel)] = true
		}
	}
	all := w.entries
	w.entries = make([]entry, 0, len(all))
	for i := range all {
		e := &all[i]
		if e.link == nil {
			w.entries = append(w.entries, *e)
			continue
		}
		if err := w.settle(e.root, e.rel, e.link); err != nil {
			return err
		}
	}
	return nil
}

// settle decides one postponed link.
func (w *walker) settle(root int, rel string, l *pendingLink) error {
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
			w.entries = append(w.entries, entry{root: root, rel: rel, abs: l.path, size: fi.Size(), follow: true, real: l.target})
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
	mark := len(w.entries)
	err := w.shadow(root, l.path, l.target, rel, nil)
	switch {
	case errors.Is(err, errTooManyLinked):
		w.entries = w.entries[:mark]
		w.block(root, rel, &UnreadableError{Path: l.path, Err: err})
	case err != nil:
		return err
	case len(w.entries) == mark && !w.follow:
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
	ents, err := os.ReadDir(dir)
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
		t, size, follow := e.Type(), int64(-1), false
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
			x, t, size, follow = target, fi.Mode().Type(), fi.Size(), true
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
			if size < 0 {
				info, err := e.Info()
				if err != nil {
					w.block(root, r, &UnreadableError{Path: p, Err: err})
					continue
				}
				size = info.Size()
			}
			w.entries = append(w.entries, entry{root: root, rel: r, abs: p, size: size, follow: follow, real: x})
		}
		// Anything else (a FIFO, a device) is skipped where it lies.
	}
	return nil
}

// isJudged reports whether the file whose resolved path is real is judged
// where the walk found it, at a path the policy treats as it treats rel.
func (w *walker) isJudged(real, rel string) bool {
	return w.judged[real][w.class(rel)]
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
