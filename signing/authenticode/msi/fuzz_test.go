package msi_test

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// FuzzParse: parsing a package, computing its digest and checking its
// signature streams never panic, and fail only with malformed-input
// errors; a parsed package's digest is deterministic.
func FuzzParse(f *testing.F) {
	p := newPKI(f)
	unsigned := build(f)
	signed := testmsi.Sign(f, p.files, unsigned)
	dse := testmsi.Sign(f, p.files, unsigned, "-add-msi-dse")
	for _, b := range [][]byte{unsigned, signed, dse} {
		f.Add(b)
		f.Add(b[:len(b)-512])
		f.Add(b[:len(b)/2])
		if i := bytes.Index(b, []byte{0x30, 0x82}); i > 0 { // the signature's DER
			f.Add(flip(b, i+40))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkg, err := msi.Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("not malformed: %v", err)
			}
			return
		}
		d1, err := pkg.Digest(crypto.SHA256)
		if err != nil {
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("digest: not malformed: %v", err)
			}
			return
		}
		d2, err := pkg.Digest(crypto.SHA256)
		if err != nil || !bytes.Equal(d1[crypto.SHA256], d2[crypto.SHA256]) {
			t.Fatalf("digest not deterministic: %v", err)
		}
		if err := pkg.CheckEx(); err != nil && !errors.Is(err, signing.ErrMalformed) {
			t.Fatalf("CheckEx: %v", err)
		}
		if err := authenticode.CheckStructure(pkg, nil); err != nil && !errors.Is(err, signing.ErrMalformed) {
			t.Fatalf("CheckStructure: %v", err)
		}
	})
}
