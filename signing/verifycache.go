package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"sync/atomic"
)

// The signature verifications a process has made, by the exact bytes they
// judged: a build ships the same signed binary in many places (a DLL in
// every plugin directory, a driver in every flavour of an image), and each
// copy carries the same signature over the same digest. Verifying it again
// is the same computation with the same answer: the second copy is
// answered from here. Go's RSA-3072 verification costs 0.2 to 0.35 ms
// here, which over the medium corpus's signed files (120 files, 12
// distinct) was a twentieth of the run (docs/performance.md).
//
// The key is SHA-256 over everything the verification reads, each part
// length-prefixed: the algorithm kind, the hash, the public key's type and
// bytes, the digest and the signature; checkDigest checks that the key's
// type fits the kind before it asks. Only successes are kept (a failure is
// computed again, and reported as it was), and the table is bounded:
// when full it is emptied.
var verified = verifyCache{m: map[[32]byte]struct{}{}}

// maxVerified bounds the cache: 32 bytes a entry.
const maxVerified = 1 << 14

type verifyCache struct {
	mu sync.Mutex
	m  map[[32]byte]struct{}

	hits atomic.Int64 // answered from the cache (tests read it)
}

var verifyKeyPool = sync.Pool{New: func() any { return sha256.New() }}

// verifyKey returns the cache key for a digest signature, and false for a
// key type the cache does not hold (those are verified every time).
func verifyKey(pub crypto.PublicKey, kind string, h crypto.Hash, digest, sig []byte) ([32]byte, bool) {
	var pubBytes []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil {
			return [32]byte{}, false
		}
		var e [8]byte
		binary.BigEndian.PutUint64(e[:], uint64(k.E))
		pubBytes = append(append([]byte("rsa:"), k.N.Bytes()...), e[:]...)
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			return [32]byte{}, false
		}
		pubBytes = append([]byte("ecdsa:"+k.Curve.Params().Name+":"), b...)
	default:
		return [32]byte{}, false
	}
	hh := verifyKeyPool.Get().(hash.Hash)
	defer verifyKeyPool.Put(hh)
	hh.Reset()
	var n [8]byte
	for _, part := range [][]byte{[]byte("csv verified signature v1"), []byte(kind), {byte(h)}, pubBytes, digest, sig} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		hh.Write(n[:])
		hh.Write(part)
	}
	var key [32]byte
	hh.Sum(key[:0])
	return key, true
}

func (c *verifyCache) has(key [32]byte) bool {
	c.mu.Lock()
	_, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		c.hits.Add(1)
	}
	return ok
}

func (c *verifyCache) add(key [32]byte) {
	c.mu.Lock()
	if len(c.m) >= maxVerified {
		clear(c.m)
	}
	c.m[key] = struct{}{}
	c.mu.Unlock()
}
