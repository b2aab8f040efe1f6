package bundle_test

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"log"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing/bundle"
)

// exampleTB lets examples use testca.
type exampleTB struct{}

func (exampleTB) Helper()                           {}
func (exampleTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }

// Sign an artifact's digest into a detached bundle, then verify it offline
// against the CA root.
func Example() {
	ca := testca.New(exampleTB{})
	leaf := ca.Leaf(exampleTB{}, testca.LeafOptions{KeyType: testca.ECDSAP256})
	digest := sha256.Sum256([]byte("MZ... app.exe"))

	data, err := bundle.New(digest[:], leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert}, nil)
	if err != nil {
		log.Fatal(err)
	}
	// data goes to app.exe.sigstore.json.

	roots := []*x509.Certificate{ca.Root.Cert}
	fmt.Println("verified:", bundle.Verify(data, digest[:], bundle.VerifyOptions{Roots: roots, Now: testca.Epoch}) == nil)
	other := sha256.Sum256([]byte("MZ... another app.exe"))
	fmt.Println(bundle.Verify(data, other[:], bundle.VerifyOptions{Roots: roots, Now: testca.Epoch}))
	// Output:
	// verified: true
	// bundle: digest does not match the artifact
}
