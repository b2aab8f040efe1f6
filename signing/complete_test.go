package signing_test

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// TestCheckChainComplete: a chain is complete when it ends in a
// self-signed certificate or below a root given; otherwise the error names
// the last certificate, whose issuer is missing.
func TestCheckChainComplete(t *testing.T) {
	ca := testca.New(t)
	other := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	root, inter := ca.Root.Cert, ca.Intermediate.Cert
	selfSigned := ca.Leaf(t, testca.LeafOptions{CommonName: "Self", SelfSigned: true})
	for _, tc := range []struct {
		name    string
		chain   []*x509.Certificate
		roots   []*x509.Certificate
		missing *x509.Certificate // the certificate the error names; nil: complete
	}{
		{"to the root", []*x509.Certificate{leaf.Cert, inter, root}, nil, nil},
		{"root given", []*x509.Certificate{leaf.Cert, inter}, []*x509.Certificate{root}, nil},
		{"no root", []*x509.Certificate{leaf.Cert, inter}, nil, inter},
		{"leaf only", []*x509.Certificate{leaf.Cert}, nil, leaf.Cert},
		{"leaf only, root given", []*x509.Certificate{leaf.Cert}, []*x509.Certificate{root}, leaf.Cert},
		{"a self-signed leaf", []*x509.Certificate{selfSigned.Cert}, nil, nil},
		// Another CA's root of the same name does not verify the link.
		{"a root of the same name", []*x509.Certificate{leaf.Cert, inter}, []*x509.Certificate{other.Root.Cert}, inter},
	} {
		err := signing.CheckChainComplete(tc.chain, signing.CompleteOptions{Roots: tc.roots, Now: testca.Epoch})
		if tc.missing == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var ce *signing.ChainError
		if !errors.As(err, &ce) || !errors.Is(err, signing.ErrPartialChain) || !errors.Is(err, signing.ErrSigner) {
			t.Errorf("%s: err = %v, want a ChainError carrying ErrPartialChain", tc.name, err)
			continue
		}
		if ce.Cert != tc.missing {
			t.Errorf("%s: the error names %q, want %q", tc.name, ce.Cert.Subject, tc.missing.Subject)
		}
	}
	if err := signing.CheckChainComplete(nil, signing.CompleteOptions{}); !errors.Is(err, signing.ErrEmptyChain) {
		t.Errorf("empty chain: %v", err)
	}
}
