package report

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrMerge is wrapped by errors about reports that cannot be combined.
var ErrMerge = errors.New("report: cannot merge")

// Merge combines the JSON reports of the shards of one run (csv validate
// --shard i/n) into one. It refuses reports of different policies, modes
// or scenarios, and a set of shards that is incomplete or repeats one: a
// missing shard must not look like a pass.
func Merge(docs []*Document) (*Document, error) {
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w: no reports", ErrMerge)
	}
	first := docs[0]
	key := func(d *Document) string {
		var s []string
		for _, p := range d.Policies {
			s = append(s, p.SHA256)
		}
		return strings.Join(s, ",") + "|" + string(d.Mode) + "|" + d.Scenario
	}
	out := &Document{MediaType: MediaType, Tool: first.Tool, Policy: first.Policy, Policies: first.Policies,
		Mode: first.Mode, Scenario: first.Scenario, Started: first.Started, Passed: true,
		Results: []ResultDoc{}, Skipped: []SkippedDoc{}}
	seen := map[int]bool{}
	count := 0
	rootIndex := map[string]int{}
	for i, d := range docs {
		switch {
		case d.MediaType != MediaType:
			return nil, fmt.Errorf("%w: report %d is %q, not %q", ErrMerge, i+1, d.MediaType, MediaType)
		case key(d) != key(first):
			return nil, fmt.Errorf("%w: report %d was judged by other policies, mode or scenario than report 1", ErrMerge, i+1)
		case d.Shard == nil:
			return nil, fmt.Errorf("%w: report %d is not a shard (csv validate --shard i/n)", ErrMerge, i+1)
		case count != 0 && d.Shard.Count != count:
			return nil, fmt.Errorf("%w: report %d is shard %d/%d, others are of %d", ErrMerge, i+1, d.Shard.Index, d.Shard.Count, count)
		case seen[d.Shard.Index]:
			return nil, fmt.Errorf("%w: shard %d/%d given twice", ErrMerge, d.Shard.Index, d.Shard.Count)
		}
		count = d.Shard.Count
		seen[d.Shard.Index] = true
		out.Shards = append(out.Shards, *d.Shard)
		for _, r := range d.Roots {
			if _, ok := rootIndex[r]; !ok {
				rootIndex[r] = len(out.Roots)
				out.Roots = append(out.Roots, r)
			}
		}
		if d.Started.Before(out.Started) {
			out.Started = d.Started
		}
		out.Duration = max(out.Duration, d.Duration)
		out.Passed = out.Passed && d.Passed
		out.NoTargets = out.NoTargets || d.NoTargets
		out.Summary.Files += d.Summary.Files
		out.Summary.Allowed += d.Summary.Allowed
		out.Summary.Blocked += d.Summary.Blocked
		out.Summary.Skipped += d.Summary.Skipped
		out.Summary.Excluded += d.Summary.Excluded
		out.Results = append(out.Results, d.Results...)
		out.Skipped = append(out.Skipped, d.Skipped...)
	}
	if len(seen) != count {
		var missing []string
		for i := 1; i <= count; i++ {
			if !seen[i] {
				missing = append(missing, fmt.Sprintf("%d/%d", i, count))
			}
		}
		return nil, fmt.Errorf("%w: shards %s are missing", ErrMerge, strings.Join(missing, ", "))
	}
	slices.SortFunc(out.Shards, func(a, b ShardDoc) int { return cmp.Compare(a.Index, b.Index) })
	// The order a single run gives: roots as given, then path.
	order := func(root, path string) (int, string) { return rootIndex[root], path }
	slices.SortStableFunc(out.Results, func(a, b ResultDoc) int {
		ra, pa := order(a.Root, a.Path)
		rb, pb := order(b.Root, b.Path)
		return cmp.Or(cmp.Compare(ra, rb), strings.Compare(pa, pb))
	})
	slices.SortStableFunc(out.Skipped, func(a, b SkippedDoc) int {
		ra, pa := order(a.Root, a.Path)
		rb, pb := order(b.Root, b.Path)
		return cmp.Or(cmp.Compare(ra, rb), strings.Compare(pa, pb))
	})
	return out, nil
}
