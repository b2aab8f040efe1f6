package manifest

import (
	"errors"
	"fmt"
	"time"

	"github.com/codesignval/csv/cipolicy"
)

// ErrNoBasePolicy: [PassedSummary] was given no base policy.
var ErrNoBasePolicy = errors.New("manifest: no base policy")

// Validation describes a validation of a build that passed, for
// [PassedSummary].
type Validation struct {
	// Version is csv's version, recorded as the verifier's ("csv": Version).
	Version string
	// Started is when the validation ran: the predicate's TimeVerified.
	Started time.Time
	// ResourceURI names the build: a CI run URL, or the paths validated.
	ResourceURI string
	// Policies are the policies the build passed, in the order they were
	// loaded (csv.Report.Policies).
	Policies []*cipolicy.Policy
}

// PassedSummary returns the SLSA verification summary csv writes for a
// build that passed v: verifier [VerifierID] at v.Version, the first base
// policy of v.Policies as the policy (its name, else its ID, and its file's
// SHA-256) with [PolicyLevel] of its name as the one level verified, and
// every other policy (supplemental ones, further bases) as an input
// attestation. It is what csv sign --manifest and validate --sign
// --manifest sign with [New].
func PassedSummary(v Validation) (Predicate, error) {
	var base *cipolicy.Policy
	var others []ResourceDescriptor
	for _, p := range v.Policies {
		if p == nil {
			return Predicate{}, fmt.Errorf("manifest: nil policy")
		}
		if base == nil && p.Type == cipolicy.Base {
			base = p
			continue
		}
		others = append(others, ResourceDescriptor{Name: p.Ref(), Digest: DigestSet{"sha256": p.SHA256Hex()}})
	}
	if base == nil {
		return Predicate{}, ErrNoBasePolicy
	}
	return Predicate{
		Verifier:           Verifier{ID: VerifierID, Version: map[string]string{"csv": v.Version}},
		TimeVerified:       v.Started,
		ResourceURI:        v.ResourceURI,
		Policy:             ResourceDescriptor{Name: base.Ref(), Digest: DigestSet{"sha256": base.SHA256Hex()}},
		InputAttestations:  others,
		VerificationResult: Passed,
		VerifiedLevels:     []string{PolicyLevel(base.Ref())},
	}, nil
}
