package keys_test

import (
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// TestVerifiersLinkNoKeyLoading keeps the split this package exists for:
// the packages that verify (and csv's signing pipeline, which is given a
// crypto.Signer) link neither this package nor a cloud SDK, gRPC or the
// PKCS#11 binding. go list -deps counted about 690 packages for each of
// them when package signing loaded keys.
func TestVerifiersLinkNoKeyLoading(t *testing.T) {
	forbidden := []string{
		"github.com/codesignval/csv/signing/keys/...",
		"github.com/sigstore/sigstore/pkg/signature/kms/...",
		"github.com/aws/...", "cloud.google.com/...", "github.com/Azure/...", "github.com/AzureAD/...",
		"github.com/hashicorp/...", "google.golang.org/grpc/...", "google.golang.org/api/...",
		"github.com/miekg/pkcs11/...",
	}
	for _, pkg := range []string{"signing", "signing/authenticode", "signing/modsig", "signing/bundle", "signing/manifest", "cipolicy", "csv", "csv/report", "attest", "attest/client", "attest/service"} {
		t.Logf("%s: %d packages", pkg, testenv.CheckLinks(t, "", pkg, forbidden))
	}
}
