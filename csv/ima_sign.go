package csv

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/codesignval/csv/internal/limits"

	"github.com/codesignval/csv/signing/ima"
)

// IMAMode says whether and where csv sign writes IMA signatures.
type IMAMode string

// IMA modes.
const (
	// IMAOff writes none.
	IMAOff IMAMode = ""
	// IMAXattr writes each signed binary's security.ima attribute, or,
	// where its file system or the user cannot set it (no extended
	// attributes, not root), its sidecar FILE.sig, with a warning.
	IMAXattr IMAMode = "xattr"
	// IMASidecar writes the sidecar FILE.sig, as `evmctl ima_sign
	// --sigfile` does, which `evmctl ima_setxattr --sigfile` or a package
	// manager turns into the attribute at install.
	IMASidecar IMAMode = "sidecar"
)

// signIMA makes the IMA signature (digital signature v2, SHA-256) of a
// binary whose signed output out (to be renamed onto dest) has the
// SHA-256 sum, and stores it in out's security.ima or in a sidecar
// written beside dest in the same all-or-nothing commit (p).
func signIMA(opts *SignOptions, p *pending, s *Signed, out *os.File, dest, display string, sum []byte) error {
	v, err := ima.Sign(sum, crypto.SHA256, opts.Key, opts.Chain[0])
	if err != nil {
		return fmt.Errorf("making the IMA signature: %w", err)
	}
	if opts.IMA == IMAXattr && out != nil {
		err := setIMAXattr(out, v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNoXattr) {
			return fmt.Errorf("setting %s: %w", ima.XattrName, err)
		}
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s cannot be set here (%v): the IMA signature is in the sidecar %s.sig", ima.XattrName, err, s.Output))
	}
	sdest := dest + ".sig"
	if err := opts.claims.claim(sdest, display+"'s IMA signature"); err != nil {
		return err
	}
	if err := checkOldSidecar(opts, sdest); err != nil {
		return err
	}
	f, name, err := createTemp(opts, sdest, 0o644)
	if err != nil {
		return err
	}
	p.temps, p.dests = append(p.temps, name), append(p.dests, sdest)
	_, werr := f.Write(v)
	var serr error
	if !batchSync {
		serr = f.Sync()
	}
	if cerr := f.Close(); werr == nil && serr == nil {
		werr = cerr
	}
	if werr != nil || serr != nil {
		return fmt.Errorf("writing the IMA sidecar: %w", errors.Join(werr, serr))
	}
	s.IMASidecar = s.Output + ".sig"
	return nil
}

// checkIMAOptions refuses, before anything is signed, an IMA mode csv
// does not know and a build certificate the kernel could not find an IMA
// signature's key by (one without a subject key identifier).
func checkIMAOptions(opts *SignOptions) error {
	switch opts.IMA {
	case IMAOff:
		return nil
	case IMAXattr, IMASidecar:
	default:
		return fmt.Errorf("%w: unknown IMA mode %q (want %q or %q)", ErrOptions, opts.IMA, IMAXattr, IMASidecar)
	}
	if len(opts.Chain[0].SubjectKeyId) < 4 {
		return fmt.Errorf("%w: IMA signatures: the build certificate %q has no subject key identifier, by which the kernel's keyring finds IMA keys", ErrOptions, opts.Chain[0].Subject.CommonName)
	}
	return nil
}

// checkOldSidecar refuses to replace a FILE.sig that is not an IMA
// signature (a detached OpenPGP signature, say): only an earlier IMA
// sidecar is replaced.
func checkOldSidecar(opts *SignOptions, sdest string) error {
	st, err := opts.tree.lstat(sdest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file: csv does not replace it with an IMA signature", filepath.Base(sdest))
	}
	f, _, err := opts.tree.openRegular(sdest)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limits.MaxIMAValue+1))
	if err != nil {
		return err
	}
	if _, perr := ima.Parse(b); perr != nil && (len(b) == 0 || len(b) > limits.MaxIMAValue || b[0] < byte(ima.TypeDigest) || b[0] > byte(ima.TypeVerityDigsig)) {
		return fmt.Errorf("%s exists and is not an IMA signature (a detached OpenPGP signature?): csv does not replace it", filepath.Base(sdest))
	}
	return nil
}
