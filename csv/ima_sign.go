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
	if err := writeSidecar(opts, p, sdest, display+"'s IMA signature", "an IMA signature (a detached OpenPGP signature?)", isIMASidecar, v); err != nil {
		return err
	}
	s.IMASidecar = s.Output + ".sig"
	return nil
}

// writeSidecar writes data to sdest (beside a signed file) in the same
// all-or-nothing commit (p), claimed for what. An existing sdest is
// replaced only when it is a regular file of at most
// limits.MaxDetachedSignature bytes that isOurs takes for a sidecar of the
// same kind (an earlier run's): anything else fails the run, naming the
// file as not being want, before anything changes.
func writeSidecar(opts *SignOptions, p *pending, sdest, what, want string, isOurs func([]byte) bool, data []byte) error {
	if err := opts.claims.claim(sdest, what); err != nil {
		return err
	}
	if err := checkOldSidecar(opts, sdest, want, isOurs); err != nil {
		return err
	}
	f, name, err := createTemp(opts, sdest, 0o644)
	if err != nil {
		return err
	}
	p.temps, p.dests = append(p.temps, name), append(p.dests, sdest)
	_, werr := f.Write(data)
	var serr error
	if !batchSync {
		serr = f.Sync()
	}
	if cerr := f.Close(); werr == nil && serr == nil {
		werr = cerr
	}
	if werr != nil || serr != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(sdest), errors.Join(werr, serr))
	}
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

// checkOldSidecar refuses to replace a sidecar sdest that isOurs does not
// take for one of the kind being written (a FILE.sig that is a detached
// OpenPGP signature, say): only an earlier sidecar of that kind is
// replaced.
func checkOldSidecar(opts *SignOptions, sdest, want string, isOurs func([]byte) bool) error {
	st, err := opts.tree.lstat(sdest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file: csv does not replace it", filepath.Base(sdest))
	}
	f, _, err := opts.tree.openRegular(sdest)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limits.MaxDetachedSignature+1))
	if err != nil {
		return err
	}
	if len(b) > limits.MaxDetachedSignature || !isOurs(b) {
		return fmt.Errorf("%s exists and is not %s: csv does not replace it", filepath.Base(sdest), want)
	}
	return nil
}

// isIMASidecar takes b for an earlier IMA sidecar: a value ima.Parse reads,
// or one of an IMA type it does not (a digest, a version it refuses).
func isIMASidecar(b []byte) bool {
	if _, err := ima.Parse(b); err == nil {
		return true
	}
	return len(b) > 0 && len(b) <= limits.MaxIMAValue && b[0] >= byte(ima.TypeDigest) && b[0] <= byte(ima.TypeVerityDigsig)
}
