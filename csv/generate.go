package csv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format/elf"
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
	// IPE writes the rules of a Linux IPE policy (cipolicy.MarshalIPE):
	// at the hash level, the only one it takes, one rule per file on its
	// fs-verity digest, or for a dm-verity image on its root hash.
	IPE bool
}

// ipeDigest is the digest an IPE rule written for files of format f
// compares.
func ipeDigest(f cipolicy.Format) cipolicy.HashAlgorithm {
	if f == cipolicy.FormatImage {
		return cipolicy.DMVeritySHA256
	}
	return cipolicy.FSVeritySHA256
}

// ipeModule reports whether an IPE policy judges the file at rel as a
// kernel module (op=KMODULE), as cipolicy judges it: an ELF file that is
// relocatable (ET_REL), named *.ko, or carries a module signature.
func ipeModule(rel string, in *Inspection) bool {
	if in.Format != cipolicy.FormatELF {
		return false
	}
	ei, ok := in.Info.(*elf.Info)
	return ok && ei.Type == 1 || strings.HasSuffix(rel, ".ko") || in.Signed()
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
	if opts.IPE && (opts.Level != LevelHash || len(opts.Fallback) > 0) {
		return nil, fmt.Errorf("%w: an IPE policy is written at the hash level alone (IPE allows by fs-verity digest or dm-verity root hash, not by signer)", ErrOptions)
	}
	ruleDigests := func(f cipolicy.Format) []cipolicy.HashAlgorithm {
		if opts.IPE {
			return []cipolicy.HashAlgorithm{ipeDigest(f)}
		}
		return f.RuleDigests()
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
			n.Digests = cipolicy.NewDigestSet(ruleDigests(f)...)
		}
		n.Signatures = wantSigner
		return n
	}
	o := opts.Options
	o.Certificates = append(slices.Clone(o.Certificates), opts.Certificates...)
	var excluded atomic.Int64
	o.openContainers(&excluded)
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
	if opts.IPE {
		p.Format = "ipe"
	}
	g := &Generated{Policy: p}
	type group struct {
		rule  int // the first of the rules written for the files
		files []string
	}
	byKey := map[string]*group{}
	var order []*group
	ids := map[string]bool{}
	err = inspectInOrder(ctx, &o, w, needs, nil, func(e *entry, in *Inspection) error {
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
		var rules []*cipolicy.Rule
		var key string
		var why []string
		var err error
		for _, l := range levels {
			rules, key, err = rulesFor(l, in, ruleDigests(in.Format))
			if err == nil {
				break
			}
			why = append(why, fmt.Sprintf("level %s: %v", l, err))
		}
		if rules == nil {
			res.Err = errors.New(strings.Join(why, "; "))
			g.Problems = append(g.Problems, res)
			return nil
		}
		if opts.IPE && ipeModule(e.rel, in) {
			// The kernel loads it (insmod), under op=KMODULE: its rule
			// is of the kernel scenario (cipolicy.MarshalIPE).
			for _, r := range rules {
				r.Scenarios = []cipolicy.Scenario{cipolicy.ScenarioKernel}
			}
			key += "\x00" + string(cipolicy.IPEKModule)
		}
		g.Files++
		if grp, ok := byKey[key]; ok {
			grp.files = append(grp.files, display)
			return nil
		}
		base := e.rel
		if rules[0].Signer != nil {
			base = rules[0].Signer.Cert.Certificate.CommonName()
			if rules[0].Signer.Publisher != "" {
				base += "-" + rules[0].Signer.Publisher
			}
		}
		base = strings.Trim(unsafeID.ReplaceAllString(base, "-"), "-")
		grp := &group{rule: len(p.Rules), files: []string{display}}
		for i, rule := range rules {
			if rule.Hash != nil {
				// As New-CIPolicy names its hash rules: "<file> Hash
				// Sha256", "... Hash Page Sha1".
				rule.Description = filepath.Base(display) + " " + hashRuleName(rule.Hash.Algorithm)
			}
			id := base
			if i > 0 {
				id += "-" + strings.ToLower(strings.ReplaceAll(hashRuleName(rule.Hash.Algorithm), " ", "-"))
			}
			rule.ID = uniqueID(ids, id)
			p.Rules = append(p.Rules, *rule)
		}
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

// hashRuleName names a hash rule's algorithm as New-CIPolicy's
// FriendlyNames do ("Hash Sha256", "Hash Page Sha1"); other digests by
// their label.
func hashRuleName(a cipolicy.HashAlgorithm) string {
	switch a {
	case cipolicy.AuthenticodeSHA256:
		return "Hash Sha256"
	case cipolicy.AuthenticodeSHA1:
		return "Hash Sha1"
	case cipolicy.PageSHA256:
		return "Hash Page Sha256"
	case cipolicy.PageSHA1:
		return "Hash Page Sha1"
	}
	return "Hash " + a.Label()
}

// rulesFor makes the allow rules of one level for an inspected file (at
// the hash level, one per digest of digests: the format's RuleDigests, for
// PE the four New-CIPolicy writes, or an IPE policy's one), and the key
// under which files share them.
func rulesFor(l Level, in *Inspection, digests []cipolicy.HashAlgorithm) ([]*cipolicy.Rule, string, error) {
	if l == LevelHash {
		var rules []*cipolicy.Rule
		var key string
		for _, alg := range digests {
			v := in.Digests.Get(alg)
			if v == nil {
				return nil, "", fmt.Errorf("no %s digest", alg.Label())
			}
			r := &cipolicy.Rule{Action: cipolicy.Allow, Hash: &cipolicy.HashMatch{Algorithm: alg, Value: v}}
			if !alg.Restricted() {
				// Without the scope, every file of every other format
				// would also need this digest (a flat SHA256 of every PE).
				r.Formats = []cipolicy.Format{in.Format}
			}
			rules = append(rules, r)
			key += string(alg) + string(v) + "\x00"
		}
		return rules, key, nil
	}
	r, key, err := ruleFor(l, in)
	if err != nil {
		return nil, "", err
	}
	return []*cipolicy.Rule{r}, key, nil
}

// ruleFor makes the signer rule of one level for an inspected file, and
// the key under which files share it.
func ruleFor(l Level, in *Inspection) (*cipolicy.Rule, string, error) {
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
		var whys []string
		for i, s := range in.Signatures {
			if s.Problem != nil {
				whys = append(whys, fmt.Sprintf("signature %d: %v%s", i, s.Problem, cipolicy.SignerNotFoundHint(s.Problem)))
			}
		}
		if len(whys) == 0 {
			return nil, "", fmt.Errorf("no signature verifies")
		}
		return nil, "", fmt.Errorf("no signature verifies: %s", strings.Join(whys, "; "))
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
