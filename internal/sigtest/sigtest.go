// Package sigtest marks signatures that tests build by hand verified, for
// unit tests of code that judges signatures (cipolicy, attest) without
// running a verifier. Only tests may use it: every function takes the
// test's testing.TB.
package sigtest

import (
	"testing"

	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
)

// Verified marks s verified, as a verifier would once every check passed,
// and returns it.
func Verified(t testing.TB, s *signing.Signature) *signing.Signature {
	t.Helper()
	sigstate.Verified(s)
	return s
}

// VerifiedTimestamp marks ts verified and returns it.
func VerifiedTimestamp(t testing.TB, ts *signing.Timestamp) *signing.Timestamp {
	t.Helper()
	sigstate.Verified(ts)
	return ts
}
