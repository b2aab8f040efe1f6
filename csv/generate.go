package csv

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/codesignval/csv/cipolicy"
)

// Level is what a generated rule trusts, as New-CIPolicy's -Level.
type Level string

// Levels.
const (
	// LevelHash allows each binary by its hash: the Authenticode SHA256 for
	// PE files (which survives signing), the SHA256 for ELF files.
	LevelHash Level = "hash"
)

// GenerateOptions configure GeneratePolicy.
type GenerateOptions struct {
	Options
	Level   Level
	Name    string
	ID      string
	Version string
	Mode    cipolicy.Mode
}

// Generated is a policy made from a known-good build, with the files that
// could not be covered.
type Generated struct {
	Policy *cipolicy.Policy
	// Problems lists binaries that no rule could be written for (they are
	// malformed or unreadable, so validate will block them).
	Problems []Result
	// Files is the number of binaries covered.
	Files int
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// GeneratePolicy writes a policy that allows exactly the binaries under
// roots, like Windows' New-CIPolicy -ScanPath: one rule per distinct digest,
// with a comment naming the files it came from.
func GeneratePolicy(ctx context.Context, opts GenerateOptions, roots ...string) (*Generated, error) {
	if opts.Level != LevelHash {
		return nil, fmt.Errorf("%w: unsupported level %q", ErrOptions, opts.Level)
	}
	if opts.Name == "" {
		return nil, fmt.Errorf("%w: a policy needs a name", ErrOptions)
	}
	needs := func(_ string, f cipolicy.Format) cipolicy.Needs {
		switch f {
		case cipolicy.FormatPE:
			return cipolicy.Needs{Digests: cipolicy.DigestSet(0).With(cipolicy.AuthenticodeSHA256)}
		case cipolicy.FormatELF:
			return cipolicy.Needs{Digests: cipolicy.DigestSet(0).With(cipolicy.SHA256)}
		}
		return cipolicy.Needs{}
	}
	sc, err := scan(ctx, &opts.Options, roots, needs)
	if err != nil {
		return nil, err
	}
	mode := opts.Mode
	if mode == "" {
		mode = cipolicy.Enforce
	}
	p := &cipolicy.Policy{ID: opts.ID, Name: opts.Name, Version: opts.Version, Mode: mode, Type: cipolicy.Base, Format: "yaml"}
	if p.ID == "" {
		p.ID = p.Name
	}
	g := &Generated{Policy: p}
	type group struct {
		rule  int
		files []string
	}
	byHash := map[string]*group{}
	var order []*group
	ids := map[string]bool{}
	for i := range sc.entries {
		e := &sc.entries[i]
		in := sc.inspections[i]
		if e.skipped != nil || (in != nil && in.Format == FormatOther && in.Err == nil) {
			continue
		}
		display := displayPath(roots[e.root], e.rel, e.fileRoot)
		if e.problem != nil || in.Err != nil {
			r := Result{Root: roots[e.root], Path: e.rel, Format: e.format, Err: e.problem, fileRoot: e.fileRoot}
			if in != nil {
				r.Format, r.Err = in.Format, in.Err
			}
			g.Problems = append(g.Problems, r)
			continue
		}
		g.Files++
		alg := cipolicy.SHA256
		if in.Format == FormatPE {
			alg = cipolicy.AuthenticodeSHA256
		}
		v := in.Digests.Get(alg)
		key := string(alg) + string(v)
		if grp, ok := byHash[key]; ok {
			grp.files = append(grp.files, display)
			continue
		}
		id := uniqueID(ids, strings.Trim(unsafeID.ReplaceAllString(e.rel, "-"), "-"))
		rule := cipolicy.Rule{ID: id, Action: cipolicy.Allow, Hash: &cipolicy.HashMatch{Algorithm: alg, Value: v}}
		if in.Format == FormatELF {
			// Without the scope, every PE would also need a flat SHA256.
			rule.Formats = []cipolicy.Format{cipolicy.FormatELF}
		}
		p.Rules = append(p.Rules, rule)
		grp := &group{rule: len(p.Rules) - 1, files: []string{display}}
		byHash[key] = grp
		order = append(order, grp)
	}
	const maxListed = 10
	for _, grp := range order {
		var lines []string
		for i, f := range grp.files {
			if i == maxListed {
				lines = append(lines, fmt.Sprintf("... and %d more", len(grp.files)-maxListed))
				break
			}
			lines = append(lines, quoteIfOdd(f))
		}
		p.Rules[grp.rule].Comment = strings.Join(lines, "\n")
	}
	return g, nil
}

func uniqueID(seen map[string]bool, base string) string {
	if base == "" {
		base = "file"
	}
	if len(base) > 0 && !isAlnum(base[0]) {
		base = "f" + base
	}
	id := base
	for n := 2; seen[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	seen[id] = true
	return id
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// quoteIfOdd quotes a file name that holds characters a comment line cannot
// show plainly.
func quoteIfOdd(s string) string {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}
