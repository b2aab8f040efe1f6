package signing

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/codesignval/csv/internal/limits"
)

// CertCache keeps parsed certificates across the verifications of a run
// (Authenticode's, modsig's, IMA's, fs-verity's and dm-verity's), keyed by
// the SHA256 of their DER: every file of a build carries the same chain,
// which is then parsed once. It also keeps the chains built from a signer through
// a set of candidates, so that the signature checks along a chain are made
// once per build, not once per file.
//
// A chain search is keyed by exactly what decides its outcome: the SHA256
// of the signer's DER, then of each candidate's DER in the order given
// (BuildChains reads nothing else: no name, no time, no option), so a
// certificate that differs in one byte is another key and is searched
// anew; what a search found (or did not: an untrusted or incomplete chain)
// is only ever returned for the same bytes. The signature over each file's
// digest, and a timestamp's over the signature, are not cached: the
// verifiers check them for every file.
//
// Each entry is computed once, however many files ask for it at the same
// time (the others wait for it). The cache holds at most
// limits.CertCacheEntries certificates of at most limits.CertCacheMaxCert
// bytes each and as many chain searches (an arbitrary entry is dropped to
// make room; larger certificates are parsed every time). A nil *CertCache
// parses and builds every time; the zero value is an empty cache. Safe for
// concurrent use.
type CertCache struct {
	mu     sync.Mutex
	m      map[[32]byte]*certCell
	chains map[[32]byte]*chainCell

	parsed, built atomic.Int64 // work done (not answered from the cache)
}

type certCell struct {
	once  sync.Once
	cert  *Certificate
	err   error
	panic any // what parsing panicked with, raised again for every caller
}

// chainCell is what the cache keeps of a chain search: the chains and the
// signature checks it made.
type chainCell struct {
	once   sync.Once
	chains [][]*Certificate
	checks int
	panic  any
}

// NewCertCache returns an empty cache.
func NewCertCache() *CertCache { return &CertCache{} }

// CacheStats counts the work a CertCache did rather than answered from
// what it keeps.
type CacheStats struct {
	// CertsParsed counts certificates parsed, ChainsBuilt chain searches
	// made (each of which checks the signatures along its chains).
	CertsParsed, ChainsBuilt int64
}

// Stats returns the work done so far (zero for a nil cache).
func (c *CertCache) Stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	return CacheStats{CertsParsed: c.parsed.Load(), ChainsBuilt: c.built.Load()}
}

// cell returns m's entry for key, making it (and room for it) if needed.
func cell[T any](m *map[[32]byte]*T, key [32]byte) *T {
	if e, ok := (*m)[key]; ok {
		return e
	}
	if *m == nil {
		*m = make(map[[32]byte]*T)
	}
	if len(*m) >= limits.CertCacheEntries {
		for k := range *m {
			delete(*m, k) // whoever holds it keeps using it
			break
		}
	}
	e := new(T)
	(*m)[key] = e
	return e
}

// Parse returns the parsed certificate of der, from the cache if it is
// there. The certificate never aliases der; it is shared: callers must not
// modify it.
func (c *CertCache) Parse(der []byte) (*Certificate, error) {
	if c == nil || len(der) > limits.CertCacheMaxCert {
		if c != nil {
			c.parsed.Add(1)
		}
		return ParseCertificate(bytes.Clone(der))
	}
	key := sha256.Sum256(der)
	c.mu.Lock()
	e := cell(&c.m, key)
	c.mu.Unlock()
	e.once.Do(func() {
		defer func() { e.panic = recover() }()
		c.parsed.Add(1)
		e.cert, e.err = ParseCertificate(bytes.Clone(der))
	})
	if e.panic != nil {
		// As without the cache: the caller's recover makes it a finding
		// of this file (and of every file that carries the certificate).
		panic(e.panic)
	}
	return e.cert, e.err
}

// chainKey is the key of a chain search: the fingerprints of the leaf and
// of the candidates, in order (fixed-size, so the concatenation is
// unambiguous).
func chainKey(leaf *Certificate, candidates []*Certificate) [32]byte {
	h := sha256.New()
	h.Write(leaf.SHA256[:])
	for _, x := range candidates {
		h.Write(x.SHA256[:])
	}
	var key [32]byte
	h.Sum(key[:0])
	return key
}

// BuildChainsCounted returns [BuildChainsCounted](leaf, candidates),
// from the cache if it is there (the count is then the checks the search
// made when it was made). The certificates in the chains are shared:
// callers must not modify them.
func (c *CertCache) BuildChainsCounted(leaf *Certificate, candidates []*Certificate) ([][]*Certificate, int) {
	if c == nil {
		return BuildChainsCounted(leaf, candidates)
	}
	key := chainKey(leaf, candidates)
	c.mu.Lock()
	e := cell(&c.chains, key)
	c.mu.Unlock()
	e.once.Do(func() {
		defer func() { e.panic = recover() }()
		c.built.Add(1)
		e.chains, e.checks = BuildChainsCounted(leaf, candidates)
	})
	if e.panic != nil {
		panic(e.panic)
	}
	return slices.Clone(e.chains), e.checks
}

// BuildChains returns [BuildChains](leaf, candidates), from the cache if it
// is there (see BuildChainsCounted).
func (c *CertCache) BuildChains(leaf *Certificate, candidates []*Certificate) [][]*Certificate {
	chains, _ := c.BuildChainsCounted(leaf, candidates)
	return chains
}
