package manifest_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing/manifest"
)

type exampleTB struct{}

func (exampleTB) Helper()                           {}
func (exampleTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }

// Sign the manifest of a build, verify it, and check the files against it
// after one has changed.
func Example() {
	ca := testca.New(exampleTB{})
	leaf := ca.Leaf(exampleTB{}, testca.LeafOptions{KeyType: testca.ECDSAP256})
	dir, err := os.MkdirTemp("", "build")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var subjects []manifest.Subject
	for _, name := range []string{"app.exe", "helper.dll"} {
		content := []byte("MZ " + name)
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			log.Fatal(err)
		}
		sum := sha256.Sum256(content)
		subjects = append(subjects, manifest.SHA256Subject(name, sum[:]))
	}
	policy := sha256.Sum256([]byte("the policy file"))
	data, err := manifest.New(subjects, manifest.Predicate{
		Verifier:           manifest.Verifier{Version: map[string]string{"csv": "v1.0.0"}},
		TimeVerified:       testca.Epoch,
		ResourceURI:        "https://ci.example/builds/42",
		Policy:             manifest.ResourceDescriptor{Name: "release", Digest: manifest.DigestSet{"sha256": fmt.Sprintf("%x", policy)}},
		VerificationResult: manifest.Passed,
		VerifiedLevels:     []string{manifest.PolicyLevel("release")},
	}, leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert})
	if err != nil {
		log.Fatal(err)
	}

	st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Predicate.VerificationResult, st.Predicate.VerifiedLevels, len(st.Subject), "files")

	if err := os.WriteFile(filepath.Join(dir, "helper.dll"), []byte("MZ patched"), 0o600); err != nil {
		log.Fatal(err)
	}
	for _, m := range manifest.CheckFiles(context.Background(), st, dir) {
		fmt.Println(m.Name, m.Kind)
	}
	// Output:
	// PASSED [CSV_POLICY_RELEASE] 2 files
	// helper.dll changed
}
