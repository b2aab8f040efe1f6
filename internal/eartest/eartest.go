// Package eartest runs github.com/veraison/ear, the EAT attestation result
// library Veraison's verifiers and relying parties use, as the peer that
// checks csv's EARs in tests.
package eartest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/veraison/ear"
)

// Algorithm is the JWS algorithm a relying party expects of csv's EARs
// signed with a key of pub's type (docs/attest.md, "EAR results"): ES256,
// ES384 or ES512 by the ECDSA curve, PS256 for RSA, EdDSA for Ed25519. It
// is written out here, not taken from package attest, so that a change of
// csv's choice fails the tests.
func Algorithm(t testing.TB, pub crypto.PublicKey) jwa.SignatureAlgorithm {
	t.Helper()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jwa.ES256
		case 384:
			return jwa.ES384
		case 521:
			return jwa.ES512
		}
	case *rsa.PublicKey:
		return jwa.PS256
	case ed25519.PublicKey:
		return jwa.EdDSA
	}
	t.Fatalf("eartest: no EAR algorithm for a %T key", pub)
	return ""
}

// Verify checks a signed EAR (a JWT) with the library's
// AttestationResult.Verify and the public key, and returns the claims it
// decoded. The library validates the JWT's time claims (iat, nbf, exp)
// against the real clock.
func Verify(t testing.TB, token []byte, pub crypto.PublicKey) (*ear.AttestationResult, error) {
	t.Helper()
	var ar ear.AttestationResult
	if err := ar.Verify(token, Algorithm(t, pub), pub); err != nil {
		return nil, err
	}
	return &ar, nil
}

// Parse decodes an unsigned EAR claims set (JSON) with the library's
// AttestationResult.UnmarshalJSON, which checks the mandatory claims and
// the profile.
func Parse(t testing.TB, claims []byte) (*ear.AttestationResult, error) {
	t.Helper()
	var ar ear.AttestationResult
	if err := ar.UnmarshalJSON(claims); err != nil {
		return nil, err
	}
	return &ar, nil
}

// Status returns the status of a submodule, failing the test if it has
// none.
func Status(t testing.TB, ar *ear.AttestationResult, submod string) ear.TrustTier {
	t.Helper()
	a := ar.Submods[submod]
	if a == nil || a.Status == nil {
		t.Fatalf("eartest: the EAR has no submodule %q with a status: %v", submod, ar.Submods)
	}
	return *a.Status
}

// Vector returns the trustworthiness vector of a submodule, failing the
// test if it has none.
func Vector(t testing.TB, ar *ear.AttestationResult, submod string) ear.TrustVector {
	t.Helper()
	a := ar.Submods[submod]
	if a == nil || a.TrustVector == nil {
		t.Fatalf("eartest: the EAR has no submodule %q with a trustworthiness vector: %v", submod, ar.Submods)
	}
	return *a.TrustVector
}
