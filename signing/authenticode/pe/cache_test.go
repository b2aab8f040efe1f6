package pe_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

// TestCertCacheChainOncePerRun: a run's files signed by one certificate
// chain cost one chain search and one parse per certificate, however many
// files there are and however concurrently they are verified; each
// file's own signature is still checked (a file whose digest differs
// fails); a certificate that differs in one byte is another key, searched
// anew, and the chain it yields (broken: the changed intermediate's
// signature no longer verifies) is never handed to a file that carries
// the good one, nor the good chain to it.
func TestCertCacheChainOncePerRun(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	const n = 24
	files := make([]*signedPE, n)
	for i := range files {
		in := peFile(4096 + 8*i) // n different files
		out, _ := signPE(t, in, s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
		files[i] = parseSignedPE(t, out)
	}
	// The same table with one byte of the embedded intermediate changed
	// (the last byte of its signature, so that it still parses).
	bad := parseSignedPE(t, bytes.Clone(files[0].data))
	at := bytes.Index(bad.table, p.inter.Raw)
	if at < 0 {
		t.Fatal("the intermediate is not in the signature")
	}
	bad.table[at+len(p.inter.Raw)-1] ^= 1

	cache := authenticode.NewCertCache()
	opts := authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}, Cache: cache}
	// The changed chain first: what it yields must not be what the good
	// files get.
	sigs, err := pe.Verify(bad.table, bad.pf.CertTable.Off, digestsFor(t, bad), opts)
	if err != nil {
		t.Fatal(err)
	}
	badInter := mustCert(t, bad.table[at:at+len(p.inter.Raw)])
	wantChain(t, "changed intermediate", sigs[0].Chains, s.cert, badInter)
	if st := cache.Stats(); st.ChainsBuilt != 1 || st.CertsParsed != 2 {
		t.Fatalf("after the changed file: %+v, want 1 chain search and 2 certificates parsed", st)
	}

	results := make([][]*signing.Signature, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, f := range files {
		digests := digestsFor(t, f)
		wg.Go(func() { results[i], errs[i] = pe.Verify(f.table, f.pf.CertTable.Off, digests, opts) })
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || len(results[i]) != 1 || !results[i][0].Verified() {
			t.Fatalf("file %d: %v %+v", i, errs[i], results[i])
		}
		wantChain(t, "good file", results[i][0].Chains, s.cert, p.inter, p.root)
	}
	// One more search (the good intermediate is another key), one more
	// certificate parsed (the good intermediate; the leaf is the same).
	if st := cache.Stats(); st.ChainsBuilt != 2 || st.CertsParsed != 3 {
		t.Errorf("after %d good files: %+v, want 2 chain searches and 3 certificates parsed in all", n, st)
	}

	// And the changed one again, after the good ones: still its own chain.
	sigs, err = pe.Verify(bad.table, bad.pf.CertTable.Off, digestsFor(t, bad), opts)
	if err != nil {
		t.Fatal(err)
	}
	wantChain(t, "changed intermediate, again", sigs[0].Chains, s.cert, badInter)

	// Each file's signature over its own digest is checked, cached chain
	// or not: another file's digest fails.
	sigs, err = pe.Verify(files[0].table, files[0].pf.CertTable.Off, digestsFor(t, files[1]), opts)
	if err != nil {
		t.Fatal(err)
	}
	if sigs[0].Verified() || !errors.Is(sigs[0].Problem, signing.ErrDigestMismatch) {
		t.Errorf("a file verified against another's digest: verified %v, problem %v", sigs[0].Verified(), sigs[0].Problem)
	}
	if st := cache.Stats(); st.ChainsBuilt != 2 {
		t.Errorf("%+v: the chains were searched again", st)
	}
}

// TestSignerChecksParseTheChainOnce: the check each new signature gets
// before it is written (CheckTable) parses the signer's chain once per
// Signer, not once per file, and every file it signs still verifies.
func TestSignerChecksParseTheChainOnce(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	signer, err := authenticode.NewSigner(s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	for i := range n {
		in := peFile(4096 + 8*i)
		var out bytes.Buffer
		if _, err := pe.SignWithOptions(context.Background(), signer, bytes.NewReader(in), int64(len(in)), &writerAt{&out}, pe.Options{}); err != nil {
			t.Fatal(err)
		}
		f := parseSignedPE(t, out.Bytes())
		sigs, err := pe.Verify(f.table, f.pf.CertTable.Off, digestsFor(t, f), authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root}})
		if err != nil || len(sigs) != 1 || !sigs[0].Verified() {
			t.Fatalf("file %d: %v %+v", i, err, sigs)
		}
	}
	if got, want := signer.Cache().Stats().CertsParsed, int64(len(p.chainOf(s))); got != want {
		t.Errorf("%d files signed: %d certificates parsed by the checks, want %d (the chain, once)", n, got, want)
	}
}
