package ima

import (
	"crypto"
	"fmt"
	"sync"
	"testing"

	"github.com/codesignval/csv/signing"
)

// TestVerifyCachedChainOncePerRun: files signed by one key cost one chain
// search per run with a cache, with the chains they get without one; each
// file's own signature is still checked.
func TestVerifyCachedChainOncePerRun(t *testing.T) {
	p := testPKI(t)
	keyring := []*signing.Certificate{p.rsaCert, p.ecCert}
	const n = 12
	digests := make([][]byte, n)
	values := make([]*Value, n)
	for i := range values {
		digests[i] = sha(fmt.Appendf(nil, "file %d\n", i))
		raw, err := Sign(digests[i], crypto.SHA256, p.rsa.Key, p.rsa.Cert)
		if err != nil {
			t.Fatal(err)
		}
		if values[i], err = Parse(raw); err != nil {
			t.Fatal(err)
		}
	}
	cache := signing.NewCertCache()
	got := make([]*signing.Signature, n)
	var wg sync.WaitGroup
	for i, v := range values {
		wg.Go(func() { got[i] = v.VerifyCached(digests[i], keyring, p.cas, cache) })
	}
	wg.Wait()
	for i, v := range values {
		want := v.Verify(digests[i], keyring, p.cas)
		if !got[i].Verified() || !want.Verified() || len(got[i].Chains) != 1 || len(got[i].Chains[0]) != 3 ||
			len(want.Chains) != 1 || got[i].Chains[0][2].SHA256 != want.Chains[0][2].SHA256 {
			t.Fatalf("file %d: cached %v %v, uncached %v %v", i, got[i].Problem, got[i].Chains, want.Problem, want.Chains)
		}
	}
	if st := cache.Stats(); st.ChainsBuilt != 1 {
		t.Errorf("%d files of one signer: %d chain searches, want 1", n, st.ChainsBuilt)
	}
	other := append([]byte(nil), digests[0]...)
	other[0] ^= 1
	if s := values[0].VerifyCached(other, keyring, p.cas, cache); s.Verified() {
		t.Fatal("another digest verified through the cache")
	}
}
