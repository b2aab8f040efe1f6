package authenticode

import "github.com/codesignval/csv/signing"

// CertCache is the run's certificate and chain cache ([signing.CertCache]),
// shared with the other verifiers of a run.
type CertCache = signing.CertCache

// CacheStats counts the work a CertCache did ([signing.CacheStats]).
type CacheStats = signing.CacheStats

// NewCertCache returns an empty cache.
func NewCertCache() *CertCache { return signing.NewCertCache() }
