package modsig

import (
	"bytes"
	"sync"
	"testing"

	"github.com/codesignval/csv/signing"
)

// TestVerifyCachedChainOncePerRun: modules signed by one key cost one chain
// search per run with a cache, however many are verified and however
// concurrently, with the chains and verdicts they get without one; each
// module's own signature is still checked (a changed module fails); a
// candidate set that differs is another key.
func TestVerifyCachedChainOncePerRun(t *testing.T) {
	p := testPKI(t)
	cands := certs(t, p.rsa.Cert, p.ca.Intermediate.Cert, p.ca.Root.Cert)
	const n = 16
	mods := make([][]byte, n)
	for i := range mods {
		m := append(bytes.Clone(module), make([]byte, 8*(i+1))...) // n different modules
		mods[i] = signModule(t, m, p.rsa, SignOptions{})
	}
	cache := signing.NewCertCache()
	got := make([]*signing.Signature, n)
	var wg sync.WaitGroup
	for i, m := range mods {
		a := find(t, m)
		wg.Go(func() { got[i] = a.VerifyCached(sum(a.DigestAlgorithm, m[:a.SignedLen]), cands, cache) })
	}
	wg.Wait()
	for i, m := range mods {
		_, want := verify(t, m, cands)
		if !got[i].Verified() || !want.Verified() {
			t.Fatalf("module %d: cached %v, uncached %v", i, got[i].Problem, want.Problem)
		}
		if len(got[i].Chains) != 1 || chainNames(got[i].Chains[0]) != chainNames(want.Chains[0]) {
			t.Fatalf("module %d: cached chains %v, want %v", i, got[i].Chains, want.Chains)
		}
	}
	if st := cache.Stats(); st.ChainsBuilt != 1 {
		t.Errorf("%d modules of one signer: %d chain searches, want 1", n, st.ChainsBuilt)
	}

	// A changed module still fails: its signature is checked every time.
	changed := bytes.Clone(mods[0])
	changed[0] ^= 1
	a := find(t, changed)
	if s := a.VerifyCached(sum(a.DigestAlgorithm, changed[:a.SignedLen]), cands, cache); s.Verified() {
		t.Fatal("a changed module verified through the cache")
	}

	// Other candidates (without the root) are another search.
	other := certs(t, p.rsa.Cert, p.ca.Intermediate.Cert)
	a = find(t, mods[1])
	if s := a.VerifyCached(sum(a.DigestAlgorithm, mods[1][:a.SignedLen]), other, cache); !s.Verified() {
		t.Fatal(s.Problem)
	}
	if st := cache.Stats(); st.ChainsBuilt != 2 {
		t.Errorf("after another candidate set: %d chain searches, want 2", st.ChainsBuilt)
	}
}
