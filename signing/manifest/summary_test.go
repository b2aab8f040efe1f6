package manifest_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing/manifest"
)

// TestPassedSummary checks the predicate csv signs for a build that passed:
// the first base policy is the policy and the level, every other policy an
// input attestation.
func TestPassedSummary(t *testing.T) {
	base := &cipolicy.Policy{Name: "release-x64", Type: cipolicy.Base, SHA256: [32]byte{1}}
	supp := &cipolicy.Policy{ID: "{supp}", Type: cipolicy.Supplemental, SHA256: [32]byte{2}}
	started := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	got, err := manifest.PassedSummary(manifest.Validation{Version: "1.2.3", Started: started, ResourceURI: "build", Policies: []*cipolicy.Policy{supp, base}})
	if err != nil {
		t.Fatal(err)
	}
	want := manifest.Predicate{
		Verifier:           manifest.Verifier{ID: manifest.VerifierID, Version: map[string]string{"csv": "1.2.3"}},
		TimeVerified:       started,
		ResourceURI:        "build",
		Policy:             manifest.ResourceDescriptor{Name: "release-x64", Digest: manifest.DigestSet{"sha256": base.SHA256Hex()}},
		InputAttestations:  []manifest.ResourceDescriptor{{Name: "{supp}", Digest: manifest.DigestSet{"sha256": supp.SHA256Hex()}}},
		VerificationResult: manifest.Passed,
		VerifiedLevels:     []string{"CSV_POLICY_RELEASE_X64"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := manifest.PassedSummary(manifest.Validation{Policies: []*cipolicy.Policy{supp}}); !errors.Is(err, manifest.ErrNoBasePolicy) {
		t.Errorf("no base policy: got %v, want ErrNoBasePolicy", err)
	}
}
