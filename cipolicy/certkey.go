package cipolicy

import (
	"encoding/binary"

	"github.com/codesignval/csv/signing"
)

// SingleCertificateKey returns a key for certificates that sign a subject
// alone, as a chain of one (as the Secure Boot authorities of a boot do):
// two subjects that differ only in that certificate, c or another with the
// same key (and in what the caller derives from it: its name, its
// signature algorithm), are judged alike by Evaluate — the same verdict,
// kind, deciding policy and rule; only the reason may name the other
// certificate. Certificates that no signer rule or exception of the set
// names, by certificate, TBS hash or well-known root, all share the key
// "".
//
// It holds because a signer rule can match a chain of one certificate
// only through its certificate reference matching that certificate
// (levels issuer and root need a chain of two), and everything else the
// rule then checks (publisher, issuer name, EKUs, key algorithm, dates)
// is read from that certificate's TBSCertificate, which the key holds
// once any reference matches.
//
// Attestation uses it to judge each boot component once per kind of
// authority rather than once per authority: a boot that names thousands
// of authorities the policy does not know costs what one does.
func (s *Set) SingleCertificateKey(c *signing.Certificate) string {
	var matched []byte
	n := uint64(0)
	check := func(r *Rule) {
		if r.Signer != nil && r.Signer.Cert.Matches(c, s.isTrusted) {
			matched = binary.AppendUvarint(matched, n)
		}
		n++
	}
	for _, p := range s.policies {
		for i := range p.Rules {
			r := &p.Rules[i]
			check(r)
			for j := range r.Except {
				check(&r.Except[j])
			}
		}
	}
	if matched == nil {
		return ""
	}
	key := binary.AppendUvarint(nil, uint64(len(c.RawTBS)))
	return string(append(append(key, c.RawTBS...), matched...))
}
