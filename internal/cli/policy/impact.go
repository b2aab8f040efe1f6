package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/csv/impact"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/signing"
)

// inventory is one --against inventory: its name and the values given for
// it, in order.
type inventory struct {
	name    string
	sources []string
}

// ringName is what a --against value's NAME= prefix looks like: a value
// whose part before "=" is not one (./a=b, /x=y) is a PATH.
var ringName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// parseAgainst groups the --against values into inventories: NAME=PATH
// adds PATH to the inventory NAME; a bare PATH is an inventory named by
// itself. Inventories come in the order their names first appear.
func parseAgainst(values []string) ([]inventory, error) {
	var out []inventory
	at := map[string]int{}
	for _, v := range values {
		name, src := v, v
		if n, p, ok := cutName(v); ok {
			name, src = n, p
		}
		if src == "" {
			return nil, fmt.Errorf("--against %q: no PATH", v)
		}
		i, ok := at[name]
		if !ok {
			i = len(out)
			at[name] = i
			out = append(out, inventory{name: name})
		}
		out[i].sources = append(out[i].sources, src)
	}
	return out, nil
}

func cutName(v string) (name, path string, ok bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '=' {
			if ringName.MatchString(v[:i]) {
				return v[:i], v[i+1:], true
			}
			return "", "", false
		}
	}
	return "", "", false
}

// judgeFor returns the judging run of an inventory's sources. This is the
// one place that tells kinds of --against values apart: a PATH, a file or
// directory that csv validates, or a facts file (docs/facts.md: recorded
// inspections, whose first line starts {"format":"csv-facts/v1"), whose
// records Validator.ValidateFacts judges with the same Sink and order. An
// inventory is all facts files or all PATHs.
func judgeFor(sources []string) (impact.Judge, error) {
	n := 0
	for _, s := range sources {
		ok, err := facts.IsFactsFile(s)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--against %s: %w", s, err)
		}
		if ok {
			n++
		}
	}
	switch n {
	case 0:
		return impact.Paths(sources...), nil
	case len(sources):
		files := slices.Clone(sources)
		return func(ctx context.Context, v *csv.Validator, sink csv.Sink) error {
			return v.ValidateFacts(ctx, sink, files...)
		}, nil
	}
	return nil, cmdutil.FlagErrorf("policy diff: an --against inventory is either facts files or paths to validate, not both")
}

// judgeImpact judges each --against inventory under the old and the new
// policy, one inventory after the other (nil without --against).
//
// Each policy's run inspects the files itself (two reads of each file):
// what inspection establishes depends on the policy set, not only on the
// files (the policies' certificates complete chains, their rules decide
// which digests are computed and which catalogs admit members), so one
// inspection cannot serve both sets without reshaping csv's pipeline.
func judgeImpact(ctx context.Context, o *DiffOptions, oldP, newP *cipolicy.Policy) ([]*impact.Inventory, error) {
	if len(o.Against) == 0 {
		return nil, nil
	}
	invs, err := parseAgainst(o.Against)
	if err != nil {
		return nil, err
	}
	certs, err := signing.LoadCertificateFiles(o.CertFiles)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if o.now != nil {
		now = o.now()
	}
	clock := func() time.Time { return now } // both policies judge at one time
	sets := make([]*cipolicy.Set, 2)
	for i, p := range []*cipolicy.Policy{oldP, newP} {
		if sets[i], err = cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: certs, Now: clock}, p); err != nil {
			return nil, fmt.Errorf("policy diff: %s: %w", p.Source, err)
		}
	}
	oldV, newV, err := impact.NewValidators(sets[0], sets[1], csv.Options{Jobs: o.Jobs, Scenario: cipolicy.Scenario(o.Scenario),
		Include: o.Include, Exclude: o.Exclude, Certificates: certs, Now: clock})
	if err != nil {
		return nil, cmdutil.FlagErrorf("policy diff: %v", err)
	}
	var out []*impact.Inventory
	for _, inv := range invs {
		judge, err := judgeFor(inv.sources)
		if err != nil {
			return nil, err
		}
		got, err := impact.Compare(ctx, inv.name, inv.sources, oldV, newV, judge)
		if err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

// diffFails says whether policy diff exits 1: without a --fail-if flag,
// when the policies differ or a file's outcome or rule changes; with
// them, when what one names happens.
func diffFails(o *DiffOptions, d *cipolicy.PolicyDiff, invs []*impact.Inventory) bool {
	var total impact.Counts
	for _, inv := range invs {
		total.NewlyBlocked += inv.Counts.NewlyBlocked
		total.NewlyAllowed += inv.Counts.NewlyAllowed
		total.Judged += inv.Counts.Judged
		total.Unchanged += inv.Counts.Unchanged
	}
	if !o.FailIfLoosened && !o.FailIfBlocksMore {
		return !d.Empty() || total.Judged != total.Unchanged
	}
	return o.FailIfLoosened && (d.Loosens() || total.NewlyAllowed > 0) ||
		o.FailIfBlocksMore && total.NewlyBlocked > 0
}

// sarifProperties are the SARIF run's properties: the two policies and
// whether the rule changes loosen.
func sarifProperties(d *cipolicy.PolicyDiff) map[string]any {
	side := func(s cipolicy.DiffSide) map[string]any {
		return map[string]any{"source": s.Source, "name": s.Name, "version": s.Version, "sha256": s.SHA256}
	}
	return map[string]any{"old": side(d.Old), "new": side(d.New), "identical": d.Empty(), "loosens": d.Loosens()}
}
