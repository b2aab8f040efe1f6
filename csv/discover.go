package csv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/bmatcuk/doublestar/v4"
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
}

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
	// walked again.
	visited map[string]bool
}

// ErrRoot is wrapped by errors about a PATH argument that cannot be walked.
var ErrRoot = errors.New("cannot validate path")

// discover walks the roots in a deterministic order (roots as given, then
// lexical order within each directory) and lists the regular files to
// inspect, the files it skips, and the entries that are blocked without
// inspection (an unreadable directory could hide binaries).
func discover(ctx context.Context, roots []string, include, exclude []string, follow bool) (*walker, error) {
	w := &walker{ctx: ctx, roots: roots, include: include, exclude: exclude, follow: follow, visited: map[string]bool{}}
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
			w.entries = append(w.entries, entry{root: i, rel: filepath.Base(r), abs: r, size: fi.Size(), follow: true, fileRoot: true})
		default:
			return nil, fmt.Errorf("%w %s: not a regular file or directory", ErrRoot, r)
		}
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
		if ok, _ := doublestar.Match(p, rel); ok {
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
		if ok, _ := doublestar.Match(p, rel); ok {
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
				// where it lies. A link out of the roots would let a
				// packager that follows links ship what nobody judged.
				if target, err := resolve(p); err == nil && !w.inRoots(target) {
					w.block(root, r, &UnreadableError{Path: p, Err: fmt.Errorf("symbolic link to %s, outside the validated paths: not judged", target)})
					continue
				}
				w.skip(root, r, reasonSymlink)
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
				w.block(root, r, &UnreadableError{Path: p, Err: errSignLeftover})
				continue
			}
			info, err := e.Info()
			if err != nil {
				w.block(root, r, &UnreadableError{Path: p, Err: err})
				continue
			}
			w.entries = append(w.entries, entry{root: root, rel: r, abs: p, size: info.Size()})
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
			return nil // already walked: a loop, or a second way to the same directory
		}
		w.visited[target] = true
		return w.walkDir(root, p, target, r)
	case fi.Mode().IsRegular():
		if !w.isIncluded(r) {
			w.excluded++
			return nil
		}
		w.entries = append(w.entries, entry{root: root, rel: r, abs: p, size: fi.Size(), follow: true})
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
