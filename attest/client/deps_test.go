package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// TestAgentLinksNoVerifier keeps the host agent small: it speaks the
// protocol of package wire and links neither the service nor the policy
// engine (attest, cipolicy, signing and their YAML and glob parsers), nor
// a cloud SDK.
func TestAgentLinksNoVerifier(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	// A path ending in "/..." stands for it and the packages below it, as
	// for the go command.
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
	matches := func(pattern, pkg string) bool {
		if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
			return pkg == tree || strings.HasPrefix(pkg, tree+"/")
		}
		return pkg == pattern
	}
	for _, goos := range []string{"linux", "windows"} {
		cmd := exec.Command(testenv.Tool(t, "go"), "list", "-deps", "github.com/codesignval/csv/attest/client")
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(cmd.Environ(), "GOOS="+goos)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOOS=%s go list -deps attest/client: %v", goos, err)
		}
		deps := strings.Fields(string(out))
		for _, d := range deps {
			for _, f := range forbidden {
				if matches(f, d) {
					t.Errorf("GOOS=%s: attest/client links %s", goos, d)
				}
			}
		}
		t.Logf("GOOS=%s: attest/client: %d packages", goos, len(deps))
	}
}
