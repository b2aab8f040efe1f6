package report

import (
	"errors"
	"fmt"
	"slices"

	"github.com/codesignval/csv/cipolicy"
)

// ErrMerge is wrapped by errors about reports that cannot be combined.
var ErrMerge = errors.New("report: cannot merge")

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
	return fmt.Sprintf("%d paths (listing sha256 %.12s, %d left out)", l.Entries, l.SHA256, l.Excluded)
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
