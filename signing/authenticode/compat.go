package authenticode

import "github.com/codesignval/csv/signing/timestamp"

// Timestamp kinds (signing.Timestamp.Kind).
//
// Deprecated: use timestamp.KindRFC3161 and timestamp.KindAuthenticode.
const (
	TimestampRFC3161      = timestamp.KindRFC3161
	TimestampAuthenticode = timestamp.KindAuthenticode
)

// TimestampToken is an RFC 3161 token that verified over a signature.
//
// Deprecated: use timestamp.VerifiedToken.
type TimestampToken = timestamp.VerifiedToken

// VerifyTimestampResponse is timestamp.VerifyResponse.
//
// Deprecated: use timestamp.VerifyResponse.
func VerifyTimestampResponse(resp, signature []byte) (*TimestampToken, error) {
	return timestamp.VerifyResponse(resp, signature)
}
