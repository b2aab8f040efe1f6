package format

import (
	"crypto"
	"hash"
	"io"

	"github.com/codesignval/csv/cipolicy"
)

// SIPDigester is an Authenticode subject's streaming digester (a
// PowerShell script's, a cabinet's): it feeds its hashes the bytes the
// subject signs, and Err says whether it accepted the file.
type SIPDigester interface {
	io.Writer
	Close() error
	Err() error
}

// AddSIP adds dg to the read, and its hashes to the pass as the digests
// names gives them (a hash without a name is for the signatures alone):
// a digest has no sum when dg did not accept the file, as a malformed
// file's partial hash is no digest to write a rule with. It returns the
// sums by hash, for the subject's Verify, to call once the file is read.
func AddSIP(p *Pass, dg SIPDigester, hashes map[crypto.Hash]hash.Hash, names map[crypto.Hash]cipolicy.HashAlgorithm) func() map[crypto.Hash][]byte {
	p.Write(dg)
	p.OnDone(dg.Close)
	for h, a := range names {
		if hh := hashes[h]; hh != nil {
			p.Digest(a, sipSum{hh, dg})
		}
	}
	return func() map[crypto.Hash][]byte {
		sums := make(map[crypto.Hash][]byte, len(hashes))
		for h, hh := range hashes {
			sums[h] = hh.Sum(nil)
		}
		return sums
	}
}

// sipSum is a subject's hash that has no sum when its digester did not
// accept the file.
type sipSum struct {
	hash.Hash
	d SIPDigester
}

func (g sipSum) Sum(b []byte) []byte {
	if g.d.Err() != nil {
		return nil
	}
	return g.Hash.Sum(b)
}
