// Package sgtest runs sigstore-go's verifier, the peer that checks csv's
// Sigstore bundles in tests.
package sgtest

import (
	"os/exec"
	"testing"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
)

// Verify checks bundleJSON with sigstore-go against trustedRootJSON (as
// bundle.TrustedRoot writes it), with the verifier options given (say
// verify.WithCurrentTime() or verify.WithSignedTimestamps(1)) and policy.
// A trusted root or bundle sigstore-go cannot load fails the test; the
// verification's error is returned.
func Verify(t testing.TB, trustedRootJSON, bundleJSON []byte, policy verify.PolicyBuilder, opts ...verify.VerifierOption) (*verify.VerificationResult, error) {
	t.Helper()
	tr, err := root.NewTrustedRootFromJSON(trustedRootJSON)
	if err != nil {
		t.Fatalf("sigstore-go does not load the trusted root: %v", err)
	}
	v, err := verify.NewVerifier(tr, opts...)
	if err != nil {
		t.Fatalf("sigstore-go verifier: %v", err)
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		t.Fatalf("sigstore-go does not load the bundle: %v", err)
	}
	return v.Verify(&b, policy)
}

// Cosign returns cosign's path, or skips: cosign is an optional peer (go
// install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5 takes minutes and
// 140 MB), so it does not fail under CSV_REQUIRE_PEERS=1.
func Cosign(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign is not installed (optional: go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5)")
	}
	return p
}
