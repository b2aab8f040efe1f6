package catalog

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// ErrUnsigned (wrapping signing.ErrSignerNotFound) is Verify's error for a
// catalog that carries no signature: it admits nothing.
var ErrUnsigned = signing.Errorf(signing.ErrSignerNotFound, "catalog: the catalog is not signed")

// Verified is a catalog whose signature verified: the only way to get one
// is [Catalog.Verify], so holding one means its members may be looked up.
type Verified struct {
	catalog *Catalog
	signer  *signing.Signature
	sigs    []*signing.Signature
	index   map[string][]int
}

// Verify verifies the catalog's signature with authenticode.Verify (whose
// documentation lists the checks: structure, digest algorithms (MD5
// refused), signer, signed attributes with contentType szOID_CTL and the
// messageDigest over the list's content octets, the signature, chains,
// timestamps, nested signatures, which must sign the same list). It
// returns every signature found (for reports) and, when the catalog's own
// signature verified, the [Verified] catalog; otherwise err says why
// (ErrUnsigned, or the signature's Problem: errors.Is finds
// signing.ErrDigestMismatch, signing.ErrSignature, ...). A structural
// problem is a *signing.MalformedError, and no signatures.
func (c *Catalog) Verify(opts authenticode.VerifyOptions) ([]*signing.Signature, *Verified, error) {
	if !c.Signed {
		return nil, nil, ErrUnsigned
	}
	sigs, err := authenticode.Verify(c, nil, opts)
	if err != nil {
		return nil, nil, err
	}
	if len(sigs) == 0 {
		return nil, nil, ErrUnsigned // cannot happen: the catalog is signed
	}
	primary := sigs[0]
	if !primary.Verified() {
		if primary.Problem != nil {
			return sigs, nil, fmt.Errorf("catalog: the catalog's signature does not verify: %w", primary.Problem)
		}
		return sigs, nil, errors.New("catalog: the catalog's signature does not verify")
	}
	v := &Verified{catalog: c, signer: primary, index: make(map[string][]int, len(c.Members))}
	for _, sig := range sigs {
		if sig.Verified() {
			v.sigs = append(v.sigs, sig)
		}
	}
	for i, m := range c.Members {
		if m.Digest == nil || !m.Tagged() {
			continue
		}
		k := key(m.Algorithm, m.Digest)
		v.index[k] = append(v.index[k], i)
	}
	return sigs, v, nil
}

func key(h crypto.Hash, digest []byte) string {
	return string(rune(h)) + string(digest)
}

// Catalog returns the catalog.
func (v *Verified) Catalog() *Catalog { return v.catalog }

// Signer returns the catalog's verified signature: the signer a member is
// signed by.
func (v *Verified) Signer() *signing.Signature { return v.signer }

// Tagged reports whether the member's tag is its digest: its hex
// (UTF-16LE, NUL-terminated or not, in either case), as makecat's <HASH>
// entries, New-FileCatalog and Build write it. Windows finds a file's
// member by that tag (the catalog database's key is the file's hash in
// hex) before it compares the SPC_INDIRECT_DATA digest, so a member whose
// tag is anything else (a name, another hash, the digest's raw bytes) is
// not found by the file's hash there, and admits nothing here.
func (m *Member) Tagged() bool {
	s, ok := utf16le(m.RawTag)
	return ok && m.Digest != nil && len(s) == 2*len(m.Digest) && strings.EqualFold(s, hex.EncodeToString(m.Digest))
}

// Signatures returns the catalog's signatures that verified: its own
// (Signer) first, then those nested in it, which sign the same list. A
// member is signed by each, as a PE file is by each of its signatures:
// deny rules match every one, and Subject.Judge's IgnoredBy says which
// hosts count one to admit.
func (v *Verified) Signatures() []*signing.Signature { return v.sigs }

// Lookup returns the members whose hash is digest with algorithm h (none
// when it is not a member, or when its tag is not that digest: see
// [Member.Tagged]).
func (v *Verified) Lookup(h crypto.Hash, digest []byte) []*Member {
	idx := v.index[key(h, digest)]
	if len(idx) == 0 {
		return nil
	}
	out := make([]*Member, len(idx))
	for i, n := range idx {
		out[i] = &v.catalog.Members[n]
	}
	return out
}

// Members returns the members Lookup finds (those with a digest that their
// tag names), in the catalog's order: what an index of several catalogs
// keys by hash.
func (v *Verified) Members() iter.Seq[*Member] {
	return func(yield func(*Member) bool) {
		for i := range v.catalog.Members {
			m := &v.catalog.Members[i]
			if m.Digest != nil && m.Tagged() && !yield(m) {
				return
			}
		}
	}
}

// Algorithms returns the hash algorithms the catalog's members use, each
// once: the digests a file needs for a lookup.
func (v *Verified) Algorithms() []crypto.Hash {
	var out []crypto.Hash
	seen := map[crypto.Hash]bool{}
	for _, m := range v.catalog.Members {
		if m.Digest != nil && !seen[m.Algorithm] {
			seen[m.Algorithm] = true
			out = append(out, m.Algorithm)
		}
	}
	return out
}
