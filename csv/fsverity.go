package csv

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/signing/fsverity"
)

// fs-verity built-in signatures in a run.
//
// A file's built-in signature is the DER PKCS#7 `fsverity sign FILE SIG`
// writes, which the kernel takes with FS_IOC_ENABLE_VERITY; it is stored
// nowhere in the file, so csv reads it from a sidecar beside a loose file:
// FILE.fsv.sig (fsverity.SidecarSuffix). For a file of a format the
// fs-verity digest applies to (ELF), when the needs ask for signatures,
// the sidecar is read (capped at limits.MaxDetachedSignature) and parsed
// before the file streams, the fs-verity digest is added to the one read,
// and the signature is verified against it afterwards, with the run's
// certificates (fs-verity signatures carry none): it joins the file's
// signatures as Format "fsverity", judged by signer rules as any other. A
// sidecar that cannot be read or parsed makes the file malformed (fail
// closed: a signature csv cannot judge is never ignored). Container
// members have no sidecars.

// fsveritySig is a loose file's parsed sidecar signature.
type fsveritySig struct {
	name string // the sidecar's base name, for messages
	sig  *fsverity.Signature
}

// fsveritySidecar reads the sidecar of the loose file in.fsverityPath when
// the needs ask for signatures of a format with an fs-verity digest: nil
// when there is none.
func fsveritySidecar(in *Inspection, need cipolicy.Needs) (*fsveritySig, error) {
	if in.fsverityPath == "" || !need.Signatures || !cipolicy.FSVeritySHA256.AppliesTo(in.Format) {
		return nil, nil
	}
	p := in.fsverityPath + fsverity.SidecarSuffix
	name := filepath.Base(p)
	b, err := safefile.ReadFile(p, limits.MaxDetachedSignature)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, safefile.ErrTooLarge):
		return nil, &format.MalformedError{Format: in.Format, Offset: -1, Reason: fmt.Sprintf("fs-verity signature %s: %v", name, err)}
	case err != nil:
		return nil, fmt.Errorf("reading the fs-verity signature %s: %w", name, err)
	}
	sig, err := fsverity.ParseSignature(b)
	if err != nil {
		return nil, &format.MalformedError{Format: in.Format, Offset: -1, Reason: fmt.Sprintf("fs-verity signature %s: %v", name, err), Err: err}
	}
	return &fsveritySig{name: name, sig: sig}, nil
}

// verify verifies the sidecar's signature against the digest the read
// computed and adds it to the file's signatures.
func (s *fsveritySig) verify(in *Inspection, opts *format.InspectOptions) {
	v := s.sig.VerifyCached(in.Digests.Get(cipolicy.FSVeritySHA256), opts.Certificates, opts.Cache)
	in.Signatures = append(in.Signatures, v)
	in.signed = true
}
