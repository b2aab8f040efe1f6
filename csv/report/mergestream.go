package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/panicerr"
)

// Shard reports are merged as streams: OpenShard reads a report once,
// checking every result and skipped file and keeping only the document's
// head and where its two arrays are; MergeTo then reads the shards' arrays
// side by side, a file at a time, in the order of the walk that every
// shard made of the same tree (each file's WalkDoc), and writes the merged
// report as the JSON sink writes one (the arrays spooled, then spliced in
// after the head). Its memory does not grow with the files: a million-file
// merge holds a decoded file per array and shard.

// ShardReport is one shard's JSON report, checked, to merge.
type ShardReport struct {
	name string
	r    io.ReaderAt
	size int64
	// head is the document without its results and skipped files.
	head *Document
	// results and skipped are where the arrays' '[' are.
	results, skipped int64
	// counts are the report's own results counted.
	counts csv.Summary
	// lastResult and lastSkipped are the places in the walk of the
	// arrays' elements last read by OpenShard.
	lastResult, lastSkipped walkKey
}

// inOrder checks that the element at path, at w, comes after last in the
// walk, and makes it last.
func inOrder(last *walkKey, w WalkDoc, path string) error {
	k, err := keyOf(w, path)
	if err != nil {
		return err
	}
	if k.compare(*last) <= 0 {
		return fmt.Errorf("%s is out of the walk's order (another csv, or an edited report)", path)
	}
	*last = k
	return nil
}

// Head returns the report's document without its results and skipped
// files.
func (s *ShardReport) Head() *Document { return s.head }

// OpenShard reads the JSON report in r (size bytes, named name in errors)
// once: it decodes its head, and every result and skipped file, refusing
// fields csv does not write, a file without its place in the walk, files
// out of the walk's order, and a summary that does not count the report's
// own results.
func OpenShard(name string, r io.ReaderAt, size int64) (sh *ShardReport, err error) {
	defer func() {
		if r := recover(); r != nil {
			sh, err = nil, fmt.Errorf("internal error: %w", panicerr.New(r))
		}
		if err != nil {
			err = fmt.Errorf("report %s: not a csv JSON report: %w", name, err)
		}
	}()
	sh = &ShardReport{name: name, r: r, size: size, results: -1, skipped: -1}
	dec := json.NewDecoder(io.NewSectionReader(r, 0, size))
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	rest := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		if _, dup := rest[key]; dup || (key == "results" && sh.results >= 0) || (key == "skipped" && sh.skipped >= 0) {
			return nil, fmt.Errorf("field %q given twice", key)
		}
		switch key {
		case "results", "skipped":
			at, err := sh.arrayAt(dec.InputOffset())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			if key == "results" {
				sh.results = at
				err = eachElement(dec, sh.countResult)
			} else {
				sh.skipped = at
				err = eachElement(dec, sh.countSkipped)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		default:
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, err
			}
			rest[key] = v
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the report")
	}
	if sh.results < 0 || sh.skipped < 0 {
		return nil, errors.New("no results or no skipped files")
	}
	b, err := json.Marshal(rest)
	if err != nil {
		return nil, err
	}
	hd := json.NewDecoder(bytes.NewReader(b))
	hd.DisallowUnknownFields()
	if err := hd.Decode(&sh.head); err != nil {
		return nil, err
	}
	sh.counts.Excluded = sh.head.Summary.Excluded
	return sh, nil
}

// arrayAt returns the offset of the '[' that follows, after a colon and
// white space, the key that ends at off.
func (s *ShardReport) arrayAt(off int64) (int64, error) {
	var b [64]byte
	for colon := false; ; {
		n, err := s.r.ReadAt(b[:], off)
		if n == 0 {
			return 0, fmt.Errorf("want an array: %w", cmp.Or(err, io.ErrUnexpectedEOF))
		}
		for i, c := range b[:n] {
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			case c == ':' && !colon:
				colon = true
			case c == '[' && colon:
				return off + int64(i), nil
			default:
				return 0, fmt.Errorf("want an array, not %q", c)
			}
		}
		off += int64(n)
	}
}

// eachElement decodes the elements of the array whose '[' is dec's next
// token, calling f with each as it is decoded.
func eachElement(dec *json.Decoder, f func(dec *json.Decoder) error) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		if err := f(dec); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, not %v", want, t)
	}
	return nil
}

// walkKey is a WalkDoc checked.
type walkKey struct{ entry, after, member int }

func (k walkKey) compare(o walkKey) int {
	return cmp.Or(cmp.Compare(k.entry, o.entry), cmp.Compare(k.after, o.after), cmp.Compare(k.member, o.member))
}

func keyOf(w WalkDoc, path string) (walkKey, error) {
	if len(w) != 3 || w[0] < 0 || w[1] < 0 || w[2] < 0 || (w[0] == 0 && w[1] == 0) {
		return walkKey{}, fmt.Errorf("%s has no place in the walk (\"walk\": %v): a shard's report of this csv has one", path, []int(w))
	}
	return walkKey{w[0], w[1], w[2]}, nil
}

func (s *ShardReport) countResult(dec *json.Decoder) error {
	var r ResultDoc
	if err := dec.Decode(&r); err != nil {
		return err
	}
	if err := inOrder(&s.lastResult, r.Walk, r.Path); err != nil {
		return err
	}
	c := &s.counts
	c.Files++
	switch r.Verdict {
	case cipolicy.Allowed:
		c.Allowed++
		if r.Suppressed != nil {
			return fmt.Errorf("%s is %s and suppressed: only a blocked file is", r.Path, r.Verdict)
		}
	case cipolicy.Blocked:
		c.Blocked++
		if r.Suppressed != nil {
			c.Suppressed++
		}
	default:
		return fmt.Errorf("%s has verdict %q", r.Path, r.Verdict)
	}
	return nil
}

func (s *ShardReport) countSkipped(dec *json.Decoder) error {
	var d SkippedDoc
	if err := dec.Decode(&d); err != nil {
		return err
	}
	if err := inOrder(&s.lastSkipped, d.Walk, d.Path); err != nil {
		return err
	}
	s.counts.Skipped++
	return nil
}

// cursor reads one array of one shard's report, an element at a time.
type cursor struct {
	shard   int // index in the shards
	dec     *json.Decoder
	skipped bool
	// The element read, and its place; done when the array is read.
	res  ResultDoc
	skip SkippedDoc
	key  walkKey
	path string
	root string
	done bool
}

func (c *cursor) next() error {
	if !c.dec.More() {
		c.done = true
		return expectDelim(c.dec, ']')
	}
	var w WalkDoc
	if c.skipped {
		c.skip = SkippedDoc{}
		if err := c.dec.Decode(&c.skip); err != nil {
			return err
		}
		w, c.path, c.root = c.skip.Walk, c.skip.Path, c.skip.Root
	} else {
		c.res = ResultDoc{}
		if err := c.dec.Decode(&c.res); err != nil {
			return err
		}
		w, c.path, c.root = c.res.Walk, c.res.Path, c.res.Root
	}
	// OpenShard checked the order; the file may have changed since.
	return inOrder(&c.key, w, c.path)
}

// Merge combines the JSON reports of the shards of one run (csv validate
// --shard i/n) into one, in memory: MergeTo, for documents.
func Merge(docs []*Document) (*Document, error) {
	var shards []*ShardReport
	for i, d := range docs {
		if d == nil {
			return nil, fmt.Errorf("%w: report %d is empty", ErrMerge, i+1)
		}
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		sh, err := OpenShard(fmt.Sprint(i+1), bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMerge, err)
		}
		shards = append(shards, sh)
	}
	var out bytes.Buffer
	if _, err := MergeTo(&out, shards, nil); err != nil {
		return nil, err
	}
	var merged Document
	if err := json.Unmarshal(out.Bytes(), &merged); err != nil {
		return nil, err
	}
	return &merged, nil
}

// MergeTo combines the JSON reports of the shards of one run (csv validate
// --shard i/n) into one, and writes it to w, as csv validate would have
// written the report of the whole run (files in the walk's order), but for
// its run's duration and start (the longest shard's, the earliest) and the
// shards it lists. It calls each, if not nil, with every result, in order.
// It returns the merged document without its results and skipped files.
// Nothing is written unless the shards merge. A missing shard, or one cut
// from another build, must not look like a pass, so it refuses:
//
//   - reports that are not shards, or of an older csv (no run metadata, a
//     file without its place in the walk);
//   - runs that could have judged other files or judged them otherwise:
//     another tool version, other policies (by SHA-256, in order), mode,
//     mode override, scenario, roots as the build sees them, --include,
//     --exclude, --follow-symlinks, --certs, the policies' certificates,
//     --fail-if-no-targets, suppressions, or another tree (the paths each
//     walk listed before its shard's cut);
//   - shard counts that differ, an index out of 1..n or given twice, a
//     missing shard;
//   - a report that lists a file of another shard (a cut made otherwise:
//     another csv), the same file twice or two shards the same, a place
//     in the walk that no shard lists (a shard left a file out), a member
//     without its container, files out of the walk's order, a result of a
//     root it does not have, a verdict it does not know, or a summary
//     that does not count its own results (a truncated or edited report).
//
// The merged summary and verdict are recomputed from the results: the
// reports' "passed" and "summary" are not believed. Roots are those of the
// first report.
func MergeTo(w io.Writer, shards []*ShardReport, each func(*ResultDoc)) (_ *Document, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: internal error: %w", ErrMerge, panicerr.New(r))
		}
	}()
	out, err := mergeHeads(shards)
	if err != nil {
		return nil, err
	}
	var results, skipped spool
	defer results.Close()
	defer skipped.Close()
	nres, nskip, failed, err := mergeFiles(shards, out, &results, &skipped, each)
	if err != nil {
		return nil, err
	}
	out.Summary.Skipped = nskip
	out.NoTargets = out.Run.FailIfNoTargets && out.Summary.Files == 0
	docs := make([]*Document, len(shards))
	for i, sh := range shards {
		docs[i] = sh.head
	}
	out.Suppressions = mergeSuppressions(docs)
	out.Passed = !failed && !out.NoTargets && !suppressionsFail(out.Suppressions, Options{})
	if err := spliceJSON(w, out, "\n  ", []spliced{{`"results": [`, nres, &results}, {`"skipped": [`, nskip, &skipped}}); err != nil {
		return nil, err
	}
	return out, nil
}

// mergeHeads checks that the shards are of one run, alike and complete,
// and returns the merged document's head.
func mergeHeads(shards []*ShardReport) (*Document, error) {
	if len(shards) == 0 {
		return nil, fmt.Errorf("%w: no reports", ErrMerge)
	}
	for i, sh := range shards {
		d := sh.head
		switch {
		case d.MediaType != MediaType:
			return nil, fmt.Errorf("%w: report %d is %q, not %q", ErrMerge, i+1, d.MediaType, MediaType)
		case d.Shard == nil:
			return nil, fmt.Errorf("%w: report %d is not a shard (csv validate --shard i/n)", ErrMerge, i+1)
		case d.Run == nil || d.Run.Walked == nil:
			return nil, fmt.Errorf("%w: report %d has no run metadata (written by an older csv): run every shard with this csv", ErrMerge, i+1)
		case d.Shard.Count < 1 || d.Shard.Index < 1 || d.Shard.Index > d.Shard.Count:
			return nil, fmt.Errorf("%w: report %d is shard %d/%d: want 1 <= i <= n", ErrMerge, i+1, d.Shard.Index, d.Shard.Count)
		}
		if s := d.Summary; s != sh.counts {
			return nil, fmt.Errorf("%w: report %d (shard %d/%d): its summary (%d files: %d allowed, %d blocked; %d skipped) does not count its results (%d files: %d allowed, %d blocked; %d skipped)",
				ErrMerge, i+1, d.Shard.Index, d.Shard.Count, s.Files, s.Allowed, s.Blocked, s.Skipped, sh.counts.Files, sh.counts.Allowed, sh.counts.Blocked, sh.counts.Skipped)
		}
	}
	first := shards[0].head
	for i, sh := range shards[1:] {
		if what := differs(first, sh.head); what != nil {
			return nil, fmt.Errorf("%w: report %d ran with %s, report 1 with %s: the shards of one build must run alike", ErrMerge, i+2, what[1], what[0])
		}
	}
	count := first.Shard.Count
	seen := map[int]int{}
	for i, sh := range shards {
		d := sh.head
		switch {
		case d.Shard.Count != count:
			return nil, fmt.Errorf("%w: report %d is shard %d/%d, report 1 is of %d", ErrMerge, i+1, d.Shard.Index, d.Shard.Count, count)
		case seen[d.Shard.Index] != 0:
			return nil, fmt.Errorf("%w: shard %d/%d given twice (reports %d and %d)", ErrMerge, d.Shard.Index, count, seen[d.Shard.Index], i+1)
		case d.Summary.Excluded < d.Run.Walked.Excluded:
			return nil, fmt.Errorf("%w: report %d left out %d files, fewer than its walk (%d)", ErrMerge, i+1, d.Summary.Excluded, d.Run.Walked.Excluded)
		}
		seen[d.Shard.Index] = i + 1
	}
	if len(seen) != count {
		// Name the first few: the count comes from the reports, and may be
		// huge.
		var missing []string
		for i := 1; i <= count && len(missing) < 10; i++ {
			if seen[i] == 0 {
				missing = append(missing, fmt.Sprintf("%d/%d", i, count))
			}
		}
		more := ""
		if n := count - len(seen); n > len(missing) {
			more = fmt.Sprintf(" and %d more", n-len(missing))
		}
		return nil, fmt.Errorf("%w: shards %s%s are missing", ErrMerge, strings.Join(missing, ", "), more)
	}
	run := *first.Run
	out := &Document{MediaType: MediaType, Tool: first.Tool, Policy: first.Policy, Policies: first.Policies,
		Mode: first.Mode, Scenario: first.Scenario, Roots: first.Roots, Run: &run, Started: first.Started,
		Results: []ResultDoc{}, Skipped: []SkippedDoc{}}
	// Every shard saw the whole tree before taking its share: each counts
	// every file the walk left out (the same: differs compared them), and
	// the members left out of the containers it opened.
	out.Summary.Excluded = first.Run.Walked.Excluded
	for _, sh := range shards {
		d := sh.head
		out.Summary.Excluded += d.Summary.Excluded - d.Run.Walked.Excluded
		out.Shards = append(out.Shards, *d.Shard)
		if d.Started.Before(out.Started) {
			out.Started = d.Started
		}
		out.Duration = max(out.Duration, d.Duration)
	}
	slices.SortFunc(out.Shards, func(a, b ShardDoc) int { return cmp.Compare(a.Index, b.Index) })
	return out, nil
}

// mergeFiles reads the shards' results and skipped files in the walk's
// order, checks their places (below), and writes them, as the merged
// report's arrays, to results and skipped; it counts them into out's
// summary, and says whether a file fails the run.
func mergeFiles(shards []*ShardReport, out *Document, results, skipped io.Writer, each func(*ResultDoc)) (nres, nskip int, failed bool, err error) {
	first := out
	count := shards[0].head.Shard.Count
	var curs []*cursor
	for i, sh := range shards {
		for _, sk := range []bool{false, true} {
			at := sh.results
			if sk {
				at = sh.skipped
			}
			dec := json.NewDecoder(io.NewSectionReader(sh.r, at, sh.size-at))
			dec.DisallowUnknownFields()
			c := &cursor{shard: i, dec: dec, skipped: sk}
			if err := expectDelim(dec, '['); err != nil {
				return 0, 0, false, fmt.Errorf("%w: report %s changed while merged: %w", ErrMerge, sh.name, err)
			}
			if err := c.next(); err != nil {
				return 0, 0, false, fmt.Errorf("%w: report %d (shard %d/%d): %w", ErrMerge, i+1, sh.head.Shard.Index, count, err)
			}
			curs = append(curs, c)
		}
	}
	// The entry (a listed file, or one passed for its members alone) that
	// each shard listed last, and the listed entry expected next.
	type entryAt struct {
		key  walkKey
		root int
		path string
	}
	last := make([]*entryAt, len(shards))
	expect := 1
	var prev *cursor
	var prevKey walkKey
	for {
		// The cursor whose element comes first in the walk: the shards
		// are few, their files many.
		var c *cursor
		for _, x := range curs {
			if !x.done && (c == nil || x.key.compare(c.key) < 0) {
				c = x
			}
		}
		if c == nil {
			break
		}
		sh := shards[c.shard]
		i, idx := c.shard+1, sh.head.Shard.Index
		fail := func(format string, a ...any) error {
			return fmt.Errorf("%w: report %d (shard %d/%d) %s", ErrMerge, i, idx, count, fmt.Sprintf(format, a...))
		}
		if prev != nil && c.key == prevKey {
			return 0, 0, false, fmt.Errorf("%w: %s (report %d) and %s (report %d) are the same file of the walk (another csv, or an edited report)", ErrMerge, prev.path, prev.shard+1, c.path, i)
		}
		root := slices.Index(sh.head.Roots, c.root)
		if root < 0 {
			return 0, 0, false, fail("lists %s under root %q, which it did not validate", c.path, c.root)
		}
		if c.key.member == 0 {
			// An entry: the shard's, and, listed, the next the walk
			// listed.
			if s := csv.ShardOf(c.path, count); s != idx {
				return 0, 0, false, fail("lists %s, which belongs to shard %d/%d: the shards were cut otherwise (another csv?)", c.path, s, count)
			}
			if c.key.after == 0 {
				if c.key.entry != expect {
					return 0, 0, false, fmt.Errorf("%w: no shard lists the walk's entry %d of %d (report %d lists entry %d next): a shard left some out (another csv, or an edited report)", ErrMerge, expect, first.Run.Walked.Entries, i, c.key.entry)
				}
				expect++
			}
			last[c.shard] = &entryAt{c.key, root, c.path}
		} else if e := last[c.shard]; e == nil || e.key.entry != c.key.entry || e.key.after != c.key.after || e.root != root || !strings.HasPrefix(c.path, e.path+container.Separator) {
			return 0, 0, false, fail("lists %s, a member, without its container", c.path)
		}
		if c.skipped {
			s := c.skip
			s.Root, s.Walk = first.Roots[root], nil
			if err := element(skipped, nskip, s, "    "); err != nil {
				return 0, 0, false, err
			}
			nskip++
		} else {
			r := c.res
			r.Root, r.Walk = first.Roots[root], nil
			out.Summary.Files++
			if r.Verdict == cipolicy.Allowed {
				out.Summary.Allowed++
			} else {
				out.Summary.Blocked++
				if r.Suppressed != nil {
					out.Summary.Suppressed++
				} else {
					failed = failed || r.Enforced
				}
			}
			if each != nil {
				each(&r)
			}
			if err := element(results, nres, r, "    "); err != nil {
				return 0, 0, false, err
			}
			nres++
		}
		prev, prevKey = c, c.key
		if err := c.next(); err != nil {
			return 0, 0, false, fail("%v", err)
		}
	}
	// Every path the walks listed is a result or a skipped file of exactly
	// one shard: a shard that left one out (cut by another function, or
	// edited) would leave it judged by none.
	if n := first.Run.Walked.Entries; expect-1 != n {
		return 0, 0, false, fmt.Errorf("%w: the shards list %d of the %d paths their walks found: a shard left some out (another csv, or an edited report)", ErrMerge, expect-1, n)
	}
	return nres, nskip, failed, nil
}
