// Package impact measures what a policy change does to real inventories: it
// judges the same files under an old and a new policy set and reports the
// files whose outcome changes (newly blocked: an outage risk; newly allowed:
// a loosening), each with the rule that decides under each policy, grouped
// by the deciding rule and counted.
//
// A judging run is a [Judge]: one policy set's [csv.Validator] passing the
// inventory's results, in its deterministic order, to a [csv.Sink]. The old
// and the new runs go side by side and their result streams are zipped by
// (root, path), so a comparison holds the changed files and nothing else:
// its memory does not grow with the unchanged ones.
//
// # Outcomes
//
// A file runs on a host when it is allowed, or blocked by a policy that only
// audits; it does not run when it is blocked by an enforcing policy. The
// comparison classifies each file by its outcome under each policy ([Kind]):
// newly blocked (ran, does not run), newly allowed (did not run, runs),
// would be blocked in audit (allowed, now blocked by an auditing policy:
// still runs, but would not once the policy enforces), rule changed (same
// outcome, another deciding rule, kind or verdict), unchanged.
//
// Suppressions (csv validate --suppressions) are not applied: they accept a
// finding in a build's CI job, and a host enforcing the policy blocks the
// file all the same, so a newly blocked file is an outage risk whether or
// not a suppression would cover it.
//
// # Security
//
// The inventories are untrusted as csv validate treats them (package csv
// parses and judges them). The two runs walk the same inventory: if they
// do not list the same files in the same order (the tree changed between
// or during the runs), the comparison fails with an [InventoryMismatchError]
// rather than compare different files.
package impact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
)

// Judge is one judging run of one inventory under the policy set of v: it
// passes every judged file to sink in the inventory's deterministic order
// (csv.Sink's contract), so that two runs under two policy sets can be
// zipped file by file.
type Judge func(ctx context.Context, v *csv.Validator, sink csv.Sink) error

// Paths returns the Judge that validates the files and directories at
// roots, as csv validate does (csv.Validator.ValidateTo).
func Paths(roots ...string) Judge {
	roots = slices.Clone(roots)
	return func(ctx context.Context, v *csv.Validator, sink csv.Sink) error {
		return v.ValidateTo(ctx, sink, roots...)
	}
}

// NewValidators returns the validators of the old and the new policy set
// for Compare, with opts: each walks with both sets' path scopes
// (csv.Options.PathScopes), so that both runs list the same files even
// where symbolic links lie and the sets' path globs differ.
func NewValidators(old, new *cipolicy.Set, opts csv.Options) (*csv.Validator, *csv.Validator, error) {
	opts.PathScopes = slices.Concat(opts.PathScopes, csv.PolicyPathScopes(old), csv.PolicyPathScopes(new))
	ov, err := csv.NewValidator(old, opts)
	if err != nil {
		return nil, nil, err
	}
	nv, err := csv.NewValidator(new, opts)
	if err != nil {
		return nil, nil, err
	}
	return ov, nv, nil
}

// Kind is how a file's outcome changes between the old and the new policy.
type Kind string

// Kinds of change.
const (
	// Unchanged: the same verdict, policy, rule and reason kind (and, for
	// a blocked file, enforcement).
	Unchanged Kind = "unchanged"
	// NewlyBlocked: the file ran under the old policy (allowed, or blocked
	// only in audit mode) and is blocked by an enforcing new policy: an
	// outage risk.
	NewlyBlocked Kind = "newly-blocked"
	// NewlyAllowed: the file was blocked by an enforcing old policy and
	// runs under the new one (allowed, or blocked only in audit mode): a
	// loosening.
	NewlyAllowed Kind = "newly-allowed"
	// WouldBlockAudit: the file was allowed and the new policy, which only
	// audits, blocks it: it still runs, and would not once the policy
	// enforces.
	WouldBlockAudit Kind = "would-block-audit"
	// RuleChanged: the same outcome on a host, decided otherwise (another
	// policy, rule or reason kind, or blocked in audit mode against allowed).
	RuleChanged Kind = "rule-changed"
)

// Kinds lists the kinds of change in the order reports show them.
var Kinds = []Kind{NewlyBlocked, WouldBlockAudit, NewlyAllowed, RuleChanged}

// String returns the kind as reports name it in prose.
func (k Kind) String() string {
	switch k {
	case NewlyBlocked:
		return "newly blocked"
	case NewlyAllowed:
		return "newly allowed"
	case WouldBlockAudit:
		return "would be blocked (audit)"
	case RuleChanged:
		return "rule changed"
	}
	return string(k)
}

// Side is a file's decision under one policy set.
type Side struct {
	Verdict cipolicy.Verdict `json:"verdict"`
	// Enforced is false when the deciding policy only audits.
	Enforced bool                `json:"enforced"`
	Kind     cipolicy.ReasonKind `json:"kind"`
	// Policy and Rule name the deciding policy and rule (Rule is empty
	// when no rule matched).
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
}

func sideOf(d cipolicy.Decision) Side {
	return Side{Verdict: d.Verdict, Enforced: d.Enforced, Kind: d.Kind, Policy: d.Policy, Rule: d.Rule, Reason: d.Reason}
}

// runs reports whether a host runs the file: allowed, or blocked only in
// audit mode.
func (s Side) runs() bool { return s.Verdict == cipolicy.Allowed || !s.Enforced }

// Classify returns how a file's outcome changes from old to new.
func Classify(old, new cipolicy.Decision) Kind {
	o, n := sideOf(old), sideOf(new)
	switch {
	case o.runs() && !n.runs():
		return NewlyBlocked
	case !o.runs() && n.runs():
		return NewlyAllowed
	case o.Verdict == cipolicy.Allowed && n.Verdict == cipolicy.Blocked:
		return WouldBlockAudit // runs under both: the new policy audits
	case o.Verdict != n.Verdict || o.Policy != n.Policy || o.Rule != n.Rule || o.Kind != n.Kind:
		// (Enforcement matters to blocked files alone, and changes
		// whether they run: the cases above.)
		return RuleChanged
	}
	return Unchanged
}

// Change is a file whose outcome or deciding rule changes.
type Change struct {
	// Path is the file as reports show it (csv.Result.DisplayPath): the
	// root joined with its path, "!/" before a container member's.
	Path string `json:"path"`
	Kind Kind   `json:"-"`
	Old  Side   `json:"old"`
	New  Side   `json:"new"`
}

// GroupKey is the rule a change is grouped by: the new deciding rule, or,
// when no rule decides under the new policy (a file that nothing allows
// any more), the old deciding rule, which no longer admits it.
type GroupKey struct {
	// DecidedBy is "new" when the key is the new policy's deciding rule,
	// "old" when it is the old policy's.
	DecidedBy string `json:"decided_by"`
	Policy    string `json:"policy,omitempty"`
	Rule      string `json:"rule,omitempty"`
}

// Key returns the rule the change is grouped by (see GroupKey).
func (c *Change) Key() GroupKey {
	if c.New.Rule != "" || c.Old.Rule == "" {
		return GroupKey{DecidedBy: "new", Policy: c.New.Policy, Rule: c.New.Rule}
	}
	return GroupKey{DecidedBy: "old", Policy: c.Old.Policy, Rule: c.Old.Rule}
}

// Counts count an inventory's files by kind of change.
type Counts struct {
	// Judged is the number of binaries judged under both policies.
	Judged          int `json:"judged"`
	Unchanged       int `json:"unchanged"`
	NewlyBlocked    int `json:"newly_blocked"`
	WouldBlockAudit int `json:"would_block_audit"`
	NewlyAllowed    int `json:"newly_allowed"`
	RuleChanged     int `json:"rule_changed"`
	// Skipped counts the files that are not binaries (not judged).
	Skipped int `json:"skipped"`
}

func (c *Counts) add(k Kind) {
	c.Judged++
	switch k {
	case Unchanged:
		c.Unchanged++
	case NewlyBlocked:
		c.NewlyBlocked++
	case WouldBlockAudit:
		c.WouldBlockAudit++
	case NewlyAllowed:
		c.NewlyAllowed++
	case RuleChanged:
		c.RuleChanged++
	}
}

// Of returns the count of files of kind k.
func (c Counts) Of(k Kind) int {
	switch k {
	case Unchanged:
		return c.Unchanged
	case NewlyBlocked:
		return c.NewlyBlocked
	case WouldBlockAudit:
		return c.WouldBlockAudit
	case NewlyAllowed:
		return c.NewlyAllowed
	case RuleChanged:
		return c.RuleChanged
	}
	return 0
}

// Inventory is the impact of the policy change on one inventory (a ring of
// a staged rollout).
type Inventory struct {
	// Name names the inventory (a ring); Sources are what was judged.
	Name    string   `json:"name"`
	Sources []string `json:"sources"`
	Counts  Counts   `json:"counts"`
	// Changes are the changed files, in the inventory's order.
	Changes []Change `json:"-"`
}

// MarshalJSON writes the inventory with its changes grouped (Groups).
func (inv *Inventory) MarshalJSON() ([]byte, error) {
	groups := inv.Groups()
	if groups == nil {
		groups = []Group{}
	}
	return json.Marshal(struct {
		Name    string   `json:"name"`
		Sources []string `json:"sources"`
		Counts  Counts   `json:"counts"`
		Groups  []Group  `json:"groups"`
	}{inv.Name, inv.Sources, inv.Counts, groups})
}

// Group is the changes of one kind that one rule decides (see GroupKey).
type Group struct {
	Kind Kind `json:"change"`
	GroupKey
	Files []Change `json:"files"`
}

// Groups returns the inventory's changes grouped by kind (in the order of
// Kinds) and then by the rule that decides them, groups of a kind in the
// order their first file comes, files in the inventory's order.
func (inv *Inventory) Groups() []Group {
	var out []Group
	for _, k := range Kinds {
		at := map[GroupKey]int{}
		for _, c := range inv.Changes {
			if c.Kind != k {
				continue
			}
			key := c.Key()
			i, ok := at[key]
			if !ok {
				i = len(out)
				at[key] = i
				out = append(out, Group{Kind: k, GroupKey: key})
			}
			out[i].Files = append(out[i].Files, c)
		}
	}
	return out
}

// InventoryMismatchError says the old and the new runs over one inventory
// did not judge the same files in the same order: the inventory changed
// while it was judged.
type InventoryMismatchError struct {
	Inventory string
	// Old and New are the files each run came to ("" for the end of the
	// run).
	Old, New string
}

func (e *InventoryMismatchError) Error() string {
	side := func(s string) string {
		if s == "" {
			return "the end of the inventory"
		}
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("impact: inventory %q: the old policy's run judged %s where the new policy's judged %s: the files changed while they were judged",
		e.Inventory, side(e.Old), side(e.New))
}

// Compare judges the inventory with old and with new, side by side, and
// returns the files whose outcome or deciding rule changes. name names the
// inventory in the result and in errors; sources are recorded as what was
// judged. The two runs' results are zipped by (root, path) as they come:
// only the changed files are kept. old and new must list the same files:
// make them with NewValidators.
func Compare(ctx context.Context, name string, sources []string, old, new *csv.Validator, judge Judge) (*Inventory, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runs := [2]*streamSink{newStreamSink(ctx), newStreamSink(ctx)}
	var wg sync.WaitGroup
	var errs [2]error
	for i, v := range []*csv.Validator{old, new} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(runs[i].ch)
			errs[i] = judge(ctx, v, runs[i])
		}()
	}
	inv := &Inventory{Name: name, Sources: slices.Clone(sources)}
	err := zip(inv, runs[0].ch, runs[1].ch)
	if err != nil {
		cancel() // the runs end (their sinks return the cancellation)
		for i := range runs {
			go func() {
				for range runs[i].ch { // closed when the run ends
				}
			}()
		}
	}
	wg.Wait()
	var mismatch *InventoryMismatchError
	if errors.As(err, &mismatch) && mismatch.Old != "" && mismatch.New != "" {
		return nil, err // both runs went on, over different files
	}
	// A run that failed ended its stream early: its error is the cause.
	// (Both fail alike when the inventory cannot be walked: one says it.)
	for _, runErr := range errs {
		if runErr != nil {
			return nil, fmt.Errorf("impact: inventory %q: %w", name, runErr)
		}
	}
	if err != nil {
		return nil, err
	}
	if !runs[0].ended || !runs[1].ended {
		return nil, fmt.Errorf("impact: inventory %q: a judging run ended without its report", name)
	}
	inv.Counts.Skipped = runs[0].skipped
	return inv, nil
}

// judged is what the comparison keeps of a result.
type judged struct {
	root, path, display string
	decision            cipolicy.Decision
}

// zip reads the two runs' results in step and records the changes.
func zip(inv *Inventory, old, new <-chan judged) error {
	for {
		o, okO := <-old
		n, okN := <-new
		switch {
		case !okO && !okN:
			return nil
		case !okO || !okN || o.root != n.root || o.path != n.path:
			e := &InventoryMismatchError{Inventory: inv.Name}
			if okO {
				e.Old = o.display
			}
			if okN {
				e.New = n.display
			}
			return e
		}
		k := Classify(o.decision, n.decision)
		inv.Counts.add(k)
		if k != Unchanged {
			inv.Changes = append(inv.Changes, Change{Path: o.display, Kind: k, Old: sideOf(o.decision), New: sideOf(n.decision)})
		}
	}
}

// streamSink passes a run's results to a channel; it counts the skipped
// files and notes the end of the run.
type streamSink struct {
	ctx     context.Context
	ch      chan judged
	skipped int
	ended   bool
}

// resultQueue is how many results a run may be ahead of the other.
const resultQueue = 64

func newStreamSink(ctx context.Context) *streamSink {
	return &streamSink{ctx: ctx, ch: make(chan judged, resultQueue)}
}

func (s *streamSink) Begin(*csv.Report) error { return nil }

func (s *streamSink) Result(r *csv.Result) error {
	select {
	case s.ch <- judged{root: r.Root, path: r.Path, display: r.DisplayPath(), decision: r.Decision}:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *streamSink) Skipped(*csv.SkippedFile) error {
	s.skipped++
	return nil
}

func (s *streamSink) End(*csv.Report) error {
	s.ended = true
	return nil
}
