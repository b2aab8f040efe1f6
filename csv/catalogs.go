package csv

import (
	"context"
	"crypto"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	fcat "github.com/codesignval/csv/csv/format/catalog"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authcat "github.com/codesignval/csv/signing/authenticode/catalog"
	"github.com/codesignval/csv/signing/cms"
)

// Security catalogs in validation: Windows counts a file as signed by a
// catalog's signer when the file's hash is a member of a catalog whose
// signature verifies. A run indexes its catalogs once, before judging: the
// files given with Options.Catalogs and the *.cat files under the roots,
// found by a listing-only walk (the same discovery as the run's, without
// the shard, since a catalog admits files in every shard) and inspected
// then; the run's main pass takes those inspections instead of reading the
// catalogs again, so judging stays one read per file. A file whose
// Authenticode SHA256 or SHA1 (PE) or SHA256 (other judged formats) is a
// member of a verified catalog is judged with the catalog's verified
// signatures (its own and those nested in it) added to its own, for signer
// rules; deny rules still win, matching any of them, since
// the policy decides as for any signature. The catalog files themselves are
// not files a host runs: they are reported with their signer and member
// count, allowed when their signature verifies and blocked when they are
// malformed or it does not.

// catalogIndex is a run's verified catalogs.
type catalogIndex struct {
	cats []indexedCatalog
	// byHash are the catalogs (indexes in cats, ascending, each once) a
	// member hash is in: a file's lookup costs the same whatever the
	// number of catalogs.
	byHash map[memberKey][]int
	// need are the digests a lookup needs, by whether the file is a PE.
	needPE, needOther cipolicy.DigestSet

	mu  sync.Mutex
	pre map[string]*Inspection // the tree's catalogs, by the path opened
}

// memberKey is a member's hash and the kind of digest it is (memberKind).
type memberKey struct {
	h      crypto.Hash
	kind   memberKind
	digest string
}

// memberKind is the SIP a member's data type names: which of a file's
// digests it can admit.
type memberKind uint8

const (
	memberFlat memberKind = iota // any other data type (SPC_CAB_DATA_OBJID): the flat hash
	memberPE                     // SPC_PE_IMAGE_DATAOBJ: a PE image hash
	memberSIP                    // SPC_SIPINFO_OBJID: a script's SIP hash
)

func kindOf(dataType cms.OID) memberKind {
	switch {
	case dataType.Equal(authcat.OIDSpcPEImageData):
		return memberPE
	case dataType.Equal(authcat.OIDSpcSIPInfo):
		return memberSIP
	}
	return memberFlat
}

type indexedCatalog struct {
	name string // as the report names it
	v    *authcat.Verified
}

// buildCatalogs indexes the catalogs of a run (see above). A catalog given
// in opts.Catalogs that cannot be read, is malformed, does not verify or
// that the policy denies fails the run: the operator named it to admit
// files. One under the roots that fails is a finding of the run (its
// result, blocked) and admits nothing. denied judges a verified catalog
// with the policy (Validator.catalogDenied): a deny rule that matches it
// (its SHA256, its signer) takes back what it would admit.
func buildCatalogs(ctx context.Context, opts *Options, roots []string, needs func(rel string, f cipolicy.Format) cipolicy.Needs,
	denied func(cipolicy.Subject) (cipolicy.Decision, bool)) (*catalogIndex, error) {
	subject := func(rel string, in *Inspection) cipolicy.Subject {
		return cipolicy.Subject{Path: rel, Format: in.Format, Digests: in.Digests, Signed: in.Signed(),
			Signatures: in.Signatures, Attributes: in.Attributes}
	}
	x := &catalogIndex{pre: map[string]*Inspection{}, byHash: map[memberKey][]int{}}
	var buf []byte // allocated when there is a catalog to read
	cache := authenticode.NewCertCache()
	read := func(path, rel string, follow bool) *Inspection {
		if buf == nil {
			buf = make([]byte, limits.ReadBuffer)
		}
		cfg := &inspectConfig{needs: func(f cipolicy.Format) cipolicy.Needs { return needs(rel, f) },
			opts: format.InspectOptions{Certificates: opts.Certificates, Cache: cache}, follow: follow}
		return inspect(ctx, path, buf, cfg)
	}
	given := map[string]bool{} // the --catalog files, resolved: indexed once
	for _, path := range opts.Catalogs {
		in := read(path, path, true)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if in.Err != nil {
			return nil, fmt.Errorf("%w: catalog %s: %w", ErrOptions, path, in.Err)
		}
		info, ok := in.Info.(*fcat.Info)
		if !ok || in.Format != cipolicy.FormatCatalog {
			return nil, fmt.Errorf("%w: catalog %s: not a security catalog", ErrOptions, path)
		}
		if info.Catalog() == nil {
			return nil, fmt.Errorf("%w: catalog %s admits nothing: %w", ErrOptions, path, info.Problem())
		}
		if d, ok := denied(subject(filepath.ToSlash(path), in)); ok {
			return nil, fmt.Errorf("%w: catalog %s admits nothing: %s", ErrOptions, path, d.Reason)
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			if abs, err := filepath.Abs(real); err == nil {
				if given[abs] {
					continue // given twice
				}
				given[abs] = true
			}
		}
		x.add(path, info.Catalog())
	}
	// The tree's catalogs: a listing-only walk, which keeps only them.
	w, err := newWalker(ctx, roots, opts.Include, opts.Exclude, opts.FollowSymlinks, opts.scopes)
	if err != nil {
		return nil, err
	}
	var found []entry
	err = w.run(func(e *entry) error {
		if e.isTodo() && strings.EqualFold(pathExt(e.rel), ".cat") {
			found = append(found, *e)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, &InterruptedError{Err: ctx.Err(), Walking: true}
		}
		return nil, err
	}
	for _, e := range found {
		in := read(e.abs, e.rel, e.follow)
		if err := ctx.Err(); err != nil {
			return nil, &InterruptedError{Err: err}
		}
		x.pre[e.abs] = in
		if info, ok := in.Info.(*fcat.Info); ok && in.Err == nil && info.Catalog() != nil && !given[e.real] {
			if _, deny := denied(subject(e.rel, in)); !deny {
				x.add(displayPath(roots[e.root], e.rel, e.fileRoot), info.Catalog())
			}
		}
	}
	return x, nil
}

// hashOf is the hash function of a lookup digest.
func hashOf(a cipolicy.HashAlgorithm) crypto.Hash {
	if a == cipolicy.AuthenticodeSHA1 {
		return crypto.SHA1
	}
	return crypto.SHA256
}

func pathExt(rel string) string {
	if i := strings.LastIndexByte(rel, '.'); i >= 0 && !strings.Contains(rel[i:], "/") {
		return rel[i:]
	}
	return ""
}

func (x *catalogIndex) add(name string, v *authcat.Verified) {
	n := len(x.cats)
	x.cats = append(x.cats, indexedCatalog{name, v})
	for m := range v.Members() {
		k := memberKey{m.Algorithm, kindOf(m.DataType), string(m.Digest)}
		if l := x.byHash[k]; len(l) == 0 || l[len(l)-1] != n {
			x.byHash[k] = append(l, n)
		}
	}
	for _, h := range v.Algorithms() {
		switch h {
		case crypto.SHA256:
			x.needPE = x.needPE.With(cipolicy.AuthenticodeSHA256)
			x.needOther = x.needOther.With(cipolicy.SHA256)
		case crypto.SHA1:
			// A v1 catalog's flat members need a flat SHA1, which csv
			// does not compute: they admit nothing here.
			x.needPE = x.needPE.With(cipolicy.AuthenticodeSHA1)
		}
	}
}

// take returns the inspection made while indexing of the file at abs (and
// forgets it), nil if there is none. Safe for concurrent use.
func (x *catalogIndex) take(abs string) *Inspection {
	if x == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	in := x.pre[abs]
	delete(x.pre, abs)
	return in
}

// needs adds to needs the digests a catalog lookup compares.
func (x *catalogIndex) needs(needs func(rel string, f cipolicy.Format) cipolicy.Needs) func(rel string, f cipolicy.Format) cipolicy.Needs {
	if x == nil || len(x.cats) == 0 {
		return needs
	}
	return func(rel string, f cipolicy.Format) cipolicy.Needs {
		n := needs(rel, f)
		switch f {
		case FormatOther, cipolicy.FormatCatalog:
			return n
		case FormatPE, cipolicy.FormatPowerShell:
			n.Digests = n.Digests.Union(x.needPE)
		default:
			n.Digests = n.Digests.Union(x.needOther)
		}
		n.Later.Digests = n.Later.Digests.Missing(n.Digests) // computed first for the lookup
		return n
	}
}

// lookup is the digests a file of format f is looked up by in the
// catalogs (what needs adds), for a facts record.
func (x *catalogIndex) lookup(f cipolicy.Format) cipolicy.DigestSet {
	if x == nil || len(x.cats) == 0 {
		return cipolicy.DigestSet{}
	}
	return x.needs(func(string, cipolicy.Format) cipolicy.Needs { return cipolicy.Needs{} })("", f).Digests
}

// admit adds to sub the verified signatures of the catalogs r is a member
// of (each catalog's own and those nested in it: deny rules match every
// one), and returns the catalog of each, in the same order (the order the
// catalogs were indexed in). What binds the file to such a signature is
// the member's hash as well as the list's digest, so the signature added
// is over the member's hash algorithm, the list's among its signer
// digests (memberSignature): a policy's digest algorithms refuse a file
// a SHA1 member lists as they refuse a PE file signed over a SHA1 hash.
func (x *catalogIndex) admit(r *Result, sub *cipolicy.Subject) []string {
	if x == nil || len(x.cats) == 0 || r.Err != nil {
		return nil
	}
	type hit struct {
		n int
		h crypto.Hash
	}
	var in []hit
	lookup := func(a cipolicy.HashAlgorithm, kind memberKind) {
		if d := r.Digests.Get(a); d != nil {
			for _, n := range x.byHash[memberKey{hashOf(a), kind, string(d)}] {
				in = append(in, hit{n, hashOf(a)})
			}
		}
	}
	// A member counts for a file only when it names the data type the
	// file's own SIP signs: a PE file by its image hash, a PowerShell
	// script by its SIP hash, any other by its flat hash. SHA256 first: a
	// catalog that lists the file by both hashes binds it by the stronger.
	switch r.Format {
	case FormatPE:
		lookup(cipolicy.AuthenticodeSHA256, memberPE)
		lookup(cipolicy.AuthenticodeSHA1, memberPE)
	case cipolicy.FormatPowerShell:
		lookup(cipolicy.AuthenticodeSHA256, memberSIP)
		lookup(cipolicy.AuthenticodeSHA1, memberSIP)
	default:
		lookup(cipolicy.SHA256, memberFlat)
	}
	if len(in) == 0 {
		return nil
	}
	slices.SortStableFunc(in, func(a, b hit) int { return a.n - b.n })
	in = slices.CompactFunc(in, func(a, b hit) bool { return a.n == b.n })
	var names []string
	var sigs []*signing.Signature
	for _, c := range in {
		for _, sig := range x.cats[c.n].v.Signatures() {
			names, sigs = append(names, x.cats[c.n].name), append(sigs, memberSignature(sig, c.h))
		}
	}
	sub.Signatures = append(slices.Clip(sub.Signatures), sigs...)
	return names
}

// memberSignature is a catalog's signature as it signs a member listed by
// a hash with h: over that hash, the list's digest among its signer
// digests.
func memberSignature(sig *signing.Signature, h crypto.Hash) *signing.Signature {
	if sig.DigestAlgorithm == h {
		return sig
	}
	c := *sig
	c.DigestAlgorithm = h
	c.SignerDigests = append(slices.Clip(sig.SignerDigests), sig.DigestAlgorithm)
	return &c
}

// admitted names, in r's decision, the catalog whose signature the deciding
// signer rule matched: own is how many signatures the file carries itself,
// names the catalogs of the signatures admit added after them.
func admitted(r *Result, own int, names []string) {
	if i := r.Decision.Signature - own; r.Decision.Signature >= 0 && i >= 0 && i < len(names) {
		r.Catalog = names[i]
		r.Decision.Reason += " (catalog-signed: a member of " + names[i] + ")"
	}
}

// catalogDenied judges a verified catalog with the policy: whether a deny
// rule matches it (its file's SHA256, its signer, within the rule's
// scope), or the policy cannot judge it. Such a catalog admits nothing.
func (v *Validator) catalogDenied(sub cipolicy.Subject) (cipolicy.Decision, bool) {
	sub.Scenario = v.opts.Scenario
	d := v.set.Evaluate(sub)
	return d, d.Verdict == cipolicy.Blocked && (d.Kind == cipolicy.KindDenied || d.Kind == cipolicy.KindMalformed)
}

// catalogDecision judges a catalog file of the tree: not a file a host
// runs, it is allowed when its signature verifies and no deny rule matches
// it, and blocked, saying why, when it does not or one does (it then
// admits nothing); a malformed catalog is judged as any malformed file.
func (v *Validator) catalogDecision(r *Result) (cipolicy.Decision, bool) {
	info, ok := r.Info.(*fcat.Info)
	if r.Format != cipolicy.FormatCatalog || r.Err != nil || !ok {
		return cipolicy.Decision{}, false
	}
	return v.judgeCatalog(r, info.Catalog() != nil, info.Signed, info.MemberCount, info.Problem()), true
}

// judgeCatalog is catalogDecision, from a catalog's state: whether its
// signature verified, whether it is signed, its member count and why it
// did not verify (recorded facts carry these too).
func (v *Validator) judgeCatalog(r *Result, verified, signed bool, members int, problem error) cipolicy.Decision {
	d := cipolicy.Decision{Enforced: v.set.Mode() != cipolicy.Audit, Signature: -1}
	switch {
	case verified:
		if d, deny := v.catalogDenied(cipolicy.Subject{Path: r.Path, Format: r.Format, Digests: r.Digests, Signed: r.Signed,
			Signatures: r.Signatures, Attributes: r.Attributes}); deny {
			d.Reason = "a security catalog the policy denies: it admits nothing: " + d.Reason
			return d
		}
		d.Verdict, d.Kind, d.Signature = cipolicy.Allowed, cipolicy.KindCatalog, 0
		d.Reason = fmt.Sprintf("a security catalog of %s whose signature verifies (it admits its members; hosts do not run it)", textsafe.Plural(members, "member", "members"))
	case !signed:
		d.Verdict, d.Kind = cipolicy.Blocked, cipolicy.KindUnsigned
		d.Reason = "an unsigned security catalog: it admits nothing"
	default:
		d.Verdict, d.Kind = cipolicy.Blocked, cipolicy.KindNotAllowed
		d.Reason = fmt.Sprintf("a security catalog whose signature does not verify: it admits nothing: %v", problem)
	}
	return d
}
