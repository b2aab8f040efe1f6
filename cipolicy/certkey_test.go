package cipolicy

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/codesignval/csv/internal/verifiedby"
	"github.com/codesignval/csv/signing"
)

// TestSingleCertificateKey: certificates with the same key are judged
// alike as a subject's only signer (a chain of one), whatever the digests;
// certificates no signer rule names share the empty key; a copy of a named
// certificate with another signature (the same TBSCertificate) has its
// key.
func TestSingleCertificateKey(t *testing.T) {
	p := newPKI(t)
	raw := bytes.Clone(p.leaf.Raw)
	raw[len(raw)-1] ^= 0xff // another signature value, the same TBSCertificate
	leafCopy, err := signing.ParseCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	hashed := sha256.Sum256([]byte("allowed by hash"))
	base := &Policy{ID: "a", Name: "a", Type: Base, Mode: Enforce, Rules: []Rule{
		{ID: "leaf", Action: Allow, Signer: &SignerMatch{Cert: CertRef{Certificate: p.leaf, TBSHash: p.leaf.TBSHash}, Level: LevelAny}},
		{ID: "rogue", Action: Deny, Signer: &SignerMatch{Cert: CertRef{TBSHash: p.rogue.TBSHash}, Level: LevelLeaf}},
		{ID: "root-publisher", Action: Allow, Signer: &SignerMatch{Cert: CertRef{Certificate: p.root}, Level: LevelAny, Publisher: "nobody"}},
		{ID: "well-known", Action: Allow, Signer: &SignerMatch{Cert: CertRef{WellKnown: "99", WellKnownName: p.root.CommonName()}, Level: LevelAny}},
		{ID: "hash", Action: Allow, Hash: &HashMatch{Algorithm: AuthenticodeSHA256, Value: hashed[:]},
			Except: []Rule{{Signer: &SignerMatch{Cert: CertRef{Certificate: p.tls}, Level: LevelLeaf}}}},
		{ID: "boot-only", Action: Allow, Signer: &SignerMatch{Cert: CertRef{Certificate: p.inter}, Level: LevelLeaf}, Paths: []string{"boot/**"}},
	}}
	audit := &Policy{ID: "b", Name: "b", Type: Base, Mode: Audit, Rules: []Rule{
		{ID: "ecdsa", Action: Allow, Signer: &SignerMatch{Cert: CertRef{Certificate: p.ecdsaLeaf}, Level: LevelLeaf}},
		{ID: "hash", Action: Allow, Hash: &HashMatch{Algorithm: AuthenticodeSHA256, Value: hashed[:]}},
	}}
	set, err := NewSet(SetOptions{TrustedRoots: []*signing.Certificate{p.root}}, base, audit)
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]*signing.Certificate{"leaf": p.leaf, "leaf copy": leafCopy, "rogue": p.rogue, "root": p.root, "tls": p.tls,
		"ecdsa": p.ecdsaLeaf, "inter": p.inter, "no EKU": p.noEKU, "expired": p.expired, "lifetime": p.lifetime}
	keys := map[string]string{}
	for n, c := range certs {
		keys[n] = set.SingleCertificateKey(c)
	}
	for _, n := range []string{"no EKU", "expired", "lifetime"} {
		if keys[n] != "" {
			t.Errorf("%s: a certificate no rule names has a key", n)
		}
	}
	for _, n := range []string{"leaf", "rogue", "root", "tls", "ecdsa", "inter"} {
		if keys[n] == "" {
			t.Errorf("%s: a certificate a rule names has no key", n)
		}
	}
	if keys["leaf"] != keys["leaf copy"] || keys["leaf"] == keys["rogue"] {
		t.Errorf("leaf and its copy: %q, %q; rogue %q", keys["leaf"], keys["leaf copy"], keys["rogue"])
	}
	judge := func(c *signing.Certificate, path string, digest []byte) Decision {
		s := Subject{Path: path, Format: FormatPE, Scenario: ScenarioBoot, Signed: true, Signatures: []*signing.Signature{verifiedby.Firmware(c, c.PublicKeyAlgorithm())}}
		s.Digests.Set(AuthenticodeSHA256, digest)
		return set.Evaluate(s)
	}
	other := sha256.Sum256([]byte("not allowed"))
	differ := 0
	for _, path := range []string{"boot/x", "other/x"} {
		for _, d := range [][]byte{hashed[:], other[:]} {
			for n, c := range certs {
				for m, e := range certs {
					a, b := judge(c, path, d), judge(e, path, d)
					same := a.Verdict == b.Verdict && a.Kind == b.Kind && a.Policy == b.Policy && a.Rule == b.Rule && a.Enforced == b.Enforced
					if keys[n] == keys[m] && !same {
						t.Errorf("%s and %s share a key, judged %+v and %+v (%s, %x)", n, m, a, b, path, d[:4])
					}
					if !same {
						differ++
					}
				}
			}
		}
	}
	if differ == 0 {
		t.Fatal("every certificate was judged alike: the test judges nothing")
	}
}
