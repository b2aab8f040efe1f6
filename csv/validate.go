// Package csv is the validator pipeline: it discovers the files under the
// paths it is given, inspects each PE and ELF binary in one read (format,
// digests, signatures), judges it with a code integrity policy
// ([cipolicy.Set]) and passes the results, in a deterministic order and as
// they are decided, to the reports in package csv/report.
//
// The name is the project's; where this package and the standard library's
// encoding/csv meet in one file, alias the standard one.
//
// # Security
//
// Every file under the roots is untrusted. Files are opened without blocking
// and without following a symbolic link unless asked (a FIFO or a swapped
// link cannot hang or redirect the run), read through a fixed buffer, and
// parsed by bounds-checked parsers under a recover: a file that is
// unreadable, truncated or malformed becomes a blocked result that says what
// and where, never a crash and never a pass. Symbolic links are followed
// only when asked and never out of the roots.
package csv

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sync/errgroup"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/elf"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/dmverity"
)

// Options configure a Validator. The zero value validates with one worker
// per CPU, in the user scenario, computing only the digests the policy needs.
type Options struct {
	// Jobs is the number of files inspected at once (default GOMAXPROCS).
	Jobs int
	// Verity, when set, are the dm-verity parameters a filesystem image
	// without a hash device beside it is hashed with (its root hash is
	// then its dmverity_sha256; format.InspectOptions.Verity).
	Verity *dmverity.Params
	// Scenario is the scenario the binaries run in (default user).
	Scenario cipolicy.Scenario
	// Include and Exclude are path globs (** for any number of
	// directories) matched against paths relative to each root. With
	// Include set, only files matching one are judged; files and
	// directories matching an Exclude glob are not.
	Include, Exclude []string
	// FollowSymlinks follows symbolic links within the roots.
	FollowSymlinks bool
	// AllDigests computes every digest and verifies every signature for the
	// report, not only what the policy needs.
	AllDigests bool
	// Certificates complete signature chains: intermediates and roots the
	// operator supplies (--certs); the policy's own certificates are added.
	// ELF appended signatures carry no certificates, so their signers can
	// only be found here.
	Certificates []*signing.Certificate
	// Shard, if set, judges only this shard's share of the files, so that a
	// build can be split across CI jobs (see Shard).
	Shard *Shard
	// SignCheck also computes the digests signing compares (SHA256 of every
	// binary, Authenticode SHA256 of PE files), so that Sign can refuse a
	// file that changed after it was validated (Report.Digests).
	SignCheck bool
	// Progress, if set, is called after each file with the count of files
	// done and the count found so far (the walk runs beside the
	// inspection: the total grows until the walk ends). It is called from
	// several goroutines.
	Progress func(done, total int)
	// Now returns the current time (default time.Now); reports carry it.
	Now func() time.Time

	// Catalogs are security catalogs (.cat) whose members count as signed
	// by their signer (--catalog), beside the catalogs under the roots
	// (csv/catalogs.go).
	Catalogs []string

	// Suppressions, if set, are the accepted findings (--suppressions): a
	// blocked file one of them covers is reported with it
	// (Result.Suppressed) and does not fail the run (Result.Fails); the
	// digests they compare are computed for every file they apply to, and
	// their uses are reported at the end (Report.Suppressions).
	Suppressions *suppress.Set

	// PathScopes are path globs the walk tells paths apart by, beside
	// the policy's rules' own (PolicyPathScopes): a symbolic link is
	// judged at its own path unless its target is judged at a path that
	// every glob matches alike (csv/discover.go). Two runs under two
	// policies list the same files when each is given both policies'
	// globs, as package csv/impact does.
	PathScopes []string

	// scopes are the path globs of the policy's rules and PathScopes (set
	// by Validate).
	scopes []string
	// catalogs is the run's catalog index (set by ValidateTo).
	catalogs *catalogIndex

	// ContainerLimits caps what a container (archive, package, image,
	// compressed file) may cost (nil: DefaultContainerLimits).
	ContainerLimits *container.Limits
	// containers, set by the runs that judge members (ValidateTo,
	// GeneratePolicy), opens containers (csv/members.go).
	containers *containerConfig
}

// openContainers sets o.containers: members are judged with the caps of
// o.ContainerLimits, matched by --include and --exclude, and the members
// those leave out are counted in *excluded.
func (o *Options) openContainers(excluded *atomic.Int64) {
	lim := DefaultContainerLimits()
	if o.ContainerLimits != nil {
		lim = *o.ContainerLimits
	}
	o.containers = &containerConfig{lim: lim, include: o.Include, exclude: o.Exclude, excluded: func() { excluded.Add(1) }}
}

// Validator judges build output with a policy set.
type Validator struct {
	set  *cipolicy.Set
	opts Options
}

// ErrOptions is wrapped by errors about invalid Options.
var ErrOptions = errors.New("csv: invalid options")

// NewValidator returns a Validator that judges with set.
func NewValidator(set *cipolicy.Set, opts Options) (*Validator, error) {
	if set == nil {
		return nil, fmt.Errorf("%w: no policy", ErrOptions)
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.GOMAXPROCS(0)
	}
	if opts.Scenario == "" {
		opts.Scenario = cipolicy.ScenarioUser
	}
	if _, err := cipolicy.ParseScenario(string(opts.Scenario)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	for _, g := range slices.Concat(opts.Include, opts.Exclude, opts.PathScopes) {
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("%w: invalid glob %q", ErrOptions, g)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Validator{set: set, opts: opts}, nil
}

// Result is the judgement of one binary.
type Result struct {
	// Root is the PATH argument the file was found under, as given; Path
	// is slash-separated and relative to it (a file argument's base name).
	Root    string
	Path    string
	Format  Format
	Size    int64
	Digests cipolicy.Digests
	Signed  bool
	// Signatures are the verified signatures (nil when the policy has no
	// signer rules and AllDigests is off).
	Signatures []*signing.Signature
	Attributes *cipolicy.FileAttributes
	// Info is the format's own facts (its handler's: *pe.Info, *elf.Info),
	// nil when the headers could not be read.
	Info     format.Info
	Decision cipolicy.Decision
	// Catalog names the security catalog whose signature the deciding
	// signer rule matched, when the file is a member of one.
	Catalog string
	// Err is why the file could not be inspected, if it could not.
	Err error
	// Walk is the file's place in the walk.
	Walk Walk
	// Suppressed is the suppression that covers the file's finding, when
	// it is blocked and one does (Options.Suppressions): the decision
	// stays blocked, and the run does not fail for it.
	Suppressed *suppress.Entry
	// Origin, for a result judged from recorded facts (ValidateFacts),
	// is where they were recorded (the facts file's header); "" for a
	// file judged here.
	Origin string
	// fileRoot is set when Root names the file itself.
	fileRoot bool
	// own is how many of Signatures the file carries itself, catalogs
	// the catalog of each after them (catalogIndex.admit), and
	// decompressed the Inspection's: what a facts record keeps.
	own          int
	catalogs     []string
	decompressed bool
	// lookup are the digests the run's catalogs looked the file up by.
	lookup cipolicy.DigestSet
}

// Fails reports whether the file fails the run: blocked by an enforcing
// policy, and covered by no suppression.
func (r *Result) Fails() bool { return r.Decision.Fails() && r.Suppressed == nil }

// DisplayPath is the path to show a user, slash-separated: the root joined
// with the relative path, or the root itself when it names the file; a
// result judged from recorded facts is prefixed with their origin and a
// colon ("build-42:out/bin/tool").
func (r *Result) DisplayPath() string {
	return withOrigin(r.Origin, displayPath(r.Root, r.Path, r.fileRoot))
}

func displayPath(root, rel string, fileRoot bool) string {
	root = filepath.ToSlash(root)
	if fileRoot {
		// rel is the file's base name, and what follows the first
		// separator its members' path ("app.zip!/lib/x.dll").
		if i := strings.Index(rel, container.Separator); i >= 0 {
			return root + rel[i:]
		}
		return root
	}
	return path.Join(root, rel)
}

// Summary counts a run's outcome.
type Summary struct {
	// Files is the number of binaries judged.
	Files   int `json:"files"`
	Allowed int `json:"allowed"`
	Blocked int `json:"blocked"`
	// Skipped counts files that are not PE or ELF and entries that are not
	// regular files or are unfollowed symbolic links.
	Skipped int `json:"skipped"`
	// Excluded counts files left out by --include and --exclude.
	Excluded int `json:"excluded"`
	// Suppressed counts the blocked binaries a suppression covers (they
	// are counted in Blocked too).
	Suppressed int `json:"suppressed,omitempty"`
}

// Report is the outcome of a validation run.
type Report struct {
	// Shard is the share of the files this report judged (nil: all).
	Shard    *Shard
	Policies []*cipolicy.Policy
	Mode     cipolicy.Mode
	Scenario cipolicy.Scenario
	// Roots are the PATH arguments as given; NormalizedRoots the same
	// paths as the build sees them, whatever their spelling and wherever
	// the workspace lies (see NormalizeRoot).
	Roots           []string
	NormalizedRoots []string
	// Origins, for a run that judged recorded facts (ValidateFacts, whose
	// Roots are the facts files), are where they were recorded, one per
	// facts file, in order.
	Origins []string
	// Include, Exclude, FollowSymlinks and Certificates are the options
	// that selected the files and completed their chains (Options).
	Include, Exclude []string
	FollowSymlinks   bool
	Certificates     []*signing.Certificate
	Started          time.Time
	Duration         time.Duration
	Summary          Summary
	Results          []Result
	Skipped          []SkippedFile
	// Walked is every path the walk listed under the roots, before a shard
	// took its share: the shards of one build must have walked the same
	// tree, or a file in one shard's share may have been absent where that
	// shard ran.
	Walked Listing
	// Suppressions are the run's suppressions (Options.Suppressions) at
	// its end: how many findings each covered, and which had expired (an
	// expired suppression fails the run).
	Suppressions []suppress.Status
}

// Listing identifies the paths a walk listed (files judged, skipped and
// blocked, in the walk's order), by their number and a SHA-256 of their
// roots' positions and paths.
type Listing struct {
	Entries int
	SHA256  []byte
	// Excluded counts the files the walk left out (--include, --exclude):
	// every shard of a run counts them all (Summary.Excluded adds the
	// members left out of the containers the shard opened).
	Excluded int
}

// Failed reports whether the run should fail the CI job: at least one
// binary blocked by an enforcing policy and covered by no suppression, or
// a suppression that has expired.
func (r *Report) Failed() bool {
	for i := range r.Results {
		if r.Results[i].Fails() {
			return true
		}
	}
	return len(suppress.Expired(r.Suppressions)) > 0
}

// Digests maps each judged binary's DisplayPath to its digests, for
// SignOptions.Expect.
func (r *Report) Digests() map[string]cipolicy.Digests {
	m := make(map[string]cipolicy.Digests, len(r.Results))
	for i := range r.Results {
		m[r.Results[i].DisplayPath()] = r.Results[i].Digests
	}
	return m
}

// InterruptedError is returned when the context is cancelled during a run:
// Done files were inspected of the Total found. Validation walks the tree as
// it inspects: when the walk had not ended (Walking), Total counts the
// files found before the interruption.
type InterruptedError struct {
	Done, Total int
	Walking     bool
	Err         error
}

func (e *InterruptedError) Error() string {
	if e.Walking {
		return fmt.Sprintf("interrupted after %d of the %d files found so far: validation incomplete", e.Done, e.Total)
	}
	return fmt.Sprintf("interrupted after %d of %d files: validation incomplete", e.Done, e.Total)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// Sink receives a run's outcome as it is decided: Begin with the run's
// metadata (a Report without results, summary, duration or listing) once the
// roots are resolved and before the walk starts, then every judged binary
// (Result) and every skipped file (Skipped), each in discovery order (roots
// as given, lexical within directories) whatever the workers' schedule, and
// End with the whole Report but its Results and Skipped (the summary, the
// duration, the walk's listing). The values passed are the sink's to keep;
// the pipeline holds none of them after the call. A sink's error stops the
// run and is returned. When the run fails (an error or a cancellation) End
// is not called, though Begin and some results may have been: a sink that
// writes a report writes nothing before End, as csv validate writes no
// report of an interrupted run.
type Sink interface {
	Begin(rep *Report) error
	Result(r *Result) error
	Skipped(s *SkippedFile) error
	End(rep *Report) error
}

// Validate judges every PE and ELF file under roots. Judged binaries come out
// in discovery order (roots as given, lexical within directories), however
// the workers are scheduled. A blocked file is a result, not an error: errors
// are for roots that cannot be walked and for cancellation.
func (v *Validator) Validate(ctx context.Context, roots ...string) (*Report, error) {
	var c collector
	if err := v.ValidateTo(ctx, &c, roots...); err != nil {
		return nil, err
	}
	return c.rep, nil
}

// collector is the Sink that Validate collects a Report with.
type collector struct {
	rep     *Report
	results []Result
	skipped []SkippedFile
}

func (c *collector) Begin(*Report) error { return nil }

func (c *collector) Result(r *Result) error {
	c.results = append(c.results, *r)
	return nil
}

func (c *collector) Skipped(s *SkippedFile) error {
	c.skipped = append(c.skipped, *s)
	return nil
}

func (c *collector) End(rep *Report) error {
	rep.Results, rep.Skipped = c.results, c.skipped
	c.rep = rep
	return nil
}

// ValidateTo judges every PE and ELF file under roots as Validate does, and
// passes the outcome to sink as it is decided (see Sink): each binary is
// judged and passed on once it and every file before it are inspected, and
// neither its inspection nor its result is kept, so the memory of a run does
// not grow with the binaries' signatures (see inspectInOrder).
func (v *Validator) ValidateTo(ctx context.Context, sink Sink, roots ...string) error {
	rep := &Report{Policies: v.set.Policies(), Mode: v.set.Mode(), Scenario: v.opts.Scenario,
		Roots: roots, Started: v.opts.Now(), Shard: v.opts.Shard,
		Include: v.opts.Include, Exclude: v.opts.Exclude, FollowSymlinks: v.opts.FollowSymlinks, Certificates: v.opts.Certificates}
	for _, r := range roots {
		rep.NormalizedRoots = append(rep.NormalizedRoots, NormalizeRoot(r))
	}
	needs := v.needs
	opts := v.opts
	opts.Certificates = signing.Dedup(append(slices.Clone(opts.Certificates), v.set.Certificates()...))
	opts.scopes = pathScopes(v.set)
	if len(v.opts.PathScopes) > 0 {
		opts.scopes = append(opts.scopes, v.opts.PathScopes...)
		slices.Sort(opts.scopes)
		opts.scopes = slices.Compact(opts.scopes)
	}
	var excludedMembers atomic.Int64
	opts.openContainers(&excludedMembers)
	cats, err := buildCatalogs(ctx, &opts, roots, needs, v.catalogDenied)
	if err != nil {
		return err
	}
	opts.catalogs = cats
	needs = opts.catalogs.needs(needs)
	w, err := startWalk(ctx, &opts, roots)
	if err != nil {
		return err
	}
	if err := sink.Begin(rep); err != nil {
		return err
	}
	// judge judges a file from its inspection (in is nil for a file the
	// walk found a problem with). Safe for concurrent use: the workers
	// judge a file whose first read deferred facts (again), the emitter
	// every file.
	judge := func(e *entry, in *Inspection) Result {
		r := Result{Root: roots[e.root], Path: e.rel, Format: e.format, Err: e.problem, Walk: e.walk, fileRoot: e.fileRoot}
		if in != nil {
			r.Format, r.Size, r.Digests, r.Signed, r.Info, r.Err = in.Format, in.Size, in.Digests, in.Signed(), in.Info, in.Err
			r.Signatures, r.Attributes = in.Signatures, in.Attributes
		}
		sub := cipolicy.Subject{Path: e.rel, Format: r.Format, Scenario: v.opts.Scenario,
			Digests: r.Digests, Signed: r.Signed, Signatures: r.Signatures, Attributes: r.Attributes,
			Partial: in != nil && in.deferred, Decompressed: in != nil && in.decompressed}
		if ei, ok := r.Info.(*elf.Info); ok && ei.Type == 1 { // ET_REL
			sub.Relocatable = true
		}
		if r.Err != nil {
			sub.Problem = pathless{r.Err}
		}
		own, names := len(r.Signatures), cats.admit(&r, &sub)
		if d, ok := v.catalogDecision(&r); ok {
			r.Decision = d
		} else {
			r.Decision = v.set.Evaluate(sub)
			r.Signatures = sub.Signatures
			admitted(&r, own, names)
		}
		r.own, r.catalogs, r.decompressed, r.lookup = own, names, sub.Decompressed, cats.lookup(r.Format)
		return r
	}
	// again: the first read's facts leave the file blocked, and those it
	// deferred could admit it (cipolicy.Decision.Incomplete); otherwise
	// the decision is final, and the inspection keeps it for the emitter.
	again := func(e *entry, in *Inspection) bool {
		if !in.deferred || in.Err != nil || in.Format == FormatOther {
			return false
		}
		r := judge(e, in)
		if r.Decision.Incomplete {
			return true
		}
		in.judged = &r
		return false
	}
	err = inspectInOrder(ctx, &opts, w, needs, again, func(e *entry, in *Inspection) error {
		switch {
		case e.skipped != nil:
			rep.Summary.Skipped++
			return sink.Skipped(e.skipped)
		case in != nil && in.Container != "" && in.Err == nil && in.Format == FormatOther:
			rep.Summary.Skipped++
			return sink.Skipped(&SkippedFile{Root: roots[e.root], Path: e.rel, Walk: e.walk, fileRoot: e.fileRoot,
				Reason: fmt.Sprintf("%s container: its members are judged (%s%s...)", in.Container, path.Base(e.rel), container.Separator)})
		case in != nil && in.Format == FormatOther && in.Err == nil:
			rep.Summary.Skipped++
			return sink.Skipped(&SkippedFile{Root: roots[e.root], Path: e.rel, Reason: "not a PE or ELF file", Walk: e.walk, fileRoot: e.fileRoot})
		}
		var r Result
		if in != nil && in.judged != nil {
			r = *in.judged
		} else {
			r = judge(e, in)
		}
		if r.Decision.Incomplete {
			// again said otherwise of the same inspection: a bug, and
			// the file is blocked all the same.
			r.Decision.Reason = "internal error: judged without the digests the policy's allow rules compare: " + r.Decision.Reason
		}
		rep.Summary.Files++
		if r.Decision.Allowed() {
			rep.Summary.Allowed++
		} else {
			rep.Summary.Blocked++
			r.Suppressed = v.opts.Suppressions.Match(suppress.Finding{Path: r.Path, Kind: r.Decision.Kind, Digests: r.Digests})
			if r.Suppressed != nil {
				rep.Summary.Suppressed++
			}
		}
		return sink.Result(&r)
	})
	if err != nil {
		return err
	}
	rep.Summary.Excluded = w.excluded + int(excludedMembers.Load())
	rep.Walked = w.walked
	rep.Walked.Excluded = w.excluded
	rep.Duration = v.opts.Now().Sub(rep.Started)
	rep.Suppressions = v.opts.Suppressions.Statuses()
	return sink.End(rep)
}

// needs says what to establish of a file at rel of format f: what the
// policy compares (all of it with AllDigests), what the suppressions and
// signing compare.
func (v *Validator) needs(rel string, f cipolicy.Format) cipolicy.Needs {
	switch {
	case f == FormatOther:
		return cipolicy.Needs{} // not judged, so not hashed
	case v.opts.AllDigests:
		return cipolicy.AllNeeds()
	}
	n := v.set.Needs(rel, f, v.opts.Scenario)
	for _, a := range v.opts.Suppressions.Digests().Algorithms() {
		if a.AppliesTo(f) {
			n.Digests = n.Digests.With(a)
		}
	}
	if v.opts.SignCheck {
		// What signing compares (format.SignOptions.Expect).
		n.Digests = n.Digests.With(cipolicy.SHA256).With(f.RuleDigest())
	}
	return n
}

// PolicyPathScopes lists the path globs of the set's rules and their
// exceptions, sorted: the set judges a file alike at two paths that every
// one matches alike (see Options.PathScopes).
func PolicyPathScopes(set *cipolicy.Set) []string { return pathScopes(set) }

// pathScopes lists the path globs of the set's rules and their exceptions:
// a file is judged alike at two paths that every one matches alike.
func pathScopes(set *cipolicy.Set) []string {
	var out []string
	for _, p := range set.Policies() {
		for i := range p.Rules {
			r := &p.Rules[i]
			out = append(out, r.Paths...)
			for j := range r.Except {
				out = append(out, r.Except[j].Paths...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NormalizeRoot returns a PATH argument as the build sees it: cleaned,
// slash-separated, and relative to the working directory when it lies
// under it (build/, ./build and /ws1/build from /ws1 are all "build"; so is
// /ws2/build from /ws2), absolute otherwise. Shards of one build merge
// only if their roots normalise alike.
func NormalizeRoot(root string) string {
	abs, err := filepath.Abs(root)
	if err != nil {
		return filepath.ToSlash(filepath.Clean(root))
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, abs); err == nil && (rel == "." || filepath.IsLocal(rel)) {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.ToSlash(abs)
}

// Shard is one of Count shares of a build's files (Index from 1): every
// file, skipped and blocked entries included, falls in exactly one share,
// by a hash of its path relative to its root (ShardOf), so that the share
// does not depend on how the root is spelled or where the workspace lies.
// The JSON reports of all shards combine with csv report merge.
type Shard struct {
	Index, Count int
}

// ParseShard reads "i/n".
func ParseShard(s string) (*Shard, error) {
	var sh Shard
	if _, err := fmt.Sscanf(s, "%d/%d", &sh.Index, &sh.Count); err != nil || fmt.Sprintf("%d/%d", sh.Index, sh.Count) != s {
		return nil, fmt.Errorf("%w: shard %q: want i/n, such as 2/4", ErrOptions, s)
	}
	if sh.Count < 1 || sh.Index < 1 || sh.Index > sh.Count {
		return nil, fmt.Errorf("%w: shard %q: want 1 <= i <= n", ErrOptions, s)
	}
	return &sh, nil
}

func (s *Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// holds reports whether the file at rel (relative to its root) is in this
// shard.
func (s *Shard) holds(rel string) bool { return ShardOf(rel, s.Count) == s.Index }

// ShardOf returns the shard (1 to count) that judges the file at rel, the
// slash-separated path relative to its root that reports show: an FNV-1a
// hash of it, the same on every machine.
func ShardOf(rel string, count int) int {
	if count < 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(rel))
	return int(h.Sum64()%uint64(count)) + 1
}

// startWalk resolves the roots of a run's walk (see newWalker).
func startWalk(ctx context.Context, opts *Options, roots []string) (*walker, error) {
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: no paths to validate", ErrOptions)
	}
	w, err := newWalker(ctx, roots, opts.Include, opts.Exclude, opts.FollowSymlinks, opts.scopes)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &InterruptedError{Err: ctx.Err()}
		}
		return nil, err
	}
	w.containers = opts.containers != nil
	return w, nil
}

// stream runs the walk (walker.run), passes emit the shard's share of the
// entries, and records the walk's listing of them all (w.walked): their
// number and a SHA-256 of their roots' positions and paths, in order.
func (w *walker) stream(shard *Shard, emit func(*entry) error) error {
	h := sha256.New()
	var b []byte
	n := 0
	after := 0
	err := w.run(func(e *entry) error {
		if e.includeOnly {
			// Not in the listing (it is not judged), but in the shard's.
			after++
			e.walk = Walk{Entry: n, After: after}
			if e.skipped != nil {
				e.skipped.Walk = e.walk
			}
			if shard != nil && !shard.holds(e.rel) {
				return nil
			}
			return emit(e)
		}
		b = strconv.AppendInt(b[:0], int64(e.root), 10)
		b = append(append(append(b, 0), e.rel...), 0)
		h.Write(b)
		n++
		after = 0
		e.walk = Walk{Entry: n}
		if e.skipped != nil {
			e.skipped.Walk = e.walk
		}
		if shard != nil && !shard.holds(e.rel) {
			return nil
		}
		return emit(e)
	})
	w.walked = Listing{Entries: n, SHA256: h.Sum(nil)}
	return err
}

// windowPerJob is inspectInOrder's reorder window, per worker: how many
// files may be under way or inspected and not yet passed on. It bounds the
// inspections a run holds (on the bench corpus about 10 KiB each with their
// signatures and chains: some 2.5 MiB per worker, beside its 256 KiB read
// buffer), and how far the other workers can go on while one reads a large
// file: there, a 270 MB file is followed by some 240 files holding as many
// bytes, and with 64 or 128 per worker the other worker ran out of files
// and the run took 8 to 12% longer than taking the largest files first, as
// the pipeline did when it held every inspection; with 256 it is as fast.
// A variable for tests.
var windowPerJob = 256

// inspectFile is inspect (a variable for tests, which hold a file's
// inspection back).
var inspectFile = inspect

// inspectInOrder runs the walk w (walker.stream: the shard's share of its
// entries, as they are listed) and inspects each regular file among them in
// parallel, computing the digests needs asks for (not those it defers,
// Needs.Later: if again, called from the worker with the first read's
// inspection, says the file needs them, the worker reads the file a second
// time with the full needs, Needs.Full, and that inspection is the file's;
// a nil again reads each file once, with the full needs), and calls emit with every
// entry in the walk's order (with its inspection; nil for skipped and
// blocked entries), from the calling goroutine, as soon as it and every
// entry before it are done. Workers take the files in that order, each with
// a fixed read buffer; the walk waits while it would be more than the
// reorder window (windowPerJob per worker) ahead of the first file not yet
// emitted, so a run holds at most that many inspections, and no listing of
// the tree, however large it is. An error from emit stops the walk and the
// workers and is returned; so does a cancellation, as an InterruptedError,
// and emit is then not called again.
func inspectInOrder(ctx context.Context, opts *Options, w *walker, needs func(rel string, f cipolicy.Format) cipolicy.Needs,
	again func(e *entry, in *Inspection) bool, emit func(e *entry, in *Inspection) error) error {
	if again == nil {
		first := needs
		needs = func(rel string, f cipolicy.Format) cipolicy.Needs { return first(rel, f).Full() }
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	window := max(windowPerJob*jobs, 1)
	// The walk takes a token before it passes a file to the workers and
	// the emitter gives it back once that file is emitted: the files
	// passed and not yet emitted are never more than the window, and are
	// consecutive, so each has its own place in the ring.
	tokens := make(chan struct{}, window)
	type job struct {
		e *entry
		k int // the file's place among the files to inspect; -1 for other entries
	}
	work := make(chan job, window) // never full: one per token
	order := make(chan job, window)
	type finished struct {
		k  int
		in *Inspection
	}
	results := make(chan finished, window) // never full: one per token
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var found, done atomic.Int64
	var walked atomic.Bool
	cache := authenticode.NewCertCache() // every file of a build carries the same chains
	// Members of containers held in memory are inspected by whichever
	// worker is free (tasks), while the worker that walks the container
	// reads on; tasks is closed once nothing can add to it: the walk has
	// ended and every file passed to a worker is done (producers).
	tasks := make(chan func(buf []byte), memberTasks*jobs)
	var producers atomic.Int64
	producers.Add(1) // the walk's
	produced := func() {
		if producers.Add(-1) == 0 {
			close(tasks)
		}
	}
	var inflight atomic.Int64 // bytes of members held by tasks not yet run
	dispatch := func(size int64, task func(buf []byte)) bool {
		if inflight.Add(size) > maxInflight && size > 0 {
			inflight.Add(-size)
			return false
		}
		select {
		case tasks <- func(buf []byte) { inflight.Add(-size); task(buf) }:
			return true
		default:
			inflight.Add(-size)
			return false
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(order)
		defer close(work)
		defer produced()
		err := w.stream(opts.Shard, func(e *entry) error {
			j := job{e, -1}
			if e.isTodo() {
				select {
				case tokens <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
				j.k = int(found.Add(1)) - 1
				producers.Add(1) // done by the worker
				select {
				case work <- j:
				case <-gctx.Done():
					producers.Add(-1)
					return gctx.Err()
				}
			}
			select {
			case order <- j:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
		if err == nil {
			err = gctx.Err()
		}
		walked.Store(err == nil)
		return err
	})
	// inspectJob inspects a file, with buf, and passes its inspection on;
	// a container's members follow, as the worker decides them.
	inspectJob := func(j job, buf []byte) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		e := j.e
		cfg := &inspectConfig{needs: func(f cipolicy.Format) cipolicy.Needs { return needs(e.rel, f) },
			opts: format.InspectOptions{Certificates: opts.Certificates, Cache: cache, Verity: opts.Verity}, follow: e.follow, noSidecar: e.noSidecar,
			containers: opts.containers, containerOnly: e.includeOnly, layout: e.layout}
		if opts.containers != nil {
			// Members are judged at their own paths, and read
			// again as files are (csv/members.go).
			cfg.needs = nil
			cfg.needsAt = needs
			cfg.rel = e.rel
			cfg.inTree = !e.fileRoot // an installer's external cabinet beside it is judged too
			cfg.dispatch = dispatch
			cfg.help = func(done <-chan struct{}) {
				var tbuf []byte
				for {
					select {
					case <-done:
						return
					case t := <-tasks: // not closed: this walk is a producer
						// (Once the run is cancelled, tasks end at once:
						// this still drains them, so that the walk ends.)
						if tbuf == nil {
							tbuf = make([]byte, limits.ReadBuffer)
						}
						t(tbuf)
					}
				}
			}
			if again != nil {
				cfg.again = func(rel string, in *Inspection) bool {
					return again(&entry{root: e.root, rel: rel, fileRoot: e.fileRoot}, in)
				}
			}
		}
		in := opts.catalogs.take(e.abs) // read while indexing catalogs
		if in == nil {
			in = inspectFile(gctx, e.abs, buf, cfg)
		}
		if again != nil && in.deferred && gctx.Err() == nil && again(e, in) {
			if in.release != nil {
				in.release()
			}
			cfg.needs = func(f cipolicy.Format) cipolicy.Needs { return needs(e.rel, f).Full() }
			in = inspectFile(gctx, e.abs, buf, cfg)
		}
		if in.Err != nil && gctx.Err() != nil {
			return gctx.Err()
		}
		d := done.Add(1)
		if opts.Progress != nil {
			opts.Progress(int(d), int(found.Load()))
		}
		if in.walk == nil {
			results <- finished{j.k, in}
			return nil
		}
		// A container: its members follow its inspection, as the
		// worker decides them.
		ch := make(chan *member, memberQueue)
		in.members = ch
		results <- finished{j.k, in}
		var tbuf []byte // for members' tasks run while the emitter is behind
		tq := tasks     // not closed while this walk runs: it is a producer
		err := in.walk(gctx, func(m *member) error {
			for {
				select {
				case ch <- m:
					return nil
				case t, ok := <-tq:
					// The emitter may be waiting for this task: run it
					// rather than wait (every worker may be walking).
					if !ok {
						tq = nil
					} else {
						if tbuf == nil {
							tbuf = make([]byte, limits.ReadBuffer)
						}
						t(tbuf)
					}
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		})
		close(ch)
		if err != nil {
			var stop *emitStop
			if errors.As(err, &stop) {
				err = stop.err
			}
			return err
		}
		return nil
	}
	for range jobs {
		g.Go(func() error {
			buf := make([]byte, limits.ReadBuffer)
			work := work
			for {
				var j job
				select {
				case t, ok := <-tasks:
					if !ok {
						return nil // no file is left, nor any member
					}
					t(buf)
					continue
				default:
				}
				select {
				case t, ok := <-tasks:
					if !ok {
						return nil
					}
					t(buf)
					continue
				case jj, ok := <-work:
					if !ok {
						work = nil // members of others' containers may follow
						continue
					}
					j = jj
				case <-gctx.Done():
					return gctx.Err()
				}
				if err := func() error {
					defer produced()
					return inspectJob(j, buf)
				}(); err != nil {
					return err
				}
			}
		})
	}
	interrupted := func() error {
		err := g.Wait()
		if err == nil {
			err = ctx.Err()
		}
		return &InterruptedError{Done: int(done.Load()), Total: int(found.Load()), Walking: !walked.Load(), Err: err}
	}
	ring := make([]*Inspection, window)
	for {
		var j job
		var ok bool
		select {
		case j, ok = <-order:
		case <-gctx.Done():
			return interrupted()
		}
		if !ok {
			break
		}
		var in *Inspection
		if j.k >= 0 {
			for ring[j.k%window] == nil {
				select {
				case f := <-results:
					ring[f.k%window] = f.in
				case <-gctx.Done():
					return interrupted()
				}
			}
			in, ring[j.k%window] = ring[j.k%window], nil
		}
		err := emitAll(gctx, w.roots, j.e, in, emit, opts.containers)
		if errors.Is(err, errInterrupted) {
			return interrupted()
		}
		if err != nil {
			cancel()
			_ = g.Wait() // the walk's and the workers' errors are this cancellation
			return err
		}
		if in != nil {
			<-tokens
		}
	}
	if err := g.Wait(); err != nil {
		return &InterruptedError{Done: int(done.Load()), Total: int(found.Load()), Walking: !walked.Load(), Err: err}
	}
	return nil
}

// memberTasks is how many members held in memory per worker may wait for a
// free worker to inspect them, and maxInflight how many bytes they may
// hold in all (measured on bench/containers.sh: more buys no speed, and
// raises the heap the garbage collector lets grow).
const (
	memberTasks = 4
	maxInflight = 16 << 20
)

// memberQueue is how many decided members of a container a worker may be
// ahead of the emitter: the emitter takes containers in the walk's order,
// and a worker walking a later container goes on while it is busy with an
// earlier one (with 64, the workers of bench/containers.sh waited for each
// other, one container after the other: 6.9 s against 5.6 s). A decided
// member is its inspection (digests, signatures), not its bytes.
const memberQueue = 1024

// errInterrupted: the run was cancelled while the emitter waited.
var errInterrupted = errors.New("interrupted")

// emitAll emits an entry, and a container's members after it as the
// worker decides them (an entry the walk passed for its members alone,
// which is no container, is counted as excluded).
func emitAll(ctx context.Context, roots []string, e *entry, in *Inspection, emit func(e *entry, in *Inspection) error, cc *containerConfig) error {
	if e.includeOnly && (in == nil || in.members == nil && in.Container == "") {
		if cc != nil && cc.excluded != nil {
			cc.excluded()
		}
		return nil
	}
	if err := emit(e, in); err != nil {
		return err
	}
	if in == nil || in.members == nil {
		return nil
	}
	members := 0
	for {
		var m *member
		var ok bool
		select {
		case m, ok = <-in.members:
		case <-ctx.Done():
			return errInterrupted
		}
		if !ok {
			return nil
		}
		if m.ready != nil {
			select {
			case <-m.ready:
			case <-ctx.Done():
				return errInterrupted
			}
		}
		walk := e.walk
		members++
		walk.Member = members
		me := &entry{root: e.root, rel: m.rel, fileRoot: e.fileRoot, problem: m.problem, format: FormatOther, walk: walk}
		mi := m.in
		if m.problem != nil {
			mi = nil
		}
		if m.skipped != "" {
			me.skipped, mi = &SkippedFile{Root: roots[e.root], Path: m.rel, Reason: m.skipped, Walk: walk, fileRoot: e.fileRoot}, nil
		}
		if err := emit(me, mi); err != nil {
			return err
		}
	}
}

// Binaries lists the PE and ELF files under roots, as validation discovers
// them, without judging them (and without hashing: only the headers are
// read). Files that cannot be read or parsed are listed with Err set.
func Binaries(ctx context.Context, opts Options, roots ...string) ([]Result, error) {
	w, err := startWalk(ctx, &opts, roots)
	if err != nil {
		return nil, err
	}
	var out []Result
	none := func(string, cipolicy.Format) cipolicy.Needs { return cipolicy.Needs{} }
	err = inspectInOrder(ctx, &opts, w, none, nil, func(e *entry, in *Inspection) error {
		switch {
		case e.skipped != nil:
		case e.problem != nil:
			out = append(out, Result{Root: roots[e.root], Path: e.rel, Format: e.format, Err: e.problem, fileRoot: e.fileRoot})
		case in.Format != FormatOther || in.Err != nil:
			out = append(out, Result{Root: roots[e.root], Path: e.rel, Format: in.Format, Size: in.Size, Err: in.Err, fileRoot: e.fileRoot})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
