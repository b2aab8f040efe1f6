package csv

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
)

// copyTree copies the regular files under src into a new directory, and
// returns it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	files := map[string][]byte{}
	for name, data := range snapshot(t, src) {
		files[name] = data
	}
	if len(files) == 0 {
		return t.TempDir()
	}
	return tree(t, files)
}

// swapForLink moves the directory (or file) at p out of the way, out of the
// tree, and puts a symbolic link to target in its place, as an attacker
// who controls the tree does between csv sign's planning and its writes.
// It returns where p was moved.
func swapForLink(t *testing.T, p, target string) string {
	t.Helper()
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(p, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	return moved
}

// canSymlink skips the test where symbolic links cannot be made.
func canSymlink(t *testing.T) {
	t.Helper()
	d := t.TempDir()
	if err := os.Symlink("x", filepath.Join(d, "l")); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
}

// atPlanned runs f once Sign has planned and made its journal, before it
// reads any file to sign.
func atPlanned(t *testing.T, f func()) {
	t.Helper()
	atStage = func(stage string) {
		if stage == "planned" {
			f()
		}
	}
	t.Cleanup(func() { atStage = nil })
}

// snapshotFiles is snapshot without the journals of runs going on.
func snapshotFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := snapshot(t, dir)
	for name := range m {
		if isJournalName(filepath.Base(name)) {
			delete(m, name)
		}
	}
	return m
}

// checkUntouched fails the test if the files under dir are not those of
// want (a snapshot), byte for byte and name for name.
func checkUntouched(t *testing.T, what, dir string, want map[string][]byte) {
	t.Helper()
	got := snapshot(t, dir)
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: %s was removed", what, name)
		} else if len(g) != len(data) || string(g) != string(data) {
			t.Errorf("%s: %s was changed (%d bytes, was %d)", what, name, len(g), len(data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s was written", what, name)
		}
	}
}

// TestSignSwappedDirectory: a directory of the tree swapped, after csv sign
// planned, for a symbolic link to a directory out of the tree (which holds
// binaries of the same names) makes the run fail: nothing out there is
// read, written or replaced, in place or into --out, and no file of the
// tree changes.
func TestSignSwappedDirectory(t *testing.T) {
	canSymlink(t)
	s := newSigner(t)
	for _, out := range []bool{false, true} {
		name := "in place"
		if out {
			name = "into --out"
		}
		t.Run(name, func(t *testing.T) {
			dir := buildTree(t)
			// Out of the tree: binaries named as those of win/.
			outside := copyTree(t, filepath.Join(dir, "win"))
			outsideBefore := snapshot(t, outside)
			opts := s.opts()
			if out {
				opts.Out = filepath.Join(t.TempDir(), "signed")
			}
			var treeBefore map[string][]byte
			atPlanned(t, func() {
				swapForLink(t, filepath.Join(dir, "win"), outside)
				treeBefore = snapshotFiles(t, dir)
			})
			_, err := Sign(t.Context(), opts, dir)
			var se *SignError
			if !errors.As(err, &se) {
				t.Errorf("err = %v, want a SignError", err)
			}
			checkUntouched(t, "out of the tree", outside, outsideBefore)
			checkUntouched(t, "the tree", dir, treeBefore)
			if out {
				if got := snapshot(t, opts.Out); len(got) != 0 {
					t.Errorf("--out holds %d files after a failed run", len(got))
				}
			}
		})
	}
}

// TestSignSwappedDirectoryWhileWriting: a directory swapped for a symbolic
// link to a directory out of the tree once csv sign has written the signed
// copies into it, just before the first rename there, still leads nowhere
// out of the tree: the files out there (named as the signed files) stay as
// they were. Signing fails with the directory it opened (see dirRoots),
// moved aside now, put back as it was (its sync reaches it by name), or
// goes on there.
func TestSignSwappedDirectoryWhileWriting(t *testing.T) {
	canSymlink(t)
	s := newSigner(t)
	dir := buildTree(t)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	win := filepath.Join(real, "win")
	outside := copyTree(t, filepath.Join(dir, "win"))
	outsideBefore := snapshot(t, outside)
	originals := snapshot(t, filepath.Join(dir, "win"))
	moved := ""
	beforeRename = func(dest string) error {
		if moved == "" && filepath.Dir(dest) == win {
			moved = swapForLink(t, win, outside)
		}
		return nil
	}
	t.Cleanup(func() { beforeRename = nil })
	_, err = Sign(t.Context(), s.opts(), dir)
	if moved == "" {
		t.Fatalf("no rename into %s: %v", win, err)
	}
	checkUntouched(t, "out of the tree", outside, outsideBefore)
	t.Logf("the run: %v", err)
	got := snapshotFiles(t, moved)
	if err != nil {
		checkUntouched(t, "the directory opened", moved, originals)
		return
	}
	for name, data := range originals {
		if string(got[name]) == string(data) {
			t.Errorf("the run succeeded, but %s in the directory it opened is not signed", name)
		}
	}
}

// TestSignSwappedFile: into --out, a file PATH swapped after planning for a
// symbolic link to a file out of the tree, or a symbolic link in the tree
// (followed) pointed there, is refused (errSwapped): the file out there is
// neither read into the signed tree nor changed. In place, a followed link
// pointed elsewhere is refused too.
func TestSignSwappedFile(t *testing.T) {
	canSymlink(t)
	s := newSigner(t)
	secret := testbin.PE(testbin.PEOptions{Code: []byte{0xcc, 0xcc, 0xc3}, Data: []byte("not to be signed")})
	for _, tc := range []struct {
		name   string
		out    bool
		follow bool
	}{
		{name: "a file PATH, into --out", out: true},
		{name: "a followed link, into --out", out: true, follow: true},
		{name: "a followed link, in place", follow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildTree(t)
			outside := tree(t, map[string][]byte{"secret.exe": secret})
			outsideBefore := snapshot(t, outside)
			opts := s.opts()
			if tc.out {
				opts.Out = filepath.Join(t.TempDir(), "signed")
			}
			root, victim := filepath.Join(dir, "win", "app.exe"), filepath.Join(dir, "win", "app.exe")
			if tc.follow {
				root, victim = dir, filepath.Join(dir, "win", "app-link.exe")
				if err := os.Symlink("app.exe", victim); err != nil {
					t.Fatal(err)
				}
				opts.FollowSymlinks = true
			}
			treeBefore := snapshot(t, dir)
			atPlanned(t, func() {
				if err := os.Remove(victim); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(outside, "secret.exe"), victim); err != nil {
					t.Fatal(err)
				}
				if !tc.follow {
					delete(treeBefore, "win/app.exe") // a link now
				}
			})
			_, err := Sign(t.Context(), opts, root)
			if !errors.Is(err, errSwapped) {
				t.Errorf("err = %v, want errSwapped", err)
			}
			checkUntouched(t, "out of the tree", outside, outsideBefore)
			checkUntouched(t, "the tree", dir, treeBefore)
			if tc.out {
				if got := snapshot(t, opts.Out); len(got) != 0 {
					t.Errorf("--out holds %d files after a failed run", len(got))
				}
			}
		})
	}
}

// TestSignSwappedOutDirectory: a directory of the --out tree (an earlier
// run's output) swapped after planning for a symbolic link to a directory
// out of it makes the run fail: the files out there, named as the signed
// files, are not replaced, and the --out tree is as it was.
func TestSignSwappedOutDirectory(t *testing.T) {
	canSymlink(t)
	s := newSigner(t)
	dir := buildTree(t)
	out := tree(t, map[string][]byte{"win/app.exe": []byte("an earlier output")})
	outside := tree(t, map[string][]byte{
		"app.exe":   []byte("not csv's"),
		"lib32.dll": []byte("not csv's either"),
	})
	outsideBefore := snapshot(t, outside)
	opts := s.opts()
	opts.Out = out
	var outBefore map[string][]byte
	atPlanned(t, func() {
		swapForLink(t, filepath.Join(out, "win"), outside)
		outBefore = snapshotFiles(t, out)
	})
	_, err := Sign(t.Context(), opts, dir)
	var se *SignError
	if !errors.As(err, &se) {
		t.Errorf("err = %v, want a SignError", err)
	}
	checkUntouched(t, "out of the tree", outside, outsideBefore)
	checkUntouched(t, "--out", out, outBefore)
}

// TestSignTreeResolvesOnce: what the tree resolves when it is opened is
// what it serves, whatever is swapped in later; a path under none of its
// directories is refused.
func TestSignTreeResolvesOnce(t *testing.T) {
	canSymlink(t)
	dir := tree(t, map[string][]byte{"sub/a.exe": peImg, "b.exe": peImg})
	outside := tree(t, map[string][]byte{"a.exe": []byte("outside")})
	tr, err := newSignTree(&SignOptions{}, []string{dir, filepath.Join(dir, "b.exe")})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	real := tr.resolved[0]
	if _, _, err := tr.openRegular(filepath.Join(real, "sub", "a.exe")); err != nil {
		t.Fatal(err)
	}
	swapForLink(t, filepath.Join(dir, "sub"), outside)
	if f, _, err := tr.openRegular(filepath.Join(real, "sub", "a.exe")); err == nil {
		f.Close()
		t.Error("read a file through a directory swapped for a link out of the tree")
	}
	if err := tr.rename(filepath.Join(real, "b.exe"), filepath.Join(real, "sub", "a.exe")); err == nil {
		t.Error("renamed a file through a directory swapped for a link out of the tree")
	}
	if _, _, err := tr.root(filepath.Dir(real), false); err == nil {
		t.Error("served a path under none of the tree's directories")
	}
	if got := snapshot(t, outside); !reflect.DeepEqual(got, map[string][]byte{"a.exe": []byte("outside")}) {
		t.Errorf("out of the tree: %v", got)
	}
}

// BenchmarkSignTreeFileOps measures the file operations csv sign does for
// one file in place (open the source, create the temporary file, the
// lstats of the journal and the backup, the hard link, the rename, the
// backup's removal), six directories deep: through the run's tree walking
// from the top (an os.Root walks each name with openat, as a recovery
// does), through a root on the file's directory (dirRoots, as signing
// does) and, for comparison, by path as csv did before.
func BenchmarkSignTreeFileOps(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b", "c", "d", "e", "f"), 0o755); err != nil {
		b.Fatal(err)
	}
	tr, err := newSignTree(&SignOptions{}, []string{dir})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.close()
	deep := filepath.Join(tr.resolved[0], "a", "b", "c", "d", "e", "f")
	src, temp, bak := filepath.Join(deep, "app.exe"), filepath.Join(deep, ".t"), filepath.Join(deep, ".b")
	if err := os.WriteFile(src, peImg, 0o644); err != nil {
		b.Fatal(err)
	}
	treeOps := func(b *testing.B) {
		for b.Loop() {
			f, _, err := tr.openRegular(src)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
			g, err := tr.openFile(temp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			g.Close()
			_, err1 := tr.lstat(temp)
			_, err2 := tr.lstat(src)
			_, err3 := tr.lstat(src)
			err4 := tr.link(src, bak)
			err5 := tr.rename(temp, src)
			err6 := tr.remove(bak)
			if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("tree", treeOps)
	tr.dirRoots = true
	b.Run("tree, directory roots", treeOps)
	b.Run("path", func(b *testing.B) {
		for b.Loop() {
			f, _, err := openRegular(src, false)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
			g, err := os.OpenFile(temp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			g.Close()
			_, err1 := os.Lstat(temp)
			_, err2 := os.Lstat(src)
			_, err3 := os.Lstat(src)
			err4 := os.Link(src, bak)
			err5 := os.Rename(temp, src)
			err6 := os.Remove(bak)
			if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
				b.Fatal(err)
			}
		}
	})
}
