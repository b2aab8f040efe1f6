package signing_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

func TestCheckSigningChain(t *testing.T) {
	ca := testca.New(t)
	other := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert}
	noEKU := ca.Leaf(t, testca.LeafOptions{CommonName: "TLS Server", EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired := ca.Leaf(t, testca.LeafOptions{CommonName: "Old Signing", NotBefore: testca.Epoch.AddDate(-3, 0, 0), NotAfter: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	future := ca.Leaf(t, testca.LeafOptions{CommonName: "Future Signing", NotBefore: testca.Epoch.AddDate(1, 0, 0)})
	otherKey := ca.Leaf(t, testca.LeafOptions{CommonName: "Other"})
	tests := []struct {
		name    string
		key     crypto.Signer
		chain   []*x509.Certificate
		wantErr error
		wantMsg string
	}{
		{"leaf, intermediate, root", leaf.Key, chain, nil, ""},
		{"leaf and intermediate", leaf.Key, chain[:2], nil, ""},
		{"leaf alone", leaf.Key, chain[:1], nil, ""},
		{"empty chain", leaf.Key, nil, signing.ErrEmptyChain, "signing: empty certificate chain"},
		{"key does not match", otherKey.Key, chain, signing.ErrKeyMismatch, `signing: key does not match the certificate "Build Signing"`},
		{"no code signing EKU", noEKU.Key, []*x509.Certificate{noEKU.Cert, ca.Intermediate.Cert}, signing.ErrNoCodeSigningEKU, `signing: certificate "TLS Server" lacks the code signing EKU`},
		{"expired", expired.Key, []*x509.Certificate{expired.Cert, ca.Intermediate.Cert}, signing.ErrExpired, `signing: certificate "Old Signing" expired on 2025-06-01`},
		{"not yet valid", future.Key, []*x509.Certificate{future.Cert, ca.Intermediate.Cert}, signing.ErrNotYetValid, `signing: certificate "Future Signing" is not valid before 2027-06-01`},
		{"wrong intermediate", leaf.Key, []*x509.Certificate{leaf.Cert, other.Intermediate.Cert}, signing.ErrChainLink, ""},
		{"out of order", leaf.Key, []*x509.Certificate{leaf.Cert, ca.Root.Cert, ca.Intermediate.Cert}, signing.ErrChainLink, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := signing.CheckSigningChain(tt.key, tt.chain, testca.Epoch)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, signing.ErrSigner) {
				t.Errorf("%v is not signing.ErrSigner", err)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("message %q, want %q", err, tt.wantMsg)
			}
			var ce *signing.ChainError
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("%v is not a *ChainError", err)
			}
		})
	}
}
