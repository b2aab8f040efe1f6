package csv

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// Level is what a generated rule trusts, as New-CIPolicy's -Level.
type Level string

// Levels.
const (
	// LevelHash allows each binary by its hash: the Authenticode SHA256 for
	// PE files (which survives signing), the SHA256 for ELF files.
	LevelHash Level = "hash"
	// LevelLeaf trusts each signing (leaf) certificate.
	LevelLeaf Level = "leaf"
	// LevelPCA trusts the highest certificate below the root of each
	// signature's chain (the top of the chain if it does not reach a root),
	// as WDAC's PcaCertificate level.
	LevelPCA Level = "pca"
	// LevelRoot trusts the root of each signature's chain.
	LevelRoot Level = "root"
	// LevelPublisher trusts the PCA certificate together with the signing
	// certificate's common name, as WDAC's Publisher level.
	LevelPublisher Level = "publisher"
)

// Levels lists the levels in a fixed order.
var Levels = []Level{LevelHash, LevelLeaf, LevelPCA, LevelRoot, LevelPublisher}

// GenerateOptions configure GeneratePolicy.
type GenerateOptions struct {
	Options
	// Level is what rules trust. Fallback, tried in order, is used for the
	// binaries Level cannot cover (unsigned files, signatures that do not
	// verify, chains that do not reach a root).
	Level    Level
	Fallback []Level
	Name     string
	ID       string
	Version  string
	Mode     cipolicy.Mode
	// Certificates complete signature chains (intermediates and roots that
	// the signatures do not carry).
	Certificates []*signing.Certificate
}

// Generated is a policy made from a known-good build, with the files that
// could not be covered.
type Generated struct {
	Policy *cipolicy.Policy
	// Problems lists binaries that no rule could be written for: malformed
	// or unreadable ones, and those no level could cover (validate will
	// block them). Err says why.
	Problems []Result
	// Files is the number of binaries covered.
	Files int
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// GeneratePolicy writes a policy that allows exactly the binaries under
// roots, like Windows' New-CIPolicy -ScanPath -Level -Fallback: one rule per
// distinct hash or signer, with a comment naming the files it came from.
func GeneratePolicy(ctx context.Context, opts GenerateOptions, roots ...string) (*Generated, error) {
	levels := append([]Level{opts.Level}, opts.Fallback...)
	for _, l := range levels {
		if !slices.Contains(Levels, l) {
			return nil, fmt.Errorf("%w: unsupported level %q", ErrOptions, l)
		}
	}
	if opts.Name == "" {
		return nil, fmt.Errorf("%w: a policy needs a name", ErrOptions)
	}
	wantHash, wantSigner := false, false
	for _, l := range levels {
		if l == LevelHash {
			wantHash = true
		} else {
			wantSigner = true
		}
	}
	needs := func(_ string, f cipolicy.Format) cipolicy.Needs {
		var n cipolicy.Needs
		if f == FormatOther {
			return n
		}
		if wantHash {
			n.Digests = cipolicy.NewDigestSet(f.RuleDigest())
		}
		n.Signatures = wantSigner
		return n
	}
	o := opts.Options
	o.Certificates = append(slices.Clone(o.Certificates), opts.Certificates...)
	w, err := startWalk(ctx, &o, roots)
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
	byKey := map[string]*group{}
	var order []*group
	ids := map[string]bool{}
	err = inspectInOrder(ctx, &o, w, needs, func(e *entry, in *Inspection) error {
		if e.skipped != nil || (in != nil && in.Format == FormatOther && in.Err == nil) {
			return nil
		}
		if in != nil && in.Format == cipolicy.FormatCatalog {
			return nil // hosts do not run a catalog: it admits its members (csv/catalogs.go)
		}
		display := displayPath(roots[e.root], e.rel, e.fileRoot)
		res := Result{Root: roots[e.root], Path: e.rel, Format: e.format, Err: e.problem, fileRoot: e.fileRoot}
		if in != nil {
			res.Format, res.Err = in.Format, in.Err
		}
		if res.Err != nil {
			g.Problems = append(g.Problems, res)
			return nil
		}
		var rule *cipolicy.Rule
		var key string
		var why []string
		var err error
		for _, l := range levels {
			rule, key, err = ruleFor(l, in)
			if err == nil {
				break
			}
			why = append(why, fmt.Sprintf("level %s: %v", l, err))
		}
		if rule == nil {
			res.Err = fmt.Errorf("no rule written: %s", strings.Join(why, "; "))
			g.Problems = append(g.Problems, res)
			return nil
		}
		g.Files++
		if grp, ok := byKey[key]; ok {
			grp.files = append(grp.files, display)
			return nil
		}
		base := e.rel
		if rule.Signer != nil {
			base = rule.Signer.Cert.Certificate.CommonName()
			if rule.Signer.Publisher != "" {
				base += "-" + rule.Signer.Publisher
			}
		}
		rule.ID = uniqueID(ids, strings.Trim(unsafeID.ReplaceAllString(base, "-"), "-"))
		p.Rules = append(p.Rules, *rule)
		grp := &group{rule: len(p.Rules) - 1, files: []string{display}}
		byKey[key] = grp
		order = append(order, grp)
		return nil
	})
	if err != nil {
		return nil, err
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

// ruleFor makes the allow rule of one level for an inspected file, and the
// key under which files share it.
func ruleFor(l Level, in *Inspection) (*cipolicy.Rule, string, error) {
	if l == LevelHash {
		alg := in.Format.RuleDigest()
		v := in.Digests.Get(alg)
		r := &cipolicy.Rule{Action: cipolicy.Allow, Hash: &cipolicy.HashMatch{Algorithm: alg, Value: v}}
		if !alg.Restricted() {
			// Without the scope, every file of every other format would
			// also need this digest (a flat SHA256 of every PE).
			r.Formats = []cipolicy.Format{in.Format}
		}
		return r, string(alg) + string(v), nil
	}
	var chain []*signing.Certificate
	for _, s := range in.Signatures {
		if s.Verified() && len(s.Chains) > 0 {
			chain = s.Chains[0]
			break
		}
	}
	if chain == nil {
		if len(in.Signatures) == 0 {
			return nil, "", fmt.Errorf("not signed")
		}
		return nil, "", fmt.Errorf("no signature verifies")
	}
	top := chain[len(chain)-1]
	rooted := len(chain) > 1 && top.SelfSigned()
	m := &cipolicy.SignerMatch{Level: cipolicy.LevelAny}
	var c *signing.Certificate
	switch l {
	case LevelLeaf:
		c, m.Level = chain[0], cipolicy.LevelLeaf
	case LevelRoot:
		if !rooted {
			return nil, "", fmt.Errorf("the chain from %q does not reach a root certificate (supply it with --certs)", chain[0].CommonName())
		}
		c, m.Level = top, cipolicy.LevelRoot
	case LevelPCA, LevelPublisher:
		c = top
		if rooted {
			c = chain[len(chain)-2]
		}
		if l == LevelPublisher {
			m.Publisher = chain[0].CommonName()
		}
	}
	m.Cert = cipolicy.CertRef{Certificate: c, TBSHash: c.TBSHash}
	return &cipolicy.Rule{Action: cipolicy.Allow, Signer: m}, string(l) + string(c.TBSHash) + "\x00" + m.Publisher, nil
}

func uniqueID(seen map[string]bool, base string) string {
	if base == "" {
		base = "file"
	}
	if !isAlnum(base[0]) {
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
// show plainly: a newline would end the comment and write YAML of its own,
// and what internal/textsafe escapes (control and format characters, CI
// log commands) would reach whoever prints the policy.
func quoteIfOdd(s string) string {
	if textsafe.Escape(s) != s {
		return textsafe.Quote(s)
	}
	return s
}
