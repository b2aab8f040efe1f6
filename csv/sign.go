package csv

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// SignOptions configure Sign.
type SignOptions struct {
	// Jobs (default twice GOMAXPROCS: signing waits on disk syncs),
	// Include, Exclude and FollowSymlinks select and pace the files as for
	// validation.
	Jobs           int
	Include        []string
	Exclude        []string
	FollowSymlinks bool
	// Key signs; Chain is the build certificate chain, leaf first. The
	// caller has checked that they match (signing.CheckSigningChain).
	Key   crypto.Signer
	Chain []*x509.Certificate
	// Out, if set, receives the signed tree: signing DIR into OUT writes
	// OUT/<path under DIR>. Otherwise files are signed in place.
	Out string
	// Bundle, if set, makes a Sigstore bundle from a file's SHA-256 as
	// signed (the command line wires bundle.New with Key, Chain and the
	// TSA: csv itself links no Sigstore protobufs); it is written as
	// FILE.sigstore.json next to every signed binary, and every other file
	// under the roots too.
	Bundle func(sha256 []byte) ([]byte, error)
	// Append keeps the signatures a file carries and adds one (PE: nested
	// in the first); a format that carries one signature (ELF) refuses it.
	Append bool
	// PE configures Authenticode signatures. PE.Append is read as Append
	// (the name it had before Append: set Append).
	PE authenticode.SignOptions
	// PageHashes puts each PE file's page-hash table in its signature
	// (signtool /ph, osslsigncode -ph).
	PageHashes bool
	// MSIExtended signs MSI packages with \x05MsiDigitalSignatureEx
	// (osslsigncode -add-msi-dse); a package signed with it is signed
	// with it again anyway.
	MSIExtended bool
	// IMA also gives every signed binary an IMA signature, in its
	// security.ima attribute or a sidecar FILE.sig (csv/ima_sign.go).
	IMA IMAMode
	// FSVerity also gives every signed ELF file an fs-verity built-in
	// signature over the signed output, in a sidecar FILE.fsv.sig
	// (csv/fsverity_sign.go).
	FSVerity bool
	// Expect, if set, maps each binary's path (Result.DisplayPath) to the
	// digests validation saw (Options.SignCheck): a binary validation did
	// not see, or whose digest differs when it is read for signing, changed
	// after it was validated, and nothing is signed.
	Expect map[string]cipolicy.Digests
	// Progress, if set, is called after each file.
	Progress func(done, total int)
	// Manifest, if set, is where the signed build manifest goes; Sign
	// calls MakeManifest with the signed binaries (in discovery order) once
	// all are signed, and writes its result with them, in the same
	// all-or-nothing commit.
	Manifest     string
	MakeManifest func(signed []Signed) ([]byte, error)

	// tree is Sign's: every file operation goes through it; syncer, the
	// file systems its temporary files are on; claims, the destinations
	// already taken; journal, the run's journal.
	tree    *signTree
	syncer  *fsSyncer
	claims  *claims
	journal *journal
}

// claims records which file each destination is written from: two files
// must never be written to one destination (the last would win).
type claims struct {
	mu sync.Mutex
	by map[string]string
}

// claim takes dest (a path planned, symbolic links resolved) for what (a
// display path), or says who has it.
func (c *claims) claim(dest, what string) error {
	key := foldPath(dest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]string{}
	}
	if other, ok := c.by[key]; ok {
		return fmt.Errorf("%w: %s and %s would both be written to %s", ErrOptions, other, what, dest)
	}
	c.by[key] = what
	return nil
}

// Signed is one file Sign wrote.
type Signed struct {
	Root, Path string // as in Result
	Format     Format
	Output     string // where the signed file is
	// SHA256 is the digest of the signed file.
	SHA256 []byte
	// Bundle is the path of the Sigstore bundle, if one was written.
	Bundle string
	// IMASidecar is the path of the IMA signature's sidecar FILE.sig, if
	// one was written (csv/ima_sign.go).
	IMASidecar string
	// FSVeritySidecar is the path of the fs-verity built-in signature's
	// sidecar FILE.fsv.sig, if one was written (csv/fsverity_sign.go).
	FSVeritySidecar string
	Warnings        []string
	fileRoot        bool
}

// DisplayPath is the path to show a user (see Result.DisplayPath).
func (s *Signed) DisplayPath() string { return displayPath(s.Root, s.Path, s.fileRoot) }

// SignReport is what Sign did.
type SignReport struct {
	Signed  []Signed
	Skipped []SkippedFile
	// Recovery is what Sign did first with earlier runs that were killed
	// (RecoverSign).
	Recovery *Recovery
	// Leftovers are files named like Sign's temporary files, backups or
	// journals that no journal accounts for (or of a run still going):
	// left alone, and blocked by validate.
	Leftovers []string
}

// SignError is the first failure that stopped a signing run, with the file.
type SignError struct {
	Path string
	Err  error
}

func (e *SignError) Error() string { return "signing " + e.Path + ": " + e.Err.Error() }
func (e *SignError) Unwrap() error { return e.Err }

// ErrChanged is wrapped when a file changed between validation and signing.
var ErrChanged = format.ErrChanged

// tempMarker is in the name of every temporary file Sign writes, next to
// its destination: ".NAME.csv-sign-RANDOM". A file with this name left by a
// killed run is never a signed output, and validate blocks it (it is
// usually a truncated binary).
const tempMarker = ".csv-sign-"

// errSignLeftover is why validate blocks a file named like Sign's
// temporary files, backups and journals: never something to ship, often a
// torn binary, and the sign of a tree a killed run may have left half
// signed.
var errSignLeftover = errors.New("a temporary file, backup or journal left by a csv sign that did not finish (never a signed output): " +
	"run the same csv sign again, which undoes or finishes that run from its journal; " +
	"if this file remains after that, no journal accounts for it: once no csv sign is running, remove it by hand")

// isSignLeftover reports whether a file name is one Sign gives its
// temporary files and backups (".NAME.csv-sign-" and 12 hex digits) or its
// journals (".csv-sign-journal-" and 12 hex digits).
func isSignLeftover(name string) bool {
	if isJournalName(name) {
		return true
	}
	i := strings.LastIndex(name, tempMarker)
	if !strings.HasPrefix(name, ".") || i < 1 || len(name)-i-len(tempMarker) != 12 {
		return false
	}
	_, err := hex.DecodeString(name[i+len(tempMarker):])
	return err == nil
}

// Sign signs every PE and ELF binary under roots with the build key:
// Authenticode for PE files, a kernel-module appended signature for ELF
// files, and with opts.Bundle a Sigstore bundle for every file. Files are
// signed in parallel, each read once through a fixed buffer.
//
// Signing is all or nothing: every signed file is written to a temporary
// file in its destination directory and synced; only when all succeeded are
// they renamed into place. On any error, or when ctx is cancelled, the
// temporary files are removed and the originals are untouched. A process
// killed in the middle leaves each destination either as it was or fully
// signed (renames are atomic), possibly ".csv-sign-" temporary files and
// backups, and its journal: the next Sign of the same roots (RecoverSign,
// which Sign calls first) puts the tree back as it was before the killed
// run, or where that cannot be, as that run would have left it, and
// removes what the journal proves is its own.
func Sign(ctx context.Context, opts SignOptions, roots ...string) (*SignReport, error) {
	if opts.Key == nil || len(opts.Chain) == 0 {
		return nil, fmt.Errorf("%w: signing needs a key and a certificate chain", ErrOptions)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: no paths to sign", ErrOptions)
	}
	if err := checkIMAOptions(&opts); err != nil { // IMA (csv/ima_sign.go)
		return nil, err
	}
	if err := checkFSVerityOptions(&opts); err != nil { // fs-verity (csv/fsverity_sign.go)
		return nil, err
	}
	// Every file operation from here on goes through the tree, opened now:
	// nothing swapped in later leads out of it.
	t, err := newSignTree(&opts, roots)
	if err != nil {
		return nil, err
	}
	defer t.close()
	opts.tree = t
	recovered, err := recoverSign(ctx, t)
	if err != nil {
		return nil, err
	}
	w, entries, err := discover(ctx, roots, opts.Include, opts.Exclude, opts.FollowSymlinks, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &InterruptedError{Err: ctx.Err()}
		}
		return nil, err
	}
	for i, r := range roots {
		if t.roots[i] == nil || t.resolved[i] != w.resolved[i] {
			return nil, fmt.Errorf("%w %s: it changed while csv sign started (now %s)", ErrRoot, r, w.resolved[i])
		}
	}
	t.dirRoots = true
	opts.syncer, opts.claims = &fsSyncer{}, &claims{}
	if opts.PE.Cache == nil {
		// One certificate cache for the run: each file's format handler
		// makes its own Signer, whose check of the new signature then
		// parses the chain once per run, not once per file (1.5% of a
		// run's CPU, perf).
		opts.PE.Cache = authenticode.NewCertCache()
	}
	defer opts.syncer.close()
	rep := &SignReport{Recovery: recovered}
	var todo []*entry
	for i := range entries {
		e := &entries[i]
		switch {
		case e.skipped != nil:
			rep.Skipped = append(rep.Skipped, *e.skipped)
		case errors.Is(e.problem, errSignLeftover):
			// Not signed, and not removed: no journal accounts for it.
			rep.Leftovers = append(rep.Leftovers, displayPath(roots[e.root], e.rel, e.fileRoot))
		case e.problem != nil:
			return nil, &SignError{Path: displayPath(roots[e.root], e.rel, e.fileRoot), Err: e.problem}
		default:
			todo = append(todo, e)
		}
	}
	if todo, err = plan(&opts, roots, todo, rep); err != nil {
		return nil, err
	}
	if opts.journal, err = openJournal(t, t.journalDir()); err != nil {
		t.removeMade()
		return nil, err
	}
	if atStage != nil {
		atStage("planned")
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		// Signing waits on each file's sync: twice the CPUs keeps them busy.
		jobs = 2 * runtime.GOMAXPROCS(0)
	}
	results := make([]*pending, len(todo))
	var next, done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range min(jobs, max(len(todo), 1)) {
		g.Go(func() error {
			buf := make([]byte, limits.ReadBuffer)
			for {
				k := int(next.Add(1)) - 1
				if k >= len(todo) || gctx.Err() != nil {
					return gctx.Err()
				}
				e := todo[k]
				p, err := signOne(gctx, &opts, roots, e, buf)
				results[k] = p // cleaned up below, even when err != nil
				if err != nil {
					return &SignError{Path: displayPath(roots[e.root], e.rel, e.fileRoot), Err: err}
				}
				if opts.Progress != nil {
					opts.Progress(int(done.Add(1)), len(todo))
				}
			}
		})
	}
	err = g.Wait()
	if err == nil && opts.Manifest != "" {
		var p *pending
		p, err = stageManifest(&opts, results)
		results = append(results, p)
	}
	if err == nil {
		err = commit(results, t, opts.syncer, opts.journal)
	}
	if err != nil {
		for _, p := range results {
			p.discard(t)
		}
		opts.journal.close(true)
		t.removeMade()
		if ctx.Err() != nil {
			return nil, &InterruptedError{Done: int(done.Load()), Total: len(todo), Err: ctx.Err()}
		}
		return nil, err
	}
	opts.journal.close(true)
	for _, p := range results {
		if p != nil && p.signed != nil {
			rep.Signed = append(rep.Signed, *p.signed)
		}
	}
	return rep, nil
}

// stageManifest writes the manifest of the signed binaries to a temporary
// file next to opts.Manifest.
func stageManifest(opts *SignOptions, results []*pending) (*pending, error) {
	var signed []Signed
	for _, p := range results {
		if p != nil && p.signed != nil && p.signed.Format != FormatOther {
			signed = append(signed, *p.signed)
		}
	}
	data, err := opts.MakeManifest(signed)
	if err != nil {
		return nil, fmt.Errorf("making the manifest: %w", err)
	}
	dest := opts.tree.manifest
	if err := opts.claims.claim(dest, "the manifest"); err != nil {
		return nil, err
	}
	f, name, err := createTemp(opts, dest, 0o644)
	if err != nil {
		return nil, err
	}
	p := &pending{temps: []string{name}, dests: []string{dest}}
	_, werr := f.Write(data)
	var serr error
	if !batchSync {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return p, fmt.Errorf("writing the manifest: %w", err)
	}
	return p, nil
}

// pending is one file's signed output, written but not yet in place.
type pending struct {
	temps  []string // temporary files, renamed in order onto dests
	dests  []string // (paths in the tree, symbolic links resolved)
	signed *Signed
}

// discard removes the temporary files.
func (p *pending) discard(t *signTree) {
	if p == nil {
		return
	}
	for _, name := range p.temps {
		if name != "" {
			t.remove(name)
		}
	}
}

// Test hooks: beforeRename, if set, is called before each rename onto dest
// (its backup made) and may fail it; atStage, if set, is called once the
// run is planned and its journal made, before any file is read for signing
// ("planned"), once the commit is journaled ("committed"), once every file
// is in place and journaled done ("done"), and by a recovery once it has
// checked a journal's files, before it changes any ("recovering"); syncDir
// syncs a directory after the renames; linkFile makes a backup.
var (
	beforeRename func(dest string) error
	atStage      func(stage string)
	syncDir      = (*signTree).syncDir
	linkFile     = (*os.Root).Link
)

// placed is a destination commit has renamed a signed file onto.
type placed struct {
	dest   string
	backup string // a hard link to what dest was; "" if there was nothing
	kept   bool   // dest existed but could not be linked: it cannot be put back
}

// commit makes the temporary files durable, renames each into place, then
// syncs the directories, so that a crash after Sign returns cannot lose a
// signed file and a crash before leaves every destination as it was.
//
// It is all or nothing on error too: before a rename replaces an existing
// destination, the destination is hard-linked to a backup name beside it
// (".NAME.csv-sign-RANDOM", like the temporary files), and if a later
// rename or a directory sync fails, every destination already replaced is
// put back from its backup (or removed, if it did not exist before). The
// backups are removed once all files are in place and synced. A file system
// without hard links cannot keep a backup: such a destination is replaced
// all the same, and named in the error if it cannot be put back.
//
// Before the first rename, the journal records every temporary file,
// destination and backup name with their identities, durably, so that a
// run killed in the middle can be undone (or finished) by the next.
func commit(ps []*pending, t *signTree, fss *fsSyncer, j *journal) (err error) {
	if batchSync {
		// One syncfs per file system instead of one fsync per file: the
		// kernel writes all the signed files out in one batch.
		if err := fss.sync(); err != nil {
			return err
		}
	}
	places, err := journalPlaces(t, ps)
	if err != nil {
		return err
	}
	if err := j.commit(slices.Clone(places)); err != nil {
		return err
	}
	if atStage != nil {
		atStage("committed")
	}
	backups := map[string]string{}
	for _, r := range places {
		backups[r.Dest] = r.Backup
	}
	var done []placed
	defer func() {
		if err == nil {
			for _, d := range done {
				if d.backup != "" {
					t.remove(d.backup)
				}
			}
			return
		}
		if left := rollback(t, done); len(left) > 0 {
			err = fmt.Errorf("%w; putting the originals back failed, these are left signed: %s", err, strings.Join(left, ", "))
		}
	}()
	dirs := map[string]bool{}
	for _, p := range ps {
		if p == nil {
			continue
		}
		for i, temp := range p.temps {
			dest := p.dests[i]
			d, err := backup(t, dest, backups[dest])
			if err != nil {
				return err
			}
			if beforeRename != nil {
				err = beforeRename(dest)
			}
			if err == nil {
				err = t.rename(temp, dest)
			}
			if err != nil {
				if d.backup != "" {
					t.remove(d.backup)
				}
				return fmt.Errorf("renaming %s into place: %w", dest, err)
			}
			p.temps[i] = "" // renamed: nothing to discard
			done = append(done, d)
			dirs[filepath.Dir(dest)] = true
		}
	}
	for dir := range dirs {
		if err := syncDir(t, dir); err != nil {
			return fmt.Errorf("syncing directory %s after renaming the signed files into it: %w", dir, err)
		}
	}
	j.done() // best effort: without it, a kill from here on is undone rather than finished
	if atStage != nil {
		atStage("done")
	}
	return nil
}

// journalPlaces lists, for the journal, every temporary file to rename
// with its identity, its destination's identity before (nil if there is
// none), and the backup name the destination will be linked to.
func journalPlaces(t *signTree, ps []*pending) ([]record, error) {
	var places []record
	for _, p := range ps {
		if p == nil {
			continue
		}
		for i, temp := range p.temps {
			dest := p.dests[i]
			fi, err := t.lstat(temp)
			if err != nil {
				return nil, err
			}
			tid := identityOf(fi)
			r := record{Kind: recPlace, Temp: temp, Dest: dest, Backup: tempName(dest), TempID: &tid}
			switch dfi, err := t.lstat(dest); {
			case err == nil:
				did := identityOf(dfi)
				r.DestID = &did
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("before replacing %s: %w", dest, err)
			}
			places = append(places, r)
		}
	}
	return places, nil
}

// backup hard-links dest, if it exists, to name beside it (the name the
// journal recorded).
func backup(t *signTree, dest, name string) (placed, error) {
	d := placed{dest: dest}
	if _, err := t.lstat(dest); errors.Is(err, fs.ErrNotExist) {
		return d, nil
	} else if err != nil {
		return d, fmt.Errorf("before replacing %s: %w", dest, err)
	}
	switch err := t.link(dest, name); {
	case err == nil:
		d.backup = name
		return d, nil
	case noHardLink(err):
		// No hard link here: replace without a backup.
		d.kept = true
		return d, nil
	default:
		return d, fmt.Errorf("keeping the original of %s until all files are in place: %w", dest, err)
	}
}

// noHardLink reports whether a link error means no link can be made here.
func noHardLink(err error) bool {
	if errors.Is(err, errors.ErrUnsupported) {
		return true
	}
	for _, e := range noLinkErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// rollback puts back the destinations commit replaced, last first, and
// returns those it could not put back.
func rollback(t *signTree, done []placed) (left []string) {
	for _, d := range slices.Backward(done) {
		var err error
		switch {
		case d.kept:
			err = errors.New("no backup")
		case d.backup != "":
			err = t.rename(d.backup, d.dest)
		default:
			err = t.remove(d.dest)
		}
		if err != nil {
			left = append(left, d.dest)
		}
	}
	dirs := map[string]bool{}
	for _, d := range done {
		dirs[filepath.Dir(d.dest)] = true
	}
	for dir := range dirs {
		syncDir(t, dir) // best effort: the error reported is the one that caused this
	}
	return left
}

// createTemp makes the temporary file for dest, in dest's directory (made
// if need be, and noted to be removed if the run fails), whose file system
// opts.syncer watches first. It returns the file and its name.
func createTemp(opts *SignOptions, dest string, mode os.FileMode) (*os.File, string, error) {
	t, dir := opts.tree, filepath.Dir(dest)
	if err := t.mkdirAll(dir); err != nil {
		return nil, "", err
	}
	if err := opts.syncer.watch(t, dir); err != nil {
		return nil, "", err
	}
	// Journaled before it is made, exclusively: a file of this random name
	// is then this run's.
	name := tempName(dest)
	if err := opts.journal.temp(name, dest); err != nil {
		return nil, "", err
	}
	f, err := t.openFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, mode.Perm())
	return f, name, err
}

// tempName draws a name for a temporary file or backup beside dest.
func tempName(dest string) string {
	var rnd [6]byte
	rand.Read(rnd[:])
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+tempMarker+hex.EncodeToString(rnd[:]))
}

// destination returns where the signed copy of e goes, as a path in the
// run's tree (symbolic links resolved): into the --out tree, or in place,
// where discovery found the file (e.real; for a symbolic link followed, or
// a file under a directory link, in place of its target: the link stays a
// link).
func destination(opts *SignOptions, e *entry) string {
	if opts.Out != "" {
		return filepath.Join(opts.tree.out.path, filepath.FromSlash(e.rel))
	}
	return e.real
}

// outputName is where the signed copy of e goes, as Signed.Output says it:
// under --out as given, or in place at the path found (at the target of a
// link followed to a file).
func outputName(opts *SignOptions, e *entry) string {
	switch {
	case opts.Out != "":
		return filepath.Join(opts.Out, filepath.FromSlash(e.rel))
	case e.follow:
		return e.real
	}
	return e.abs
}

// plan sets each file's destination and leaves out what must not be
// signed: under a root, the --out tree and the manifest (an earlier run's
// outputs) and, with bundles, Sigstore bundles; in place, a file reached
// twice (overlapping roots, links followed to one target) is signed once.
// It refuses an --out destination that is a file being signed: writing it
// would replace an original. Two files written to one destination are
// refused as they are written (claims). Files are compared as the paths
// discovery resolved them to (e.real) and the tree's roots were resolved
// to, once: what is planned is what the run then reads and writes.
func plan(opts *SignOptions, roots []string, todo []*entry, rep *SignReport) ([]*entry, error) {
	t := opts.tree
	var out, man string
	if opts.Out != "" {
		out = foldPath(t.out.path)
	}
	if opts.Manifest != "" {
		man = foldPath(t.manifest)
	}
	sources := map[string]bool{}
	seen := map[string]bool{}
	kept := todo[:0]
	for _, e := range todo {
		if e.real == "" {
			return nil, &SignError{Path: displayPath(roots[e.root], e.rel, e.fileRoot), Err: errors.New("internal error: a file to sign without its resolved path (please report it)")}
		}
		src := foldPath(e.real)
		reason := ""
		switch {
		case out != "" && within(src, out) && !within(foldPath(t.resolved[e.root]), out):
			reason = "in the --out tree: an earlier output, not signed again"
		case src == man:
			reason = "the manifest: written anew"
		case opts.Bundle != nil && strings.HasSuffix(e.abs, ".sigstore.json"):
			reason = "a Sigstore bundle: not bundled again"
		}
		if reason != "" {
			rep.Skipped = append(rep.Skipped, SkippedFile{Root: roots[e.root], Path: e.rel, Reason: reason, fileRoot: e.fileRoot})
			continue
		}
		e.dest = destination(opts, e)
		if out == "" {
			if seen[src] {
				continue // the same file, reached again
			}
			seen[src] = true
		}
		sources[src] = true
		kept = append(kept, e)
	}
	if out != "" {
		for _, e := range kept {
			if sources[foldPath(e.dest)] {
				return nil, fmt.Errorf("%w: signing %s into %s would replace %s, which is being signed: choose an --out directory outside the paths signed",
					ErrOptions, displayPath(roots[e.root], e.rel, e.fileRoot), opts.Out, outputName(opts, e))
			}
		}
	}
	return kept, nil
}

// resolveDir resolves the symbolic links of dir, or of its longest
// existing ancestor (an --out tree may not exist yet).
func resolveDir(dir string) string {
	rest := ""
	for d := dir; ; {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		rest = filepath.Join(filepath.Base(d), rest)
		d = parent
	}
}

// within reports whether path p is dir or lies under it (both absolute).
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// signOne signs one file into temporary files. It returns the pending
// output even on error, so the caller can remove it.
func signOne(ctx context.Context, opts *SignOptions, roots []string, e *entry, buf []byte) (p *pending, err error) {
	p = &pending{}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error while signing (please report it): %v", r)
		}
	}()
	// The file is read where discovery found it, every link resolved (and
	// in place, signed there): the file read is the file replaced, and a
	// link on the way is checked to lead there still.
	f, st, err := opts.tree.openRegular(e.real)
	if err != nil {
		return p, err
	}
	defer f.Close()
	if err := opts.tree.recheckLink(e, st); err != nil {
		return p, err
	}
	size := st.Size()
	n, err := io.ReadFull(f, buf[:min(int64(sniffSize), size)])
	if err != nil {
		return p, format.FileChanged(err)
	}
	file := format.NewFile(f, size, buf, n)
	file.Name = filepath.Base(filepath.FromSlash(e.rel))
	h := sniff(file)
	ft := FormatOther
	if h != nil {
		ft = h.Format()
	}
	display := displayPath(roots[e.root], e.rel, e.fileRoot)
	var want cipolicy.Digests
	if opts.Expect != nil {
		var judged bool
		want, judged = opts.Expect[display]
		switch {
		case ft == FormatOther && judged:
			// A binary swapped for something else is not left out quietly.
			return p, signing.Errorf(ErrChanged, "the file changed after it was validated: it was a binary when validated, and is no longer a PE or ELF file")
		case ft != FormatOther && (!judged || want.Get(cipolicy.SHA256) == nil):
			return p, signing.Errorf(ErrChanged, "the file changed after it was validated: validation did not judge it")
		}
		if want == nil {
			want = cipolicy.Digests{} // an expectation, if an empty one
		}
	}
	if ft == FormatOther && opts.Bundle == nil {
		return nil, nil // not a binary: left alone
	}
	dest := e.dest // set by plan
	s := &Signed{Root: roots[e.root], Path: e.rel, Format: ft, Output: outputName(opts, e), fileRoot: e.fileRoot}
	// A file that is no binary, in place, stays as it is: only its bundle
	// is written.
	var out *os.File
	if ft != FormatOther || opts.Out != "" {
		if err := opts.claims.claim(dest, display); err != nil {
			return p, err
		}
		var name string
		if out, name, err = createTemp(opts, dest, st.Mode()); err != nil {
			return p, err
		}
		p.temps, p.dests = append(p.temps, name), append(p.dests, dest)
		defer func() {
			if cerr := out.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	// The signed output's SHA-256, for bundles and the manifest (and the
	// report when it is computed anyway).
	needSum := opts.Bundle != nil || opts.Manifest != "" || opts.IMA != IMAOff // IMA: csv/ima_sign.go
	var outSum []byte
	if h != nil {
		res, err := h.Sign(ctx, file, out, &format.SignOptions{Key: opts.Key, Chain: opts.Chain,
			Append: opts.Append || opts.PE.Append, Authenticode: opts.PE, PageHashes: opts.PageHashes, Expect: want, Sum: needSum,
			MSIExtended: opts.MSIExtended})
		if err != nil {
			return p, err
		}
		s.Warnings, outSum = res.Warnings, res.SHA256
		if opts.IMA != IMAOff { // IMA (csv/ima_sign.go)
			if err := signIMA(opts, p, s, out, dest, display, outSum); err != nil {
				return p, err
			}
		}
		if opts.FSVerity && ft == FormatELF { // fs-verity (csv/fsverity_sign.go)
			if err := signFSVerity(opts, p, s, out, dest, display); err != nil {
				return p, err
			}
		}
	} else {
		var w io.Writer = io.Discard
		if out != nil {
			w = out
		}
		if outSum, err = copyHashing(ctx, file, w); err != nil {
			return p, err
		}
	}
	if out != nil {
		// The mode (setuid included) once the content is all there.
		if err := keepMetadata(out, st, opts.Out == ""); err != nil {
			return p, fmt.Errorf("keeping the file's mode: %w", err)
		}
	}
	switch {
	case out == nil:
	case !batchSync:
		if err := out.Sync(); err != nil {
			return p, err
		}
	default:
		startWriteback(out)
	}
	s.SHA256 = outSum
	if opts.Bundle != nil {
		b, err := opts.Bundle(outSum)
		if err != nil {
			return p, fmt.Errorf("making the Sigstore bundle: %w", err)
		}
		bdest := dest + ".sigstore.json"
		if err := opts.claims.claim(bdest, display+"'s bundle"); err != nil {
			return p, err
		}
		bf, bname, err := createTemp(opts, bdest, 0o644)
		if err != nil {
			return p, err
		}
		p.temps, p.dests = append(p.temps, bname), append(p.dests, bdest)
		_, werr := bf.Write(b)
		var serr error
		if !batchSync {
			serr = bf.Sync()
		}
		if cerr := bf.Close(); werr == nil && serr == nil {
			werr = cerr
		}
		if werr != nil || serr != nil {
			return p, errors.Join(werr, serr)
		}
		s.Bundle = s.Output + ".sigstore.json"
	}
	p.signed = s
	return p, nil
}

// copyHashing copies the file to out, returning its SHA-256.
func copyHashing(ctx context.Context, f *format.File, out io.Writer) ([]byte, error) {
	h := sha256.New()
	if err := f.Stream(ctx, h, out); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// SignedPaths lists the signed files' display paths, sorted.
func (r *SignReport) SignedPaths() []string {
	var out []string
	for i := range r.Signed {
		out = append(out, r.Signed[i].DisplayPath())
	}
	slices.Sort(out)
	return out
}
