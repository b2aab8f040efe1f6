package signing

import (
	"bytes"
	"crypto"
	"fmt"
	"strings"
	"time"

	"github.com/codesignval/csv/internal/sigstate"
)

func init() {
	sigstate.Register(func(s *Signature) { s.verified = true })
	sigstate.Register(func(t *Timestamp) { t.verified = true })
}

// Signature is what one signature on a file establishes. Verifiers in the
// format sub-packages fill it in; cipolicy matches signer rules against it.
// Only a signature whose Verified method reports true may admit a file:
// that state is set only by the code that verified the signature (the
// verifiers of this module), never by a caller, so a Signature a caller
// builds is never verified.
type Signature struct {
	// Format is the signature format: "authenticode", "modsig" or "ima"
	// (a security.ima digital signature, signing/ima).
	Format string
	// Index is the WIN_CERTIFICATE entry (PE) the signature is in, and
	// Path its position among nested signatures: [] for the entry's own
	// signature, [0] for the first signature nested in it, and so on.
	Index int
	Path  []int
	// DigestAlgorithm is the hash the signature is over; Digest is the
	// file digest the signature carries (Authenticode: the image hash), if
	// the format carries one.
	DigestAlgorithm crypto.Hash
	Digest          []byte
	// SignerDigests are the other hashes the signature stands on, where
	// they differ from DigestAlgorithm (Authenticode: the SignerInfo's
	// digest algorithm, which digests the content into the signed
	// attributes, and the hash the signature algorithm names, which
	// digests the signed attributes): a collision in any of them forges
	// the signature as well as one in DigestAlgorithm would.
	SignerDigests []crypto.Hash
	// SignatureAlgorithm is RSA, RSA-PSS, ECDSA or Ed25519.
	SignatureAlgorithm string
	// Chains are the certificate chains from the signer up, built from the
	// signature's certificates and the extra ones supplied: each starts with
	// the signer's certificate, and every link's signature verifies with the
	// next certificate's key. Several chains exist when an issuer is
	// cross-signed. Empty if the signer's certificate was not found.
	Chains [][]*Certificate
	// Certificates are all the certificates the signature carries.
	Certificates []*Certificate
	// PageHashes is the digest of the page-hash table the signature
	// carries (Authenticode PE: crypto.SHA1 or crypto.SHA256), set only
	// when the signature verified with the table checked against every
	// page of the file; 0 otherwise.
	PageHashes crypto.Hash
	// Timestamp is the countersignature's time, if there is one.
	Timestamp *Timestamp
	// Problem says why the signature is not verified (see Verified), if
	// it is not.
	Problem error
	// IgnoredBy says which hosts would not count this signature although
	// it may verify, and why: a host reads only some of a file's
	// signatures (Windows: the first WIN_CERTIFICATE entry and the
	// signatures nested in it; UEFI firmware: each entry's own signature,
	// never a nested one), or refuses something csv verifies. A signature
	// a host ignores cannot admit a file in that host's scenarios; deny
	// rules still match it. Nil when every host counts it.
	IgnoredBy map[Host]string

	verified bool
}

// Verified reports whether the signature verified: the file's digest
// matches the signed digest, the signed attributes are consistent and the
// signer's signature verifies with the key of Chains[0][0] (for a boot
// component, that firmware verified it: see internal/verifiedby). Only
// the code that checked it sets it; Problem says why not.
func (s *Signature) Verified() bool { return s.verified }

// Host is a verifier that decides whether code runs: what a policy's
// scenarios stand for when csv judges a file as the host will.
type Host string

// Hosts.
const (
	// HostWindows is Windows' WinVerifyTrust and code integrity (App
	// Control): scenarios user and kernel.
	HostWindows Host = "windows"
	// HostUEFI is UEFI Secure Boot: the firmware's image verification
	// (EDK2 DxeImageVerificationLib) and shim, which verifies as EDK2
	// does: scenario boot.
	HostUEFI Host = "uefi"
)

// Ignore records that host would not count the signature, and why.
func (s *Signature) Ignore(host Host, why string) {
	if s.IgnoredBy == nil {
		s.IgnoredBy = map[Host]string{}
	}
	if _, ok := s.IgnoredBy[host]; !ok {
		s.IgnoredBy[host] = why
	}
}

// Signer returns the signing certificate, or nil.
func (s *Signature) Signer() *Certificate {
	if len(s.Chains) == 0 || len(s.Chains[0]) == 0 {
		return nil
	}
	return s.Chains[0][0]
}

// Nested reports whether the signature is nested inside another.
func (s *Signature) Nested() bool { return len(s.Path) > 0 }

// Timestamp is a verified (or not) countersignature: RFC 3161 or the legacy
// Authenticode countersignature.
type Timestamp struct {
	Kind   string // "rfc3161" or "authenticode"
	Time   time.Time
	Chains [][]*Certificate
	// Problem says why the timestamp is not verified, if it is not.
	Problem error

	verified bool
}

// Verified reports whether the timestamp verified: its message imprint
// (or messageDigest) is the hash of the signature it countersigns, and its
// signer's signature verifies with the key of Chains[0][0], a
// time-stamping certificate. Only the code that checked it sets it.
func (t *Timestamp) Verified() bool { return t.verified }

const (
	maxChainDepth = 10
	maxChains     = 8
	// maxSignatureChecks bounds the signature checks one BuildChains call
	// makes: hostile certificates that all share a name would otherwise make
	// the search cost seconds of public-key operations.
	maxSignatureChecks = 64
)

// BuildChains returns the chains from leaf up through candidates: at each
// step, every candidate that is a CA (Certificate.CanIssue; its path length
// constraint respected), whose subject is the current certificate's issuer
// and whose key verifies its signature, extends the chain. A chain ends at a
// self-signed certificate or where no issuer is found. At most 8 chains of
// depth 10 are returned, after at most 64 signature checks; candidates may
// include leaf itself.
func BuildChains(leaf *Certificate, candidates []*Certificate) [][]*Certificate {
	chains, _ := BuildChainsCounted(leaf, candidates)
	return chains
}

// BuildChainsCounted is BuildChains, and also returns how many signature
// checks it made (at most 64): a caller that builds chains for many
// signatures of one untrusted input bounds their total with it.
func BuildChainsCounted(leaf *Certificate, candidates []*Certificate) ([][]*Certificate, int) {
	var out [][]*Certificate
	checks := 0
	var walk func(chain []*Certificate)
	walk = func(chain []*Certificate) {
		if len(out) >= maxChains {
			return
		}
		cur := chain[len(chain)-1]
		selfSigned := false
		if bytes.Equal(cur.RawSubject, cur.RawIssuer) {
			checks++
			selfSigned = checks <= maxSignatureChecks && cur.CheckSignedBy(cur) == nil
		}
		if len(chain) >= maxChainDepth || selfSigned {
			out = append(out, chain)
			return
		}
		extended := false
		for _, c := range candidates {
			// The issuer must be a CA whose path length allows the CAs
			// already below it (chain[1:]).
			if !cur.IssuedBy(c) || inChain(chain, c) || !c.CanIssue() || (c.MaxPathLen >= 0 && len(chain)-1 > c.MaxPathLen) {
				continue
			}
			if checks++; checks > maxSignatureChecks || cur.CheckSignedBy(c) != nil {
				continue
			}
			extended = true
			walk(append(chain[:len(chain):len(chain)], c))
		}
		if !extended {
			out = append(out, chain)
		}
	}
	walk([]*Certificate{leaf})
	return out, min(checks, maxSignatureChecks)
}

// ChainEnd says why chain (as BuildChains returns it, through candidates)
// ends where it does, for messages: "" when its last certificate is
// self-signed or the chain is as deep as BuildChains goes; otherwise what
// stopped it: no candidate is named as the last certificate's issuer, or
// each that is cannot issue certificates (not a CA, by its basic
// constraints or key usage), forbids the CAs below it by its path length,
// or (since BuildChains did not take it) does not verify the signature.
//
// ChainEnd checks no signature: it reads names and constraints only, so it
// costs no public-key operation. Policies call it for every rule a
// signature falls short of, on every file; a hostile boot log names
// thousands of them.
func ChainEnd(chain []*Certificate, candidates []*Certificate) string {
	if len(chain) == 0 || len(chain) >= maxChainDepth {
		return ""
	}
	top := chain[len(chain)-1]
	if bytes.Equal(top.RawSubject, top.RawIssuer) {
		return ""
	}
	var whys []string
	for _, c := range Dedup(candidates) {
		if !top.IssuedBy(c) || inChain(chain, c) {
			continue
		}
		switch {
		case !c.CanIssue():
			whys = append(whys, fmt.Sprintf("its issuer %q cannot issue certificates: %s", c.CommonName(), c.IssueProblem()))
		case c.MaxPathLen >= 0 && len(chain)-1 > c.MaxPathLen:
			whys = append(whys, fmt.Sprintf("its issuer %q allows %d CA certificates below it (path length constraint), the chain has %d", c.CommonName(), c.MaxPathLen, len(chain)-1))
		default:
			whys = append(whys, fmt.Sprintf("the key of %q, named as its issuer, does not verify its signature", c.CommonName()))
		}
	}
	if len(whys) == 0 {
		return fmt.Sprintf("the chain stops at %q: its issuer %q is not among the certificates supplied", top.CommonName(), NameString(top.Issuer))
	}
	return fmt.Sprintf("the chain stops at %q: %s", top.CommonName(), strings.Join(whys, "; "))
}

func inChain(chain []*Certificate, c *Certificate) bool {
	for _, x := range chain {
		if x.SHA256 == c.SHA256 {
			return true
		}
	}
	return false
}

// Dedup returns certs without repeats (by fingerprint), in order.
func Dedup(certs []*Certificate) []*Certificate {
	seen := map[[32]byte]bool{}
	var out []*Certificate
	for _, c := range certs {
		if c != nil && !seen[c.SHA256] {
			seen[c.SHA256] = true
			out = append(out, c)
		}
	}
	return out
}
