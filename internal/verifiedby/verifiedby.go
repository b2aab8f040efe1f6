// Package verifiedby makes the verified signing.Signature values that csv
// does not check itself but that other evidence stands behind. Each
// constructor is named for that evidence; being internal, they are
// reachable only from inside the module.
package verifiedby

import (
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
)

// FormatUEFI is the Format of a signature [Firmware] makes.
const FormatUEFI = "uefi"

// Firmware returns the signature of a boot component that UEFI firmware
// verified before it measured the component: a TPM-quoted event log
// records, in PCR 7, the Secure Boot authority (a db certificate) that
// firmware (or shim, which verifies as firmware does) checked the
// component's signature with. csv has neither the component nor its
// signature, only that record, so the signature is verified by firmware's
// word, as far as the quote and the replayed log are trusted: callers make
// one only for an authority found in a verified log. The signature's only
// chain is authority itself, its algorithm the authority's key type
// (algorithm: "RSA", "ECDSA", ... or "unknown", which no policy's key
// types accept).
func Firmware(authority *signing.Certificate, algorithm string) *signing.Signature {
	s := &signing.Signature{
		Format:             FormatUEFI,
		SignatureAlgorithm: algorithm,
		Chains:             [][]*signing.Certificate{{authority}},
		Certificates:       []*signing.Certificate{authority},
	}
	sigstate.Verified(s)
	return s
}

// Recorded marks s, read back from a facts file (package csv/facts),
// verified: a recorder's csv verified it when it inspected the file, and
// wrote down the outcome. csv has neither the file nor, necessarily, what
// the recorder trusted, so the signature is verified by the recorder's
// word, as far as the facts file is trusted (docs/facts.md, "Trust"):
// callers make one only for a signature a facts file records as verified.
// It returns s.
func Recorded(s *signing.Signature) *signing.Signature {
	sigstate.Verified(s)
	return s
}

// RecordedTimestamp is Recorded for a signature's timestamp.
func RecordedTimestamp(ts *signing.Timestamp) *signing.Timestamp {
	sigstate.Verified(ts)
	return ts
}
