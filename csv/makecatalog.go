package csv

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/catalog"
	"github.com/codesignval/csv/signing/authenticode/ps"
)

// CatalogOptions configure MakeCatalog.
type CatalogOptions struct {
	// Jobs, Include, Exclude and FollowSymlinks select and read the files
	// as validation does.
	Jobs             int
	Include, Exclude []string
	FollowSymlinks   bool
	// Key and Chain sign the catalog; Authenticode configures the
	// signature (hash, description, URL, TSA). Its Append is ignored.
	Key          crypto.Signer
	Chain        []*x509.Certificate
	Authenticode authenticode.SignOptions
	// Expect, if not nil, holds the digests validation saw (by display
	// path): a file read otherwise is not catalogued, and the run fails.
	Expect map[string]cipolicy.Digests
}

// CatalogMember is a file a catalog lists.
type CatalogMember struct {
	Path   string
	Format Format
	Kind   catalog.Kind
}

// CatalogResult is what MakeCatalog wrote.
type CatalogResult struct {
	// Members are the files listed, in discovery order; Skipped the files
	// under the roots it did not list, with why (catalogs themselves, and
	// files that only start like a binary).
	Members []CatalogMember
	Skipped []string
	// DER is the signed catalog.
	DER []byte
	// Warnings are the signer's (authenticode.WarningECDSA).
	Warnings []string
}

// MakeCatalog writes a security catalog (v2: SHA256 members) of the files under roots, signed
// with opts.Key: each PE file by its Authenticode image hash, every other
// file by its flat hash (PowerShell scripts too, until their SIP hash is
// known to csv), named by its base name, as makecat lists a driver
// package. Catalogs under the roots are not listed. It reads each file
// once, with the validation's discovery, and fails, listing nothing, when
// a file cannot be read, is a PE file that cannot be parsed, or changed
// since opts.Expect's validation.
func MakeCatalog(ctx context.Context, opts CatalogOptions, roots ...string) (*CatalogResult, error) {
	// A v2 catalog (SHA256 members): the pipeline computes no flat SHA1,
	// which a v1 catalog's flat members need (catalog.Build writes v1
	// catalogs of given digests).
	h, flat, image := crypto.SHA256, cipolicy.SHA256, cipolicy.AuthenticodeSHA256
	s, err := authenticode.NewSigner(opts.Key, opts.Chain, opts.Authenticode)
	if err != nil {
		return nil, err
	}
	vopts := Options{Jobs: opts.Jobs, Include: opts.Include, Exclude: opts.Exclude, FollowSymlinks: opts.FollowSymlinks}
	w, err := startWalk(ctx, &vopts, roots)
	if err != nil {
		return nil, err
	}
	needs := func(_ string, f cipolicy.Format) cipolicy.Needs {
		var d cipolicy.DigestSet
		switch f {
		case cipolicy.FormatPE, cipolicy.FormatPowerShell:
			d = d.With(image)
		case cipolicy.FormatCatalog:
		default:
			d = d.With(flat)
		}
		return cipolicy.Needs{Digests: d.With(cipolicy.SHA256)}
	}
	res := &CatalogResult{}
	var entries []catalog.Entry
	err = inspectInOrder(ctx, &vopts, w, needs, nil, func(e *entry, in *Inspection) error {
		display := displayPath(roots[e.root], e.rel, e.fileRoot)
		switch {
		case e.skipped != nil:
			return nil
		case e.problem != nil:
			return fmt.Errorf("catalog: %s: %w", display, e.problem)
		case in.Err != nil:
			return fmt.Errorf("catalog: %w", in.Err)
		case in.Format == cipolicy.FormatCatalog:
			res.Skipped = append(res.Skipped, display+": a catalog")
			return nil
		}
		if opts.Expect != nil {
			if err := expectSame(display, in, opts.Expect[display]); err != nil {
				return err
			}
		}
		kind, alg := catalog.KindFlat, flat
		var data authenticode.IndirectData
		var sip string
		switch in.Format {
		case cipolicy.FormatPE:
			kind, alg = catalog.KindPE, image
		case cipolicy.FormatPowerShell:
			// Listed by the hash PowerShell's SIP computes, which
			// Windows looks a script up by.
			kind, alg, data, sip = catalog.KindSIP, image, ps.IndirectData(), ps.SIP
		}
		d := in.Digests.Get(alg)
		if d == nil {
			// A file that only starts like a binary ("MZ" text) is not
			// hashed by inspection: it is not listed.
			res.Skipped = append(res.Skipped, display+": starts like a binary but is none")
			return nil
		}
		name := path.Base(filepath.ToSlash(e.rel))
		entries = append(entries, catalog.Entry{Name: name, Kind: kind, Hash: h, Digest: d, Data: data, SIP: sip})
		if kind == catalog.KindSIP {
			// osslsigncode verify -catalog looks a script up by its flat
			// hash: list that too, so that both find it.
			if f := in.Digests.Get(flat); f != nil {
				entries = append(entries, catalog.Entry{Name: name, Kind: catalog.KindFlat, Hash: h, Digest: f})
			}
		}
		res.Members = append(res.Members, CatalogMember{Path: display, Format: in.Format, Kind: kind})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("catalog: no file to list under %v", roots)
	}
	ctl, err := catalog.Build(entries, catalog.BuildOptions{Version: 2})
	if err != nil {
		return nil, err
	}
	if res.DER, err = catalog.Sign(ctx, s, ctl); err != nil {
		return nil, err
	}
	if _, ok := opts.Chain[0].PublicKey.(*ecdsa.PublicKey); ok {
		res.Warnings = append(res.Warnings, authenticode.WarningECDSA)
	}
	return res, nil
}

// expectSame refuses a file whose digests differ from what validation saw.
func expectSame(display string, in *Inspection, want cipolicy.Digests) error {
	if want == nil {
		if in.Format == FormatOther {
			return nil // validation judges no such file
		}
		return fmt.Errorf("catalog: %s was not validated", display)
	}
	for _, a := range []cipolicy.HashAlgorithm{cipolicy.SHA256, cipolicy.AuthenticodeSHA256} {
		w, got := want.Get(a), in.Digests.Get(a)
		if w != nil && got != nil && string(w) != string(got) {
			return fmt.Errorf("catalog: %s: the file changed after it was validated: %s %x then, %x now", display, a, w, got)
		}
	}
	return nil
}

// WriteCatalog writes der to path whole: a temporary file beside it,
// synced, then renamed into place.
func WriteCatalog(path string, der []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".csv-catalog-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(der); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
