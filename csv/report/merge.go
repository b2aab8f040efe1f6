package report

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
)

// ErrMerge is wrapped by errors about reports that cannot be combined.
var ErrMerge = errors.New("report: cannot merge")

// Merge combines the JSON reports of the shards of one run (csv validate
// --shard i/n) into one. A missing shard, or one cut from another build,
// must not look like a pass, so it refuses:
//
//   - reports that are not shards, or of an older csv (no run metadata);
//   - runs that could have judged other files or judged them otherwise:
//     another tool version, other policies (by SHA-256, in order), mode,
//     mode override, scenario, roots as the build sees them, --include,
//     --exclude, --follow-symlinks, --certs, the policies' certificates,
//     --fail-if-no-targets, or another tree (the paths each walk listed
//     before its shard's cut: a file that one job found in another's
//     share, and that job did not, was judged by neither);
//   - shard counts that differ, an index out of 1..n or given twice, a
//     missing shard;
//   - a report that lists a file of another shard (a cut made otherwise:
//     another csv), the same file twice, shards that together list fewer
//     paths than their walks found, a result of a root it does not
//     have, a verdict it does not know, or a summary that does not count
//     its own results (a truncated or edited report).
//
// The merged summary and verdict are recomputed from the results: the
// reports' "passed" and "summary" are not believed. Paths and roots are
// those of the first report.
func Merge(docs []*Document) (*Document, error) {
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w: no reports", ErrMerge)
	}
	for i, d := range docs {
		switch {
		case d == nil:
			return nil, fmt.Errorf("%w: report %d is empty", ErrMerge, i+1)
		case d.MediaType != MediaType:
			return nil, fmt.Errorf("%w: report %d is %q, not %q", ErrMerge, i+1, d.MediaType, MediaType)
		case d.Shard == nil:
			return nil, fmt.Errorf("%w: report %d is not a shard (csv validate --shard i/n)", ErrMerge, i+1)
		case d.Run == nil || d.Run.Walked == nil:
			return nil, fmt.Errorf("%w: report %d has no run metadata (written by an older csv): run every shard with this csv", ErrMerge, i+1)
		case d.Shard.Count < 1 || d.Shard.Index < 1 || d.Shard.Index > d.Shard.Count:
			return nil, fmt.Errorf("%w: report %d is shard %d/%d: want 1 <= i <= n", ErrMerge, i+1, d.Shard.Index, d.Shard.Count)
		}
		if err := selfConsistent(d); err != nil {
			return nil, fmt.Errorf("%w: report %d (shard %d/%d): %w", ErrMerge, i+1, d.Shard.Index, d.Shard.Count, err)
		}
	}
	first := docs[0]
	for i, d := range docs[1:] {
		if what := differs(first, d); what != nil {
			return nil, fmt.Errorf("%w: report %d ran with %s, report 1 with %s: the shards of one build must run alike", ErrMerge, i+2, what[1], what[0])
		}
	}
	count := first.Shard.Count
	seen := map[int]int{}
	for i, d := range docs {
		switch {
		case d.Shard.Count != count:
			return nil, fmt.Errorf("%w: report %d is shard %d/%d, report 1 is of %d", ErrMerge, i+1, d.Shard.Index, d.Shard.Count, count)
		case seen[d.Shard.Index] != 0:
			return nil, fmt.Errorf("%w: shard %d/%d given twice (reports %d and %d)", ErrMerge, d.Shard.Index, count, seen[d.Shard.Index], i+1)
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
	// every file the filters left out.
	out.Summary.Excluded = first.Summary.Excluded
	type key struct {
		root int
		path string
	}
	judged := map[key]int{}
	for i, d := range docs {
		if d.Summary.Excluded != out.Summary.Excluded {
			return nil, fmt.Errorf("%w: report %d left out %d files, report 1 %d: the shards did not see the same tree", ErrMerge, i+1, d.Summary.Excluded, out.Summary.Excluded)
		}
		out.Shards = append(out.Shards, *d.Shard)
		if d.Started.Before(out.Started) {
			out.Started = d.Started
		}
		out.Duration = max(out.Duration, d.Duration)
		// A file is named by its root's position and its path: roots
		// normalise alike (checked above), but may be spelled otherwise.
		place := func(root, path string) (key, error) {
			j := slices.Index(d.Roots, root)
			if j < 0 {
				return key{}, fmt.Errorf("%w: report %d lists %s under root %q, which it did not validate", ErrMerge, i+1, path, root)
			}
			if s := csv.ShardOf(path, count); s != d.Shard.Index {
				return key{}, fmt.Errorf("%w: report %d (shard %d/%d) lists %s, which belongs to shard %d/%d: the shards were cut otherwise (another csv?)", ErrMerge, i+1, d.Shard.Index, count, path, s, count)
			}
			k := key{j, path}
			if other, dup := judged[k]; dup {
				return key{}, fmt.Errorf("%w: %s is listed by reports %d and %d", ErrMerge, path, other, i+1)
			}
			judged[k] = i + 1
			return k, nil
		}
		for _, r := range d.Results {
			k, err := place(r.Root, r.Path)
			if err != nil {
				return nil, err
			}
			r.Root = first.Roots[k.root]
			out.Results = append(out.Results, r)
		}
		for _, s := range d.Skipped {
			k, err := place(s.Root, s.Path)
			if err != nil {
				return nil, err
			}
			s.Root = first.Roots[k.root]
			out.Skipped = append(out.Skipped, s)
		}
	}
	// Every path the walks listed is a result or a skipped file of exactly
	// one shard: a shard that left one out (cut by another function, or
	// edited) would leave it judged by none.
	if n := first.Run.Walked.Entries; len(judged) != n {
		return nil, fmt.Errorf("%w: the shards list %d of the %d paths their walks found: a shard left some out (another csv, or an edited report)", ErrMerge, len(judged), n)
	}
	slices.SortFunc(out.Shards, func(a, b ShardDoc) int { return cmp.Compare(a.Index, b.Index) })
	// The order a single run gives: roots as given, then path.
	rootIndex := func(root string) int { return slices.Index(first.Roots, root) }
	slices.SortStableFunc(out.Results, func(a, b ResultDoc) int {
		return cmp.Or(cmp.Compare(rootIndex(a.Root), rootIndex(b.Root)), strings.Compare(a.Path, b.Path))
	})
	slices.SortStableFunc(out.Skipped, func(a, b SkippedDoc) int {
		return cmp.Or(cmp.Compare(rootIndex(a.Root), rootIndex(b.Root)), strings.Compare(a.Path, b.Path))
	})

	// The verdict, from the results.
	failed := false
	for _, r := range out.Results {
		out.Summary.Files++
		if r.Verdict == cipolicy.Allowed {
			out.Summary.Allowed++
			continue
		}
		out.Summary.Blocked++
		if r.Suppressed != nil {
			out.Summary.Suppressed++
			continue
		}
		failed = failed || r.Enforced
	}
	out.Summary.Skipped = len(out.Skipped)
	out.NoTargets = run.FailIfNoTargets && out.Summary.Files == 0
	out.Suppressions = mergeSuppressions(docs)
	out.Passed = !failed && !out.NoTargets && !suppressionsFail(out.Suppressions, Options{})
	return out, nil
}

// selfConsistent checks that a report's summary counts its own results and
// that every verdict is one csv writes.
func selfConsistent(d *Document) error {
	var s csv.Summary
	for _, r := range d.Results {
		s.Files++
		switch r.Verdict {
		case cipolicy.Allowed:
			s.Allowed++
		case cipolicy.Blocked:
			s.Blocked++
			if r.Suppressed != nil {
				s.Suppressed++
			}
		default:
			return fmt.Errorf("%s has verdict %q", r.Path, r.Verdict)
		}
	}
	s.Skipped, s.Excluded = len(d.Skipped), d.Summary.Excluded
	for _, r := range d.Results {
		if r.Suppressed != nil && r.Verdict != cipolicy.Blocked {
			return fmt.Errorf("%s is %s and suppressed: only a blocked file is", r.Path, r.Verdict)
		}
	}
	if s != d.Summary {
		return fmt.Errorf("its summary (%d files: %d allowed, %d blocked; %d skipped) does not count its results (%d files: %d allowed, %d blocked; %d skipped)",
			d.Summary.Files, d.Summary.Allowed, d.Summary.Blocked, d.Summary.Skipped, s.Files, s.Allowed, s.Blocked, s.Skipped)
	}
	return nil
}

// differs names what two shard reports ran differently: the setting as a
// ran it, and as b did (nil if nothing).
func differs(a, b *Document) []string {
	pol := func(d *Document) []string {
		var s []string
		for _, p := range d.Policies {
			s = append(s, fmt.Sprintf("%s %s %s %s", p.SHA256, p.ID, p.Type, p.Mode))
		}
		return s
	}
	ra, rb := a.Run, b.Run
	for _, c := range []struct {
		what string
		x, y any
	}{
		{"tool", a.Tool.Name + " " + a.Tool.Version, b.Tool.Name + " " + b.Tool.Version},
		{"policies", pol(a), pol(b)},
		{"mode", a.Mode, b.Mode},
		{"--mode", ra.ModeOverride, rb.ModeOverride},
		{"scenario", a.Scenario, b.Scenario},
		{"scenario", ra.Scenario, rb.Scenario},
		{"roots", ra.Roots, rb.Roots},
		{"number of roots", len(a.Roots), len(b.Roots)},
		{"--include", ra.Include, rb.Include},
		{"--exclude", ra.Exclude, rb.Exclude},
		{"--follow-symlinks", ra.FollowSymlinks, rb.FollowSymlinks},
		{"--certs", ra.Certificates, rb.Certificates},
		{"the policies' certificates", ra.PolicyCertificates, rb.PolicyCertificates},
		{"--fail-if-no-targets", ra.FailIfNoTargets, rb.FailIfNoTargets},
		{"a tree of", walked(ra.Walked), walked(rb.Walked)},
		{"suppressions", suppressionList(a), suppressionList(b)},
	} {
		if !same(c.x, c.y) {
			f := "%s %v"
			switch c.x.(type) {
			case string, []string, cipolicy.Mode:
				f = "%s %q"
			}
			return []string{fmt.Sprintf(f, c.what, c.x), fmt.Sprintf(f, c.what, c.y)}
		}
	}
	if len(ra.Roots) != len(a.Roots) || len(rb.Roots) != len(b.Roots) {
		return []string{fmt.Sprintf("roots %q (normalised %q)", a.Roots, ra.Roots), fmt.Sprintf("roots %q (normalised %q)", b.Roots, rb.Roots)}
	}
	return nil
}

// walked describes a walk's listing for differs.
func walked(l *ListingDoc) string {
	return fmt.Sprintf("%d paths (listing sha256 %.12s)", l.Entries, l.SHA256)
}

// same compares two settings; string lists compare by element (an empty
// list is no list).
func same(x, y any) bool {
	if xs, ok := x.([]string); ok {
		ys, ok := y.([]string)
		return ok && slices.Equal(xs, ys)
	}
	return x == y
}

// suppressionList names a report's suppressions for differs: the shards
// of one build apply the same ones.
func suppressionList(d *Document) []string {
	var out []string
	for _, s := range d.Suppressions {
		out = append(out, fmt.Sprintf("%s (%s) %q until %s", s.ref(), s.what(), s.Justification, s.Expires))
	}
	return out
}

// mergeSuppressions combines the shards' suppressions (the same, in the
// same order: differs checked): the uses are summed, an entry is expired
// if it was in any shard, and unused if no shard used it.
func mergeSuppressions(docs []*Document) []SuppressionDoc {
	out := slices.Clone(docs[0].Suppressions)
	for i := range out {
		expired := false
		out[i].Uses = 0
		for _, d := range docs {
			out[i].Uses += d.Suppressions[i].Uses
			expired = expired || d.Suppressions[i].Status == StatusExpired
		}
		out[i].Status = statusOf(out[i].Uses, expired)
	}
	return out
}
