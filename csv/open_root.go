package csv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/codesignval/csv/internal/safefile"
)

// signTree is the directories a signing run, or a recovery, may read and
// write, and every file operation of Sign and RecoverSign goes through it:
// reading the files to sign, making directories, temporary files, backups
// (hard links), renames, removals, the journal, directory syncs.
//
// # Security
//
// The tree is opened when the run starts, once: an os.Root on each
// directory PATH, on the directory of each file PATH (where a link named
// as a PATH leads), on --out (made when first needed) and on the
// directory of the manifest. Paths are resolved then, and every path the
// run uses afterwards is one of those directories joined with a name
// relative to it: the deepest of them that holds it serves the operation,
// with the name relative to itself (while signing, through a root on the
// file's directory, opened once from that top: see dirRoots). os.Root
// resolves the name one element at a time with openat and refuses ".."
// and any symbolic link that leads out of it, whatever is swapped in
// meanwhile: a directory of the tree
// replaced by a link to elsewhere after planning makes the operation fail,
// it does not read, write, rename, link or remove a file out there.
//
// What os.Root does not do, and how it is made up for:
//
//   - It follows a symbolic link in the last element of a name it opens, as
//     long as the link stays inside (it ignores O_NOFOLLOW). A file to sign
//     must be the regular file planned, not a link swapped in for it (it
//     could lead to another file of the tree, or a FIFO): openRegular opens
//     it without waiting (O_NONBLOCK on Unix), then checks with Lstat,
//     through the same root, that the name is a regular file and the file
//     opened (os.SameFile), or refuses with errSwapped. This needs no *at
//     call of our own, so it works alike on every system os.Root supports.
//   - Its Chmod and Chown act on names, and may act on a link swapped in
//     (its documentation says so): a signed copy's mode and owner are set
//     on the open file instead (keepMetadata: fchmod, fchown).
//   - Links that stay inside a root are followed, as os.Root does: they
//     lead only to files of the tree, which whoever can swap them can
//     change anyway. A file signed through a link is read and written at
//     the target planned (e.real), and the link is checked again to lead
//     there (recheckLink).
//
// A top whose directory is moved keeps referring to it where it went (an
// open directory): what was planned in it is done there, never under a
// path that now names another directory. A directory FIFO swapped in is
// refused at once, not waited on (openRoot, openDirFlag).
type signTree struct {
	mu   sync.Mutex
	tops []*treeTop
	// roots are the PATHs' tops (nil for a PATH that does not exist) and
	// resolved their paths (symbolic links resolved); out and manifest,
	// those of --out and the manifest (the manifest's directory's top).
	roots    []*treeTop
	resolved []string
	out      *treeTop
	manifest string
	// scope is what a recovery may touch.
	scope recoveryScope
	// made are the directories made, in order; known, the directories
	// that exist (made or found), so that each is made once.
	made  []madeDir
	known map[string]bool
	// ancestors are the roots opened to make a top that did not exist.
	ancestors []*os.Root
	// dirRoots, set by Sign once the recovery is done and before its
	// workers start, makes root serve each path through a root opened on
	// its directory, once (dirs, by absolute path), instead of walking
	// every element from the top anew: signing one file takes some ten
	// operations in its directory, and each walk from the top costs an
	// openat and a close per element. A directory root is opened by
	// walking from the top, so it is a directory that was inside the tree
	// then; like a top, it keeps referring to that directory wherever it
	// is moved, and nothing swapped in for it or under its name is
	// followed. A recovery walks from the top for every operation.
	dirRoots bool
	dirs     map[string]*os.Root
}

// treeTop is one directory of the tree, opened as an os.Root.
type treeTop struct {
	path string   // absolute, symbolic links resolved
	root *os.Root // nil until made (--out, the manifest's directory)
}

// madeDir is a directory the run made, as its parent root names it; top,
// if the directory is a top itself.
type madeDir struct {
	in   *os.Root
	name string
	top  *treeTop
}

// errSwapped is wrapped when a file planned to be signed is, when opened,
// no longer the regular file at its name: a symbolic link was swapped in.
var errSwapped = errors.New("swapped for a symbolic link or another file since it was planned: not signed")

// newSignTree opens the tree of a signing run of roots with opts.
func newSignTree(opts *SignOptions, roots []string) (*signTree, error) {
	t := &signTree{known: map[string]bool{}, dirs: map[string]*os.Root{}}
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		var fi fs.FileInfo
		if err == nil {
			fi, err = os.Stat(abs)
		}
		if errors.Is(err, fs.ErrNotExist) {
			// Sign's discovery says so; a recovery has nothing there.
			t.roots, t.resolved = append(t.roots, nil), append(t.resolved, "")
			continue
		}
		if err != nil {
			t.close()
			return nil, fmt.Errorf("%w %s: %w", ErrRoot, r, unwrapPath(err))
		}
		dir := abs
		if fi.IsDir() {
			t.scope.dirs = append(t.scope.dirs, foldPath(abs))
		} else {
			dir = filepath.Dir(abs)
			t.scope.files = append(t.scope.files, foldPath(abs))
		}
		tp, err := t.addTop(dir, false)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("%w %s: %w", ErrRoot, r, unwrapPath(err))
		}
		t.roots, t.resolved = append(t.roots, tp), append(t.resolved, abs)
	}
	if opts.Out != "" {
		abs, err := filepath.Abs(opts.Out)
		if err != nil {
			t.close()
			return nil, err
		}
		if t.out, err = t.addTop(resolveDir(abs), true); err != nil {
			t.close()
			return nil, fmt.Errorf("opening --out %s: %w", opts.Out, err)
		}
		t.scope.dirs = append(t.scope.dirs, foldPath(t.out.path))
	}
	if opts.Manifest != "" {
		abs, err := filepath.Abs(opts.Manifest)
		if err != nil {
			t.close()
			return nil, err
		}
		tp, err := t.addTop(resolveDir(filepath.Dir(abs)), true)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("opening the directory of the manifest %s: %w", opts.Manifest, err)
		}
		t.manifest = filepath.Join(tp.path, filepath.Base(abs))
		t.scope.files = append(t.scope.files, foldPath(t.manifest))
	}
	return t, nil
}

// addTop opens the directory at path (resolved) as a top, once; one that
// does not exist yet is made when first written to, if mayMake.
func (t *signTree) addTop(path string, mayMake bool) (*treeTop, error) {
	for _, tp := range t.tops {
		if tp.path == path {
			return tp, nil
		}
	}
	tp := &treeTop{path: path}
	r, err := openRoot(path)
	switch {
	case err == nil:
		tp.root = r
		t.known[path] = true
	case !mayMake || !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	t.tops = append(t.tops, tp)
	return tp, nil
}

// close closes every root.
func (t *signTree) close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tp := range t.tops {
		if tp.root != nil {
			tp.root.Close()
			tp.root = nil
		}
	}
	for _, r := range t.ancestors {
		r.Close()
	}
	t.ancestors = nil
	t.closeDirs()
}

// closeDirs closes the directory roots. Called with t.mu held.
func (t *signTree) closeDirs() {
	for _, r := range t.dirs {
		r.Close()
	}
	clear(t.dirs)
}

// caseFolding: file names usually ignore case here.
const caseFolding = runtime.GOOS == "windows" || runtime.GOOS == "darwin"

// foldPath is p as paths are compared: in lower case where file names
// usually ignore case (Windows, macOS).
func foldPath(p string) string {
	if caseFolding {
		return strings.ToLower(p)
	}
	return p
}

// locate finds the top that serves the absolute path p: the deepest that
// holds it. It returns the top and p relative to it.
func (t *signTree) locate(p string) (*treeTop, string, error) {
	var best *treeTop
	for _, tp := range t.tops {
		if within(p, tp.path) && (best == nil || len(tp.path) > len(best.path)) {
			best = tp
		}
	}
	if best == nil {
		return nil, "", fmt.Errorf("%s lies under none of the paths signed, --out or the manifest's directory", p)
	}
	rel, err := filepath.Rel(best.path, p)
	if err != nil {
		return nil, "", err
	}
	return best, rel, nil
}

// root returns the os.Root that serves p and p relative to it: p's top,
// or, once dirRoots is on, a root on p's directory (see dirRoots); with
// mayMake, a top that does not exist yet is made first.
func (t *signTree) root(p string, mayMake bool) (*os.Root, string, error) {
	tp, r, rel, err := t.rootOf(p, mayMake)
	if err != nil || !t.dirRoots {
		return r, rel, err
	}
	dir := filepath.Dir(rel)
	if dir == "." {
		return r, rel, nil
	}
	key := filepath.Join(tp.path, dir)
	t.mu.Lock()
	dr := t.dirs[key]
	t.mu.Unlock()
	if dr == nil {
		if dr, err = openRootIn(r, dir); err != nil {
			return nil, "", fullPath(err, key, "")
		}
		t.mu.Lock()
		if old := t.dirs[key]; old != nil {
			dr.Close()
			dr = old
		} else {
			t.dirs[key] = dr
		}
		t.mu.Unlock()
	}
	return dr, filepath.Base(rel), nil
}

// rootOf is root, with the top.
func (t *signTree) rootOf(p string, mayMake bool) (*treeTop, *os.Root, string, error) {
	tp, rel, err := t.locate(p)
	if err != nil {
		return nil, nil, "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tp.root == nil {
		if !mayMake {
			return nil, nil, "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		if err := t.makeTop(tp); err != nil {
			return nil, nil, "", err
		}
	}
	return tp, tp.root, rel, nil
}

// makeTop makes a top that does not exist (--out, the manifest's
// directory) and its missing parents, through a root opened on its
// longest existing ancestor, noting each directory made. Called with t.mu
// held.
func (t *signTree) makeTop(tp *treeTop) error {
	anc, rest := tp.path, []string(nil)
	for {
		fi, err := os.Lstat(anc)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("making %s: %s is not a directory (%s)", tp.path, anc, safefile.Kind(fi.Mode()))
			}
			break
		}
		parent := filepath.Dir(anc)
		if !errors.Is(err, fs.ErrNotExist) || parent == anc {
			return fmt.Errorf("making %s: %w", tp.path, err)
		}
		rest = append(rest, filepath.Base(anc))
		anc = parent
	}
	slices.Reverse(rest)
	ar, err := openRoot(anc)
	if err != nil {
		return fmt.Errorf("making %s: %w", tp.path, err)
	}
	t.ancestors = append(t.ancestors, ar)
	for i := range rest {
		name := filepath.Join(rest[:i+1]...)
		switch err := ar.Mkdir(name, 0o755); {
		case err == nil:
			m := madeDir{in: ar, name: name}
			if i == len(rest)-1 {
				m.top = tp
			}
			t.made = append(t.made, m)
		case !errors.Is(err, fs.ErrExist):
			return fmt.Errorf("making %s: %w", tp.path, err)
		}
	}
	var r *os.Root
	if len(rest) == 0 {
		r, err = openRoot(anc)
	} else {
		r, err = openRootIn(ar, filepath.Join(rest...))
	}
	if err != nil {
		return fmt.Errorf("making %s: %w", tp.path, err)
	}
	tp.root = r
	t.known[tp.path] = true
	return nil
}

// mkdirAll makes the directory at p and its missing parents, inside its
// top, noting each one made (removeMade removes them if the run fails).
func (t *signTree) mkdirAll(p string) error {
	t.mu.Lock()
	known := t.known[p]
	t.mu.Unlock()
	if known {
		return nil
	}
	tp, r, rel, err := t.rootOf(p, true)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rel == "." {
		return nil
	}
	parts := strings.Split(rel, string(filepath.Separator))
	for i := range parts {
		name := filepath.Join(parts[:i+1]...)
		abs := filepath.Join(tp.path, name)
		if t.known[abs] {
			continue
		}
		switch err := r.Mkdir(name, 0o755); {
		case err == nil:
			t.made = append(t.made, madeDir{in: r, name: name})
		case !errors.Is(err, fs.ErrExist):
			return fullPath(err, abs, "")
		}
		t.known[abs] = true
	}
	return nil
}

// removeMade removes the directories made, last made first, if they are
// empty.
func (t *signTree) removeMade() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeDirs() // Windows removes no directory that is open
	for _, m := range slices.Backward(t.made) {
		if m.top != nil && m.top.root != nil {
			m.top.root.Close() // Windows removes no directory that is open
			m.top.root = nil
		}
		m.in.Remove(m.name) // fails, harmlessly, if something else is in it
	}
	t.made = nil
	clear(t.known)
}

// fullPath gives an error of an os.Root, which names paths relative to
// it, the absolute paths in the tree.
func fullPath(err error, p, newp string) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return &fs.PathError{Op: pe.Op, Path: p, Err: pe.Err}
	case errors.As(err, &le):
		return &os.LinkError{Op: le.Op, Old: p, New: newp, Err: le.Err}
	}
	return err
}

// openFile opens the file at p (see os.Root.OpenFile).
func (t *signTree) openFile(p string, flag int, perm os.FileMode) (*os.File, error) {
	r, rel, err := t.root(p, false)
	if err != nil {
		return nil, err
	}
	f, err := r.OpenFile(rel, flag, perm)
	return f, fullPath(err, p, "")
}

// openRegular opens the regular file at p for reading, without waiting (a
// FIFO swapped in is refused at once) and without following a symbolic
// link in its last element: see signTree. It returns the file and its
// fstat information.
func (t *signTree) openRegular(p string) (*os.File, fs.FileInfo, error) {
	r, rel, err := t.root(p, false)
	if err != nil {
		return nil, nil, err
	}
	f, err := r.OpenFile(rel, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		if lst, lerr := r.Lstat(rel); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 {
			err = &fs.PathError{Op: "open", Path: p, Err: fmt.Errorf("%w: %w", errSwapped, unwrapPath(err))}
		}
		return nil, nil, fullPath(err, p, "")
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: p, Err: fmt.Errorf("%w (%s)", safefile.ErrNotRegular, safefile.Kind(st.Mode()))}
	}
	if err == nil {
		lst, lerr := r.Lstat(rel)
		switch {
		case lerr != nil:
			err = fullPath(lerr, p, "")
		case !lst.Mode().IsRegular() || !os.SameFile(st, lst):
			err = &fs.PathError{Op: "open", Path: p, Err: errSwapped}
		}
	}
	if err == nil {
		err = safefile.SetBlocking(f)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// lstat describes the file at p, not following a link in its last
// element.
func (t *signTree) lstat(p string) (fs.FileInfo, error) {
	r, rel, err := t.root(p, false)
	if err != nil {
		return nil, err
	}
	fi, err := r.Lstat(rel)
	return fi, fullPath(err, p, "")
}

// rename renames the file at oldp onto newp, both in one top.
func (t *signTree) rename(oldp, newp string) error {
	r, oldRel, newRel, err := t.pair(oldp, newp)
	if err != nil {
		return err
	}
	return fullPath(r.Rename(oldRel, newRel), oldp, newp)
}

// link makes newp a hard link to the file at oldp (not to where a link
// there leads), both in one top.
func (t *signTree) link(oldp, newp string) error {
	r, oldRel, newRel, err := t.pair(oldp, newp)
	if err != nil {
		return err
	}
	return fullPath(linkFile(r, oldRel, newRel), oldp, newp)
}

// pair locates two paths that must lie in one top.
func (t *signTree) pair(oldp, newp string) (*os.Root, string, string, error) {
	r, oldRel, err := t.root(oldp, false)
	if err != nil {
		return nil, "", "", err
	}
	r2, newRel, err := t.root(newp, false)
	if err != nil {
		return nil, "", "", err
	}
	if r != r2 {
		return nil, "", "", fmt.Errorf("%s and %s lie in different directories signed", oldp, newp)
	}
	return r, oldRel, newRel, nil
}

// remove removes the file (or empty directory) at p; a link is removed,
// not its target.
func (t *signTree) remove(p string) error {
	r, rel, err := t.root(p, false)
	if err != nil {
		return err
	}
	return fullPath(r.Remove(rel), p, "")
}

// openDir opens the directory at p.
func (t *signTree) openDir(p string) (*os.File, error) {
	r, rel, err := t.root(p, false)
	if err != nil {
		return nil, err
	}
	f, err := r.OpenFile(rel, os.O_RDONLY|openDirFlag, 0)
	if err != nil {
		return nil, fullPath(err, p, "")
	}
	if st, err := f.Stat(); err != nil || !st.IsDir() {
		f.Close()
		if err == nil {
			err = &fs.PathError{Op: "open", Path: p, Err: errors.New("not a directory")}
		}
		return nil, err
	}
	return f, nil
}

// syncDir syncs the directory at p, so that the renames in it last.
func (t *signTree) syncDir(p string) error {
	f, err := t.openDir(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// readDir lists the directory at p, sorted by name.
func (t *signTree) readDir(p string) ([]fs.DirEntry, error) {
	f, err := t.openDir(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, err
}

// recheckLink checks that the path e was found at still leads to the file
// opened for it, when that path goes through a symbolic link (e.follow, or
// a directory link on the way): it was resolved once, at planning, and the
// file read is the one it led to then. It is a stat of the path the tree
// names, which reads and writes nothing.
func (t *signTree) recheckLink(e *entry, opened fs.FileInfo) error {
	if !e.follow && e.root < len(t.resolved) && e.real == filepath.Join(t.resolved[e.root], filepath.FromSlash(e.rel)) {
		return nil // no link on the way
	}
	st, err := os.Stat(e.abs)
	if err != nil {
		return fmt.Errorf("%w: it was reached through a symbolic link that no longer leads to a file: %w", errSwapped, unwrapPath(err))
	}
	if !os.SameFile(st, opened) {
		return fmt.Errorf("%w: it was reached through a symbolic link that now leads elsewhere than %s", errSwapped, e.real)
	}
	return nil
}
