package appx_test

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/testappx"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/appx"
)

// seeds are packages osslsigncode and csv signed, unsigned ones, a
// bundle, and cut and corrupted copies.
func seeds(f *testing.F) [][]byte {
	p := newPKI(f, testca.LeafOptions{})
	var out [][]byte
	for _, o := range []testappx.Options{{}, {DataDescriptor: true, CodeIntegrity: payload(2000, 5)}, {HashMethod: crypto.SHA384}, {Bundle: true}} {
		o.Files = files()[1:2] // small: the fuzzer mutates every byte
		unsigned := testappx.Build(f, o)
		signed := testappx.Sign(f, p.files, unsigned)
		mine := csvSign(f, p, unsigned, o.HashMethod)
		for _, b := range [][]byte{unsigned, signed, mine} {
			out = append(out, b, b[:len(b)-1], b[:len(b)/2], b[:len(b)-30])
			if i := bytes.Index(b, []byte("PKCX")); i > 0 {
				out = append(out, flip(b, i+60))
			}
			if i := bytes.LastIndex(b, []byte("AppxBlockMap.xml")); i > 0 {
				out = append(out, flip(b, i-10)) // its central record
			}
		}
	}
	return out
}

// FuzzParse: parsing a package, checking its block map, computing its
// digests and checking its signature never panic and fail only with
// malformed-input errors; the digests are deterministic and the size
// DigestSize says.
func FuzzParse(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkg, err := appx.Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("not malformed: %v", err)
			}
			return
		}
		if err := pkg.CheckBlockMap(); err != nil && !errors.Is(err, signing.ErrMalformed) {
			t.Fatalf("CheckBlockMap: not malformed: %v", err)
		}
		d1, err := pkg.Digests(crypto.SHA256)
		if err != nil {
			if !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("digests: not malformed: %v", err)
			}
			return
		}
		d2, err := pkg.Digests(crypto.SHA256)
		if err != nil || !bytes.Equal(d1[crypto.SHA256], d2[crypto.SHA256]) || len(d1[crypto.SHA256]) != pkg.DigestSize(crypto.SHA256) {
			t.Fatalf("digests not deterministic or of the wrong size: %v", err)
		}
		if err := authenticode.CheckStructure(pkg, nil); err != nil && !errors.Is(err, signing.ErrMalformed) {
			t.Fatalf("CheckStructure: %v", err)
		}
		if pkg.Signed() {
			if _, err := appx.Verify(pkg, d1, authenticode.VerifyOptions{}); err != nil && !errors.Is(err, signing.ErrMalformed) {
				t.Fatalf("Verify: %v", err)
			}
		}
	})
}

// FuzzBlockMap: the block map parser never panics, fails only with
// malformed-input errors, and what it accepts has a known hash method,
// hashes of its size and as many blocks as each file's size needs.
func FuzzBlockMap(f *testing.F) {
	for _, b := range seeds(f) {
		pkg, err := appx.Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			continue
		}
		e := pkg.Entry(appx.BlockMapName)
		if e == nil || e.Method != 0 && e.Method != 8 {
			continue
		}
		bm := extract(f, b, e)
		f.Add(bm)
		f.Add(bm[:len(bm)/2])
		f.Add(bytes.Replace(bm, []byte("<BlockMap "), []byte(`<!DOCTYPE x [<!ENTITY a "b">]><BlockMap `), 1))
		f.Add(bytes.Replace(bm, []byte(`Size="`), []byte(`Size="-`), 1))
	}
	f.Add([]byte(`<BlockMap xmlns="http://schemas.microsoft.com/appx/2010/blockmap" HashMethod="http://www.w3.org/2001/04/xmlenc#sha256"><File Name="a" Size="65537" LfhSize="31"><Block Hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="/><Block Hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="/></File><x:Ext xmlns:x="urn:x"><x:y/></x:Ext></BlockMap>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bm, err := appx.ParseBlockMap(b)
		if err != nil {
			if !errors.Is(err, signing.ErrMalformed) || bm != nil {
				t.Fatalf("not malformed, or a result with the error: %v", err)
			}
			return
		}
		if !bm.HashMethod.Available() {
			t.Fatalf("hash method %v", bm.HashMethod)
		}
		for _, f := range bm.Files {
			if int64(len(f.Blocks)) != (f.Size+appx.BlockSize-1)/appx.BlockSize {
				t.Fatalf("%q: %d bytes, %d blocks", f.Name, f.Size, len(f.Blocks))
			}
			for _, blk := range f.Blocks {
				if len(blk.Hash) != bm.HashMethod.Size() {
					t.Fatalf("%q: a hash of %d bytes", f.Name, len(blk.Hash))
				}
			}
		}
	})
}
