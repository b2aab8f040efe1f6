package service

import (
	"encoding/hex"
	"time"

	"github.com/codesignval/csv/attest"
)

// ekTrustedAnyUnsafe is the "ek" check's detail when the EK is trusted
// only because Config.TrustAnyEKUnsafe says so.
const ekTrustedAnyUnsafe = "EK trusted as given (TrustAnyEKUnsafe): a host without a genuine TPM could read its credential"

// ear makes an EAR credential (FormatEAR): the result as attest.NewEAR
// states it, with the service's nonce the quotes carried, the JWT
// registered claims of the token format (iss, sub the AK Name, nbf a
// minute back for relying parties' clock skew, exp, jti), signed with
// the CA key. The "ek" check says the TPM is genuine (hardware 2) when
// an EK root or the allowlist vouched for it; trusted only through
// TrustAnyEKUnsafe, it says nothing of the hardware.
func (is *issuer) ear(now, notAfter time.Time, jti string, id *identity, res *attest.Result, nonce []byte) ([]byte, error) {
	e, err := attest.NewEAR(res, attest.EAROptions{Build: is.build, Nonce: nonce, Now: func() time.Time { return now }})
	if err != nil {
		return nil, err
	}
	for _, c := range res.Checks {
		if c.Name == "ek" && c.Detail == ekTrustedAnyUnsafe {
			e.Submods[attest.EARSubmodule].TrustVector.Hardware = attest.NoClaim
		}
	}
	e.Issuer, e.Subject, e.ID = is.name, hex.EncodeToString(id.akName), jti
	e.NotBefore, e.Expires = now.Add(-time.Minute).Unix(), notAfter.Unix()
	return e.Sign(is.key, is.kid)
}
