// Package suppress reads suppressions files and matches findings against
// them: a checked-in list of accepted findings, each naming the files it
// covers (a path glob and/or a digest), the finding's rule, a mandatory
// justification and an optional expiry date. A suppressed finding is not a
// pass: the file stays blocked in the report's facts, every report lists
// it with its justification, and only the run's verdict counts it apart.
//
// Two formats are read (docs/suppressions.md): csv's own YAML
// ("format: csv-suppressions/v1"), strict as policies are, and Microsoft
// Guardian's .gdnsuppress JSON, of which only hydrated entries naming a
// rule csv reports and a relative target can be mapped (see ParseGuardian).
//
// # Security
//
// A suppressions file is checked in beside the build, so it is as trusted
// as the build's own scripts, but it is read as untrusted bytes: its size,
// entries, strings and nesting are capped (internal/limits), YAML aliases
// are refused, and every problem is reported with its line. Nothing here
// turns a finding into a pass: an entry that does not parse, names no file,
// names a rule csv never reports, lacks a justification or has expired
// suppresses nothing, and the last two fail the run (Set.Expired).
package suppress

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/safefile"
)

// ErrInvalid is wrapped by every error about a suppressions file's
// content.
var ErrInvalid = errors.New("suppress: invalid suppressions file")

// Problem is one thing wrong with a suppressions file.
type Problem struct {
	Line    int // 1-based; 0 when the problem has no line
	Message string
}

// LoadError lists everything wrong with a suppressions file, so that a
// user fixes it in one pass. errors.Is(err, ErrInvalid) holds.
type LoadError struct {
	Source   string
	Problems []Problem
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = problemError{e.Source, p}.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns an error per problem, whose messages are the lines of
// Error (so that csv prints each on a line of its own).
func (e *LoadError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = problemError{e.Source, p}
	}
	return out
}

// problemError is one problem of a LoadError: "FILE:LINE: message".
type problemError struct {
	source string
	p      Problem
}

func (e problemError) Error() string {
	if e.p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.source, e.p.Line, e.p.Message)
	}
	return e.source + ": " + e.p.Message
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *LoadError) Is(target error) bool { return target == ErrInvalid }

// Entry is one suppression. It covers a finding when every matcher it has
// matches (Path and each of Digests; at least one is set) and Rule names
// the finding's kind.
type Entry struct {
	// Source and Line locate the entry (Line 0: none, a Guardian entry
	// is named by its signature, ID).
	Source string
	Line   int
	// ID is the Guardian result's signature ("" in csv's format).
	ID string
	// Path is a glob over the path relative to the validated root, as
	// policy path rules and --include match ("" any path): a container's
	// member is "a.zip!/lib/x.dll".
	Path string
	// Digests the file must have, by algorithm (each one computed for the
	// file and equal).
	Digests cipolicy.Digests
	// Rule is the finding's kind (cipolicy.ReasonKind) or its SARIF rule
	// id, as written; Kind is the kind it names.
	Rule string
	Kind cipolicy.ReasonKind
	// Justification says why the finding is accepted (never empty).
	Justification string
	// Expires is the last day the entry applies (UTC; zero: none).
	Expires time.Time
	// Owner and Ticket are free text, shown in reports.
	Owner, Ticket string
	// Tool is the Guardian entry's tool, as written.
	Tool string
}

// Ref names the entry in messages: its file and line, or its Guardian
// signature.
func (e *Entry) Ref() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s:%d", e.Source, e.Line)
	case e.ID != "":
		return fmt.Sprintf("%s: result %.16s", e.Source, e.ID)
	}
	return e.Source
}

// What describes what the entry covers: "rule unsigned, path vendor/**".
func (e *Entry) What() string {
	parts := []string{"rule " + e.Rule}
	if e.Path != "" {
		parts = append(parts, "path "+e.Path)
	}
	e.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) {
		parts = append(parts, fmt.Sprintf("%s %x", a, v))
	})
	return strings.Join(parts, ", ")
}

// ExpiredAt reports whether the entry no longer applies at now: from the
// day after Expires (UTC).
func (e *Entry) ExpiredAt(now time.Time) bool {
	return !e.Expires.IsZero() && !now.UTC().Before(e.Expires.AddDate(0, 0, 1))
}

// key is what makes two entries the same suppression.
func (e *Entry) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s", e.Kind, e.Path)
	e.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) { fmt.Fprintf(&b, "\x00%s=%x", a, v) })
	return b.String()
}

// File is a parsed suppressions file.
type File struct {
	Source string
	// Format is "yaml" (csv's) or "gdnsuppress" (Guardian's).
	Format  string
	Entries []*Entry
	// Unmapped says, for a Guardian file, which of its results csv
	// cannot apply and why (one line per reason, with a count).
	Unmapped []string
}

// Parse reads a suppressions file, telling the format by content: a JSON
// object is a Guardian .gdnsuppress file, anything else csv's YAML.
// source names it in messages.
func Parse(data []byte, source string) (*File, error) {
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		return ParseGuardian(data, source)
	}
	return ParseYAML(data, source)
}

// Kinds of blocked findings, and the SARIF rule id each is reported under
// (csv/report: TestSuppressionRuleIDs keeps the two in step).
// A rule id reports used before (deprecated, still read) is an alias.
var blockedKinds = []struct {
	kind  cipolicy.ReasonKind
	sarif string
	alias string
}{
	{cipolicy.KindUnsigned, "CodeSign.MissingSigningCert", ""},
	{cipolicy.KindNotAllowed, "CodeSign.NoMatchingPolicy", "CSV.NotAllowed"},
	{cipolicy.KindDenied, "CSV.Denied", ""},
	{cipolicy.KindMalformed, "CSV.Malformed", ""},
}

// RuleKind returns the kind of finding a rule names: a blocked reason kind
// ("unsigned") or its SARIF rule id ("CodeSign.MissingSigningCert").
func RuleKind(rule string) (cipolicy.ReasonKind, bool) {
	for _, k := range blockedKinds {
		if rule == string(k.kind) || rule == k.sarif || k.alias != "" && rule == k.alias {
			return k.kind, true
		}
	}
	return "", false
}

// Rules lists the rules an entry may name, for messages.
func Rules() []string {
	var out []string
	for _, k := range blockedKinds {
		out = append(out, string(k.kind), k.sarif)
	}
	return out
}

// check records what is wrong with an entry (shared by both formats).
func check(e *Entry, problem func(string, ...any)) {
	if e.Path == "" && len(e.Digests) == 0 {
		problem("names no file: give a path glob, a digest (sha256, authenticode_sha256, ...) or both")
	}
	if e.Path != "" && e.ID == "" { // a Guardian target is a literal, checked by gdnTarget
		if why := cipolicy.PathGlobProblem(e.Path); why != "" {
			problem("path %q can never match: %s", e.Path, why)
		}
	}
	if e.Rule == "" {
		problem("missing field \"rule\": name the finding suppressed (%s)", strings.Join(Rules(), ", "))
	} else if k, ok := RuleKind(e.Rule); !ok {
		problem("rule %q is not a finding csv reports (want %s)", e.Rule, strings.Join(Rules(), ", "))
	} else {
		e.Kind = k
	}
	if strings.TrimSpace(e.Justification) == "" {
		problem("missing justification: every suppression says why the finding is accepted")
	}
}

// Set is the suppressions of a run, from one or more files, judged at one
// time. Match is safe for concurrent use.
//
// A run asks it of every blocked file, so that matching does not cost
// entries times findings: entries whose path is literal (every Guardian
// entry, most written by hand) are found by path, entries with digests
// and no path by digest, and only the others are tried one by one.
type Set struct {
	entries []*Entry
	expired []bool
	uses    []atomic.Int64
	algs    cipolicy.DigestSet
	// byPath and byDigest index entries (in order) by literal path and,
	// for those without a path, by "algorithm:hex digest"; scan are the
	// rest.
	byPath   map[string][]int
	byDigest map[string][]int
	scan     []int
}

// NewSet returns the suppressions of files as a run at now applies them:
// an entry that has expired at now suppresses nothing, and is reported
// (Statuses, Expired).
func NewSet(now time.Time, files ...*File) *Set {
	s := &Set{}
	for _, f := range files {
		for _, e := range f.Entries {
			s.entries = append(s.entries, e)
			s.expired = append(s.expired, e.ExpiredAt(now))
			e.Digests.Each(func(a cipolicy.HashAlgorithm, _ []byte) { s.algs = s.algs.With(a) })
		}
	}
	s.uses = make([]atomic.Int64, len(s.entries))
	s.byPath, s.byDigest = map[string][]int{}, map[string][]int{}
	for i, e := range s.entries {
		switch lit, ok := literal(e.Path); {
		case e.Path != "" && ok:
			s.byPath[lit] = append(s.byPath[lit], i)
		case e.Path == "" && len(e.Digests) > 0:
			// Any one of its digests finds it.
			a := e.Digests.Algorithms().Algorithms()[0]
			s.byDigest[digestKey(a, e.Digests.Get(a))] = append(s.byDigest[digestKey(a, e.Digests.Get(a))], i)
		default:
			s.scan = append(s.scan, i)
		}
	}
	return s
}

// literal returns the path a glob matches when it matches one path only
// (no wildcard; escapes removed).
func literal(glob string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*', '?', '[', ']', '{', '}':
			return "", false
		case '\\':
			if i+1 == len(glob) {
				return "", false
			}
			i++
			b.WriteByte(glob[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func digestKey(a cipolicy.HashAlgorithm, v []byte) string { return string(a) + ":" + string(v) }

// Digests are the digest algorithms the entries compare: a run computes
// them for every file they apply to.
func (s *Set) Digests() cipolicy.DigestSet {
	if s == nil {
		return cipolicy.DigestSet{}
	}
	return s.algs
}

// Finding is a blocked file as Match judges it.
type Finding struct {
	// Path is relative to the validated root, slash-separated.
	Path    string
	Kind    cipolicy.ReasonKind
	Digests cipolicy.Digests
}

// Match returns the first entry, in the order given, that covers the
// finding and has not expired, or nil, and counts the use.
func (s *Set) Match(f Finding) *Entry {
	if s == nil {
		return nil
	}
	best := -1
	try := func(candidates []int) {
		for _, i := range candidates {
			if best >= 0 && i >= best {
				return // in order: the rest come later too
			}
			if !s.expired[i] && s.entries[i].covers(f) {
				best = i
				return
			}
		}
	}
	try(s.byPath[path.Clean(f.Path)])
	f.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) { try(s.byDigest[digestKey(a, v)]) })
	try(s.scan)
	if best < 0 {
		return nil
	}
	s.uses[best].Add(1)
	return s.entries[best]
}

func (e *Entry) covers(f Finding) bool {
	if e.Kind != f.Kind {
		return false
	}
	if e.Path != "" {
		// Globs are checked when the file is read.
		if ok, _ := doublestar.Match(e.Path, path.Clean(f.Path)); !ok {
			return false
		}
	}
	ok := true
	e.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) {
		if got := f.Digests.Get(a); got == nil || !bytes.Equal(got, v) {
			ok = false
		}
	})
	return ok
}

// Status is an entry at the end of a run: how many findings it
// suppressed, and whether it had expired.
type Status struct {
	Entry   *Entry
	Uses    int
	Expired bool
}

// Statuses returns every entry's status, in order.
func (s *Set) Statuses() []Status {
	if s == nil {
		return nil
	}
	out := make([]Status, len(s.entries))
	for i, e := range s.entries {
		out[i] = Status{Entry: e, Uses: int(s.uses[i].Load()), Expired: s.expired[i]}
	}
	return out
}

// Expired returns the entries that had expired (they fail the run).
func Expired(st []Status) []Status {
	return slices.DeleteFunc(slices.Clone(st), func(s Status) bool { return !s.Expired })
}

// Unused returns the entries in force that suppressed nothing.
func Unused(st []Status) []Status {
	return slices.DeleteFunc(slices.Clone(st), func(s Status) bool { return s.Expired || s.Uses > 0 })
}

// parseDigest reads a digest of algorithm a written in hex.
func parseDigest(a cipolicy.HashAlgorithm, s string) ([]byte, error) {
	v, err := hex.DecodeString(s)
	if err != nil || len(v) != a.Size() {
		return nil, fmt.Errorf("%s %q: want %d hexadecimal digits", a, s, 2*a.Size())
	}
	return v, nil
}

// parseDate reads an expiry date: YYYY-MM-DD (the entry applies through
// that day, UTC).
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %q: want a date, YYYY-MM-DD", s)
	}
	return t, nil
}

// duplicates records entries that repeat an earlier one.
func duplicates(entries []*Entry, problem func(e *Entry, format string, args ...any)) {
	seen := map[string]*Entry{}
	for _, e := range entries {
		if e.Kind == "" {
			continue
		}
		k := e.key()
		if first, dup := seen[k]; dup {
			problem(e, "repeats the suppression at %s", first.Ref())
			continue
		}
		seen[k] = e
	}
}

// LoadFiles reads and parses the suppressions files at paths (csv's YAML
// or Guardian's JSON each), capped at limits.MaxSuppressionFile bytes, and
// returns every problem of every file.
func LoadFiles(paths []string) ([]*File, error) {
	var files []*File
	var errs []error
	for _, p := range paths {
		data, err := safefile.ReadFile(p, limits.MaxSuppressionFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot read suppressions %s: %w", p, err))
			continue
		}
		f, err := Parse(data, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	return files, errors.Join(errs...)
}
