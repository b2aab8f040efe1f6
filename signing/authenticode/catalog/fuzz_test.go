package catalog_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/catalog"
)

// FuzzParse runs Parse and Verify on arbitrary bytes, seeded with catalogs
// csv signs (v1 and v2), an unsigned one, osslsigncode-compatible ones cut
// short, and Microsoft's hyperv.cat where the module cache has it. Parse
// returns a catalog or a malformed-input error, never both and never a
// panic; a parsed member's digest is its algorithm's size; Verify admits
// only what it verified.
func FuzzParse(f *testing.F) {
	p := newPKI(f)
	a := testbin.PE(testbin.PEOptions{Data: []byte("fuzz")})
	v2 := p.signedCatalog(f, 2, entry(f, "a.exe", a, crypto.SHA256), entry(f, "b.txt", []byte("text"), crypto.SHA256))
	v1 := p.signedCatalog(f, 1, entry(f, "a.exe", a, crypto.SHA1))
	ctl, err := catalog.Build([]catalog.Entry{entry(f, "a.exe", a, crypto.SHA256)}, catalog.BuildOptions{
		Attributes: []catalog.NameValue{{Name: "OSAttr", Value: "2:10.0"}}})
	if err != nil {
		f.Fatal(err)
	}
	unsigned, err := catalog.Unsigned(ctl)
	if err != nil {
		f.Fatal(err)
	}
	// Hostile shapes: a member whose tag is another digest than its
	// SPC_INDIRECT_DATA one (it admits nothing), and a signature nested in
	// the catalog's over the same list.
	e := entry(f, "a.exe", a, crypto.SHA256)
	var tag, other []byte
	for _, r := range strings.ToUpper(hex.EncodeToString(e.Digest)) {
		tag = append(tag, byte(r), 0)
	}
	for _, r := range strings.Repeat("0", 64) {
		other = append(other, byte(r), 0)
	}
	s := p.signer(f, authenticode.SignOptions{})
	mistagged, err := catalog.Sign(context.Background(), s, bytes.Replace(ctl, tag, other, 1))
	if err != nil {
		f.Fatal(err)
	}
	outer, err := catalog.Sign(context.Background(), s, ctl)
	if err != nil {
		f.Fatal(err)
	}
	nested, err := authenticode.Nest(outer, outer)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{v2, v1, unsigned, mistagged, nested} {
		f.Add(seed)
		f.Add(seed[:len(seed)/2])
		f.Add(seed[:len(seed)-1])
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := catalog.Parse(der)
		if err != nil {
			if c != nil {
				t.Fatal("a catalog and an error")
			}
			if !errors.Is(err, signing.ErrMalformed) && !errors.Is(err, signing.ErrInternal) {
				t.Fatalf("error %v is not malformed input", err)
			}
			if errors.Is(err, signing.ErrInternal) {
				t.Fatalf("internal error: %v", err)
			}
			return
		}
		for _, m := range c.Members {
			if m.Digest != nil && len(m.Digest) != m.Algorithm.Size() {
				t.Fatalf("member %s: a %d-byte %v digest", m.Tag, len(m.Digest), m.Algorithm)
			}
		}
		sigs, v, err := c.Verify(authenticode.VerifyOptions{})
		if v != nil && (err != nil || !v.Signer().Verified() || sigs[0] != v.Signer()) {
			t.Fatalf("a verified catalog whose signer is not verified (err %v)", err)
		}
		if v == nil && err == nil {
			t.Fatal("neither a verified catalog nor an error")
		}
		if v != nil {
			for m := range v.Members() {
				if !m.Tagged() || len(v.Lookup(m.Algorithm, m.Digest)) == 0 {
					t.Fatalf("member %s: indexed but not tagged with its digest, or not found", m.Tag)
				}
			}
			for _, sig := range v.Signatures() {
				if !sig.Verified() {
					t.Fatal("an unverified signature among a verified catalog's")
				}
			}
		}
	})
}
