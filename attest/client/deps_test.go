package client_test

import (
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// TestAgentLinksNoVerifier keeps the host agent small: it speaks the
// protocol of package wire and links neither the service nor the policy
// engine (attest, cipolicy, signing and their YAML and glob parsers), nor
// a cloud SDK.
func TestAgentLinksNoVerifier(t *testing.T) {
	forbidden := []string{
		"github.com/codesignval/csv/attest",
		"github.com/codesignval/csv/attest/service/...",
		"github.com/codesignval/csv/cipolicy/...",
		"github.com/codesignval/csv/signing/...",
		"go.yaml.in/yaml/...", "gopkg.in/yaml.v3", "github.com/bmatcuk/doublestar/...",
		"github.com/sigstore/...", "github.com/aws/...", "cloud.google.com/...", "github.com/Azure/...",
		"github.com/AzureAD/...", "github.com/hashicorp/...", "google.golang.org/grpc/...",
		"google.golang.org/api/...", "github.com/miekg/pkcs11/...",
	}
	for _, goos := range []string{"linux", "windows"} {
		n := testenv.CheckLinks(t, goos, "attest/client", forbidden)
		t.Logf("GOOS=%s: attest/client: %d packages", goos, n)
	}
}
