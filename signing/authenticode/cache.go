package authenticode

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"

	"github.com/codesignval/csv/signing"
)

// CertCache keeps parsed certificates across calls of Verify, keyed by the
// SHA256 of their DER: every file of a build carries the same chain, which
// is then parsed once. It also keeps the chains built from a signer through
// a set of candidates (a pure function of their fingerprints), so that the
// signature checks along a chain are made once per build, not once per
// file. It holds at most 4096 certificates of at most 64 KiB each and 4096
// chain sets (an arbitrary entry is dropped to make room; larger
// certificates are parsed every time). A nil *CertCache parses and builds
// every time; the zero value is an empty cache. Safe for concurrent use.
type CertCache struct {
	mu     sync.RWMutex
	m      map[[32]byte]cachedCert
	chains map[[32]byte]chainSet
}

type cachedCert struct {
	cert *signing.Certificate
	err  error
}

const (
	certCacheSize    = 4096
	certCacheMaxCert = 64 << 10
)

// NewCertCache returns an empty cache.
func NewCertCache() *CertCache { return &CertCache{} }

// parse returns the parsed certificate of der, from the cache if it is
// there. The certificate never aliases der.
func (c *CertCache) parse(der []byte) (*signing.Certificate, error) {
	if c == nil || len(der) > certCacheMaxCert {
		return signing.ParseCertificate(bytes.Clone(der))
	}
	key := sha256.Sum256(der)
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return e.cert, e.err
	}
	e.cert, e.err = signing.ParseCertificate(bytes.Clone(der))
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[key]; ok {
		return prev.cert, prev.err // parsed concurrently: everyone shares the first
	}
	if c.m == nil {
		c.m = make(map[[32]byte]cachedCert)
	}
	if len(c.m) >= certCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
	return e.cert, e.err
}

// chainSet is what the cache keeps of a chain search: the chains and the
// signature checks it made.
type chainSet struct {
	chains [][]*signing.Certificate
	checks int
}

// buildChains returns signing.BuildChainsCounted(leaf, candidates), from
// the cache if it is there. The chains are shared: callers must not modify
// them.
func (c *CertCache) buildChains(leaf *signing.Certificate, candidates []*signing.Certificate) ([][]*signing.Certificate, int) {
	if c == nil {
		return signing.BuildChainsCounted(leaf, candidates)
	}
	h := sha256.New()
	h.Write(leaf.SHA256[:])
	for _, x := range candidates {
		h.Write(x.SHA256[:])
	}
	var key [32]byte
	h.Sum(key[:0])
	c.mu.RLock()
	set, ok := c.chains[key]
	c.mu.RUnlock()
	if ok {
		return slices.Clone(set.chains), set.checks
	}
	set.chains, set.checks = signing.BuildChainsCounted(leaf, candidates)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.chains[key]; ok {
		return slices.Clone(prev.chains), prev.checks
	}
	if c.chains == nil {
		c.chains = make(map[[32]byte]chainSet)
	}
	if len(c.chains) >= certCacheSize {
		for k := range c.chains {
			delete(c.chains, k)
			break
		}
	}
	c.chains[key] = set
	return slices.Clone(set.chains), set.checks
}
