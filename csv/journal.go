package csv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// The signing journal makes what a killed csv sign leaves provably csv's,
// and lets the next run of the same csv sign finish or undo its job.
//
// A run writes its journal, ".csv-sign-journal-" and 12 hex digits, in its
// journal directory (the --out directory; otherwise the first PATH if it is
// a directory, or the directory of the first PATH) before it creates any
// other file, and holds an exclusive lock on it (flock, LockFileEx) until it
// ends. One JSON record per line:
//
//	run     first: the format version, the process id, the start time
//	temp    before each temporary file is created (exclusively: O_EXCL),
//	        its random name and its destination
//	place   once every temporary file is written and synced, one per
//	        destination: the temporary file's identity (device, inode,
//	        size, modification time), the destination's identity before
//	        (none if it did not exist), and the name its backup will take
//	commit  after the place records, synced with the journal's directory
//	        before the first rename
//	done    once every file is in place and its directory synced
//
// A run that ends, well or not, removes its journal. A journal left behind
// is a run that was killed; the next run (RecoverSign, which Sign calls)
// takes the lock, so that it never touches the files of a run still going,
// and:
//
//   - without a commit record (killed while signing): removes the
//     temporary files the journal names; nothing had been replaced;
//   - with a commit record and no done record (killed while renaming):
//     puts every destination back as it was, from the backups (hard links
//     to the originals) the journal names, or removes it if it did not
//     exist; where a destination was replaced and no backup could be made
//     (no hard links there), finishes the job instead: renames every
//     remaining temporary file into place;
//   - with a done record: removes the backups.
//
// Paths in a journal are relative to its directory. A journal counts only
// if this user owns it (on Unix): anyone who can write the tree can write
// one, and the identities it records are of files anyone can stat, so a
// journal another user wrote proves nothing. A file is touched only if it
// has the identity the journal recorded (a temporary file's name was
// journaled before the file was made exclusively; a backup is a hard link
// to the original, whose identity was journaled), is one Sign of the same
// paths writes (under a directory PATH or --out, a file PATH, the
// manifest: not any file beside those), and is named as csv names its
// temporary files beside their destination; a destination is replaced only
// if it is still what the journal says. Anything else stops the recovery before it
// changes anything (RecoveryError), and leftovers no journal accounts for
// stay, blocked by validate, for the user to remove.

// journalPrefix begins the name of a signing run's journal.
const journalPrefix = ".csv-sign-journal-"

// journalVersion is the format version in a journal's run record.
const journalVersion = 1

// isJournalName reports whether name is a journal's: the prefix and 12 hex
// digits.
func isJournalName(name string) bool {
	rest, ok := strings.CutPrefix(name, journalPrefix)
	if !ok || len(rest) != 12 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// fileID identifies a file and its content as a journal records it:
// device and inode (zero where the system has none), size, and
// modification time.
type fileID struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
}

// same reports whether two identities are of one file with one content: a
// file renamed or hard-linked keeps its identity; one rewritten or replaced
// does not.
func (a fileID) same(b fileID) bool { return a == b }

// record is one line of a journal.
type record struct {
	Kind    string    `json:"kind"`
	Version int       `json:"v,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Temp    string    `json:"temp,omitempty"`
	Dest    string    `json:"dest,omitempty"`
	Backup  string    `json:"backup,omitempty"`
	TempID  *fileID   `json:"temp_id,omitempty"`
	// DestID is the destination before the run: nil if it did not exist.
	DestID *fileID `json:"dest_id,omitempty"`
	// N is the number of place records a commit record seals.
	N int `json:"n,omitempty"`
}

// Record kinds.
const (
	recRun    = "run"
	recTemp   = "temp"
	recPlace  = "place"
	recCommit = "commit"
	recDone   = "done"
)

// errJournal is wrapped by errors about a journal that is not one csv
// writes.
var errJournal = errors.New("not a csv sign journal")

// parseJournal reads a journal's records. A last line without its newline
// (a write the kill cut short) is ignored.
func parseJournal(r io.Reader) (recs []record, err error) {
	defer func() {
		if p := recover(); p != nil {
			recs, err = nil, fmt.Errorf("%w: internal error reading it: %w", errJournal, panicerr.New(p))
		}
	}()
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := readLine(br, limits.MaxJournalLine)
		if errors.Is(err, io.EOF) {
			break // the end, or a torn last line
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", errJournal, line, err)
		}
		if len(recs) >= limits.MaxJournalRecords {
			return nil, fmt.Errorf("%w: more than %d records (limits.MaxJournalRecords)", errJournal, limits.MaxJournalRecords)
		}
		var rec record
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", errJournal, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: line %d: more than one record", errJournal, line)
		}
		if err := rec.check(len(recs) == 0); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", errJournal, line, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: empty", errJournal)
	}
	return recs, nil
}

// readLine reads one line, without its newline, of at most max bytes;
// io.EOF if there is no complete line.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, fmt.Errorf("longer than %d bytes (limits.MaxJournalLine)", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// check checks one record's fields for its kind.
func (r *record) check(first bool) error {
	if first != (r.Kind == recRun) {
		return errors.New("a journal starts with its run record, and has one")
	}
	switch r.Kind {
	case recRun:
		if r.Version != journalVersion {
			return fmt.Errorf("format version %d (this csv writes %d)", r.Version, journalVersion)
		}
	case recTemp:
		if r.Temp == "" || r.Dest == "" {
			return errors.New("a temp record names a temporary file and its destination")
		}
	case recPlace:
		if r.Temp == "" || r.Dest == "" || r.Backup == "" || r.TempID == nil {
			return errors.New("a place record names a temporary file, its identity, its destination and a backup")
		}
	case recCommit:
		if r.N < 0 {
			return errors.New("a negative count")
		}
	case recDone:
	default:
		return fmt.Errorf("unknown record %q", r.Kind)
	}
	return nil
}

// journal is a running Sign's journal.
type journal struct {
	mu   sync.Mutex
	f    *os.File
	tree *signTree
	dir  string // absolute, symbolic links resolved
	path string
}

// journalDir is where a signing run keeps its journal: --out, or the first
// PATH if it is a directory, or the directory of the file it names (""
// if it does not exist).
func (t *signTree) journalDir() string {
	if t.out != nil {
		return t.out.path
	}
	if len(t.roots) == 0 || t.roots[0] == nil {
		return ""
	}
	return t.roots[0].path
}

// openJournal creates and locks a new journal in dir, a directory of the
// tree t (made if need be, and then removed with the tree's other
// directories made if the run fails).
func openJournal(t *signTree, dir string) (*journal, error) {
	if dir == "" {
		return nil, errors.New("no directory for the signing journal")
	}
	if err := t.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("making the directory of the signing journal: %w", err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	p := filepath.Join(dir, journalPrefix+hex.EncodeToString(rnd[:]))
	f, err := t.openFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating the signing journal: %w", err)
	}
	j := &journal{f: f, tree: t, dir: dir, path: p}
	if err := lockFile(f); err != nil {
		j.close(true)
		return nil, fmt.Errorf("locking the signing journal %s: %w", p, err)
	}
	if err := j.write(record{Kind: recRun, Version: journalVersion, PID: os.Getpid(), Started: time.Now().UTC()}); err != nil {
		j.close(true)
		return nil, err
	}
	return j, nil
}

// rel is p relative to the journal's directory.
func (j *journal) rel(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(j.dir, a); err == nil {
		return r
	}
	return a
}

// write appends records in one write: a kill leaves at most the last line
// torn.
func (j *journal) write(recs ...record) error {
	var b []byte
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("writing the signing journal %s: %w", j.path, err)
	}
	return nil
}

// temp journals a temporary file about to be made for dest.
func (j *journal) temp(temp, dest string) error {
	if j == nil {
		return nil
	}
	return j.write(record{Kind: recTemp, Temp: j.rel(temp), Dest: j.rel(dest)})
}

// commit journals the place records and seals them, durably.
func (j *journal) commit(places []record) error {
	if j == nil {
		return nil
	}
	for i := range places {
		places[i].Temp, places[i].Dest, places[i].Backup = j.rel(places[i].Temp), j.rel(places[i].Dest), j.rel(places[i].Backup)
	}
	if err := j.write(append(places, record{Kind: recCommit, N: len(places)})...); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing the signing journal %s: %w", j.path, err)
	}
	if err := j.tree.syncDir(j.dir); err != nil {
		return fmt.Errorf("syncing the directory of the signing journal %s: %w", j.path, err)
	}
	return nil
}

// done journals that every file is in place.
func (j *journal) done() error {
	if j == nil {
		return nil
	}
	return j.write(record{Kind: recDone})
}

// close releases the journal and, with remove, deletes it.
func (j *journal) close(remove bool) {
	if j == nil {
		return
	}
	j.f.Close() // releases the lock
	if remove {
		j.tree.remove(j.path)
	}
}

// Recovery is what RecoverSign did with the journals of earlier signing
// runs that did not finish.
type Recovery struct {
	Runs []RecoveredRun
	// Running are the journals of runs still going (locked): their files
	// are left alone.
	Running []string
	// Ignored are journals that are not what csv writes for these paths
	// (unreadable, malformed, or naming files elsewhere), with why: left
	// alone, for the user to remove.
	Ignored []string
}

// RecoveredRun is one earlier run that did not finish, and what became of
// its files.
type RecoveredRun struct {
	Journal string
	PID     int
	Started time.Time
	// Outcome is Cleaned, Restored or Finished.
	Outcome string
	// Moved counts the files renamed (originals put back, or signed files
	// put in place); Removed the temporary files and backups removed.
	Moved, Removed int
}

// Outcomes of a recovered run.
const (
	// Cleaned: killed while signing; its temporary files are removed, and
	// nothing had been replaced.
	Cleaned = "cleaned"
	// Restored: killed while renaming; every destination is as it was
	// before that run.
	Restored = "restored"
	// Finished: every destination is signed, as that run would have left
	// it (it had finished, or a destination it replaced had no backup to
	// put back).
	Finished = "finished"
)

// ErrUnfinishedSign is wrapped by RecoveryError.
var ErrUnfinishedSign = errors.New("csv: an earlier csv sign did not finish")

// RecoveryError is a journal of an earlier run that RecoverSign could not
// act on without losing or replacing what it cannot account for: files
// changed since that run was killed. Nothing was changed.
type RecoveryError struct {
	Journal   string
	Conflicts []string
}

func (e *RecoveryError) Error() string {
	return fmt.Sprintf("%v (journal %q), and files changed since, so it can be neither finished nor undone: %s; "+
		"nothing was changed: rebuild the files (or put them back as they were), remove the journal and the files named .NAME.csv-sign-* beside the files it names, then sign again",
		ErrUnfinishedSign, e.Journal, strings.Join(e.Conflicts, "; "))
}

func (e *RecoveryError) Unwrap() error { return ErrUnfinishedSign }

// RecoverSign finishes or undoes what earlier runs of Sign with the same
// roots and opts.Out left when they were killed (see the journal above),
// before anything is validated or signed: the tree is then as before such a
// run (or, where that cannot be, as after it). Sign calls it; call it first
// to validate the tree before signing. It touches only files the journals
// prove are theirs, and returns a *RecoveryError, changing nothing, when a
// journal's files changed since.
func RecoverSign(ctx context.Context, opts SignOptions, roots ...string) (*Recovery, error) {
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: no paths to sign", ErrOptions)
	}
	t, err := newSignTree(&opts, roots)
	if err != nil {
		return nil, err
	}
	defer t.close()
	return recoverSign(ctx, t)
}

// recoverSign is RecoverSign in a signing run's tree: every file it reads,
// renames or removes, it reaches through t.
func recoverSign(ctx context.Context, t *signTree) (*Recovery, error) {
	dir := t.journalDir()
	if dir == "" {
		return &Recovery{}, nil
	}
	ents, err := t.readDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return &Recovery{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking for the journals of earlier signing runs: %w", err)
	}
	rec := &Recovery{}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !isJournalName(e.Name()) {
			continue
		}
		if err := recoverJournal(t, dir, e.Name(), rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// recoveryScope is what a recovery may touch: the files Sign of the same
// roots and options writes, as paths in its tree (symbolic links resolved
// when the tree was opened, case folded as foldPath does).
type recoveryScope struct {
	// dirs are the directory roots and the --out directory: any file under
	// them.
	dirs []string
	// files are the file roots (where a link leads: in place, its target is
	// signed) and the manifest: these files only, not their directories,
	// which may hold anything (the manifest is often written beside the
	// tree, in the workspace).
	files []string
}

// holds reports whether the file at the path p (absolute, clean) is in the
// scope. It compares paths as written: the tree's roots refuse any link
// that leads out of them when the file is reached.
func (s *recoveryScope) holds(p string) bool {
	k := foldPath(p)
	return slices.Contains(s.files, k) || slices.ContainsFunc(s.dirs, func(d string) bool { return within(k, d) })
}

// recoverJournal acts on one journal.
func recoverJournal(t *signTree, dir, name string, rec *Recovery) error {
	p := filepath.Join(dir, name)
	f, _, err := t.openRegular(p)
	if err != nil {
		rec.Ignored = append(rec.Ignored, fmt.Sprintf("journal %q: %v", p, err))
		return nil
	}
	defer f.Close()
	switch err := lockFile(f); {
	case errors.Is(err, errLocked):
		rec.Running = append(rec.Running, p)
		return nil
	case err != nil:
		rec.Ignored = append(rec.Ignored, fmt.Sprintf("journal %q: %v", p, err))
		return nil
	}
	// Locked: still the journal at p (not one removed and recreated)?
	fst, err1 := f.Stat()
	pst, err2 := t.lstat(p)
	if err1 != nil || err2 != nil || !os.SameFile(fst, pst) || !fst.Mode().IsRegular() {
		return nil // finished by another run meanwhile
	}
	// Whoever can write the tree can write a journal: only one this user
	// wrote proves anything (its identities are of files anyone can stat).
	if err := journalOwner(fst); err != nil {
		rec.Ignored = append(rec.Ignored, fmt.Sprintf("journal %q: %v", p, err))
		return nil
	}
	if fst.Size() > limits.MaxJournalSize {
		rec.Ignored = append(rec.Ignored, fmt.Sprintf("journal %q: larger than %d bytes (limits.MaxJournalSize)", p, int64(limits.MaxJournalSize)))
		return nil
	}
	recs, err := parseJournal(io.LimitReader(f, limits.MaxJournalSize))
	if err != nil {
		rec.Ignored = append(rec.Ignored, fmt.Sprintf("journal %q: %v", p, err))
		return nil
	}
	plan, err := planRecovery(t, dir, recs)
	if err != nil {
		rec.Ignored = append(rec.Ignored, fmt.Sprintf("journal %q: %v", p, err))
		return nil
	}
	if len(plan.conflicts) > 0 {
		return &RecoveryError{Journal: p, Conflicts: plan.conflicts}
	}
	if atStage != nil {
		atStage("recovering")
	}
	run := RecoveredRun{Journal: p, PID: recs[0].PID, Started: recs[0].Started, Outcome: plan.outcome}
	if err := plan.apply(t, &run); err != nil {
		return fmt.Errorf("%w (journal %q): recovering it failed, and is left as it is: %w", ErrUnfinishedSign, p, err)
	}
	if err := t.remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the journal %q: %w", p, err)
	}
	syncDir(t, dir) // best effort: the journal gone only says the job is done
	rec.Runs = append(rec.Runs, run)
	return nil
}

// recoveryPlan is what recovering one journal does, once every file is
// checked: renames (old onto new), then removals.
type recoveryPlan struct {
	outcome   string
	renames   [][2]string
	removes   []string
	dirs      map[string]bool
	conflicts []string
}

// apply carries the plan out, in the tree t: renames, directory syncs,
// then removals.
func (pl *recoveryPlan) apply(t *signTree, run *RecoveredRun) error {
	for _, r := range pl.renames {
		if err := t.rename(r[0], r[1]); err != nil {
			return err
		}
		run.Moved++
	}
	for d := range pl.dirs {
		if err := syncDir(t, d); err != nil {
			return fmt.Errorf("syncing directory %s: %w", d, err)
		}
	}
	for _, p := range pl.removes {
		if err := t.remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		run.Removed++
	}
	return nil
}

// entryState is where one destination of a committed run stands.
type entryState int

const (
	stateNotPlaced entryState = iota // the temporary file is there, the destination as before
	statePlaced                      // the signed file is in place
	stateAsBefore                    // the temporary file is gone, the destination as before
)

// planRecovery checks every file a journal in the directory dir of the
// tree t names, through t, and decides what to do.
func planRecovery(t *signTree, dir string, recs []record) (*recoveryPlan, error) {
	pl := &recoveryPlan{dirs: map[string]bool{}}
	abs := func(rel string) string {
		if filepath.IsAbs(rel) {
			return filepath.Clean(rel)
		}
		return filepath.Join(dir, rel)
	}
	// Every file named must lie in the run's directories and be named as
	// csv names its temporary files beside their destination.
	check := func(kind, p, dest string) error {
		if filepath.Dir(p) != filepath.Dir(dest) || !isTempNameFor(filepath.Base(p), filepath.Base(dest)) {
			return fmt.Errorf("%w: its %s %q is not named as csv names them beside %q", errJournal, kind, p, dest)
		}
		if !t.scope.holds(dest) {
			return fmt.Errorf("%w for these paths: it names %q, outside them", errJournal, dest)
		}
		return nil
	}
	var temps, places []record
	committed, done := false, false
	for _, r := range recs {
		switch r.Kind {
		case recTemp:
			temps = append(temps, r)
		case recPlace:
			if committed {
				return nil, fmt.Errorf("%w: a place record after the commit", errJournal)
			}
			places = append(places, r)
		case recCommit:
			if committed || r.N != len(places) {
				return nil, fmt.Errorf("%w: a commit of %d place records after %d", errJournal, r.N, len(places))
			}
			committed = true
		case recDone:
			if !committed {
				return nil, fmt.Errorf("%w: done before the commit", errJournal)
			}
			done = true
		}
	}
	for _, r := range temps {
		if err := check("temporary file", abs(r.Temp), abs(r.Dest)); err != nil {
			return nil, err
		}
	}
	for _, r := range places {
		if err := check("temporary file", abs(r.Temp), abs(r.Dest)); err != nil {
			return nil, err
		}
		if err := check("backup", abs(r.Backup), abs(r.Dest)); err != nil {
			return nil, err
		}
	}

	if !committed {
		// Killed while signing: nothing was replaced; the temporary files
		// it journaled before making them exclusively are its own.
		pl.outcome = Cleaned
		for _, r := range temps {
			p := abs(r.Temp)
			if fi, err := t.lstat(p); err == nil && fi.Mode().IsRegular() {
				pl.removes = append(pl.removes, p)
			}
		}
		return pl, nil
	}

	states := make([]entryState, len(places))
	restorable := true
	for i, r := range places {
		tp, d, b := abs(r.Temp), abs(r.Dest), abs(r.Backup)
		tid, tok, terr := lstatID(t, tp)
		did, dok, derr := lstatID(t, d)
		if err := errors.Join(terr, derr); err != nil {
			pl.conflicts = append(pl.conflicts, fmt.Sprintf("%q or its signed copy cannot be checked: %v", d, err))
			continue
		}
		before := func() bool { // the destination is as it was before the run
			if r.DestID == nil {
				return !dok
			}
			return dok && did.same(*r.DestID)
		}
		switch {
		case tok && tid.same(*r.TempID) && before():
			states[i] = stateNotPlaced
		case !tok && dok && did.same(*r.TempID):
			states[i] = statePlaced
			if r.DestID != nil {
				if bid, ok, _ := lstatID(t, b); !ok || !bid.same(*r.DestID) {
					restorable = false // no backup (no hard links here): cannot be put back
				}
			}
		case !tok && before():
			states[i] = stateAsBefore // put back already (or never replaced, its temporary file gone)
		default:
			pl.conflicts = append(pl.conflicts, conflict(tp, d, tok, dok))
		}
	}
	if len(pl.conflicts) > 0 {
		return pl, nil
	}
	// Finish when the run had finished, or when something it replaced
	// cannot be put back; otherwise restore.
	finish := done || !restorable
	if finish {
		pl.outcome = Finished
		for i, r := range places {
			if states[i] == stateAsBefore && !done {
				pl.conflicts = append(pl.conflicts, fmt.Sprintf("%q is as it was, its signed copy gone, while another file that run replaced has no backup to put back: the job can be neither finished nor undone", abs(r.Dest)))
			}
		}
		if len(pl.conflicts) > 0 {
			return pl, nil
		}
	} else {
		pl.outcome = Restored
	}
	for i, r := range places {
		tp, d, b := abs(r.Temp), abs(r.Dest), abs(r.Backup)
		switch {
		case states[i] == stateNotPlaced && finish:
			pl.renames = append(pl.renames, [2]string{tp, d})
			pl.dirs[filepath.Dir(d)] = true
		case states[i] == stateNotPlaced:
			pl.removes = append(pl.removes, tp)
		case states[i] == statePlaced && !finish && r.DestID != nil:
			pl.renames = append(pl.renames, [2]string{b, d})
			pl.dirs[filepath.Dir(d)] = true
			continue // the backup is renamed, not removed
		case states[i] == statePlaced && !finish:
			pl.removes = append(pl.removes, d) // it did not exist before the run
			pl.dirs[filepath.Dir(d)] = true
		}
		if r.DestID != nil {
			// A backup is the run's if it is the original's hard link.
			if bid, ok, _ := lstatID(t, b); ok && bid.same(*r.DestID) {
				pl.removes = append(pl.removes, b)
			}
		}
	}
	return pl, nil
}

// conflict says how a journaled destination and its temporary file differ
// from what the journal allows.
func conflict(t, d string, tok, dok bool) string {
	switch {
	case tok && !dok:
		return fmt.Sprintf("%q is gone", d)
	case tok:
		return fmt.Sprintf("%q or its signed copy %q changed", d, t)
	case !dok:
		return fmt.Sprintf("%q is gone, and so is its signed copy", d)
	}
	return fmt.Sprintf("%q is neither as it was nor the signed file", d)
}

// lstatID is the identity of the file at p in the tree t, if it is a
// regular file or a symbolic link (an --out destination may be one: a
// rename replaces it); an error if p cannot be reached but may be there (a
// directory on the way swapped for a link out of the tree).
func lstatID(t *signTree, p string) (fileID, bool, error) {
	fi, err := t.lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fileID{}, false, nil
	case err != nil:
		return fileID{}, false, err
	case !(fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0):
		return fileID{}, false, nil
	}
	return identityOf(fi), true, nil
}

// isTempNameFor reports whether name is one Sign gives a temporary file or
// backup of a destination named base: "." base ".csv-sign-" 12 hex digits.
func isTempNameFor(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base+tempMarker)
	if !ok || len(rest) != 12 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// identityOf is the journal's identity of a file: its system identity
// (fileSysID) with its size and modification time.
func identityOf(fi os.FileInfo) fileID {
	dev, ino := fileSysID(fi)
	return fileID{Dev: dev, Ino: ino, Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
}

// errLocked is returned by lockFile when another process holds the lock.
var errLocked = errors.New("locked by another process")
