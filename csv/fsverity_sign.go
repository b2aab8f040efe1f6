package csv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"io"
	"os"

	"github.com/codesignval/csv/signing/fsverity"
)

// signFSVerity makes the fs-verity built-in signature of an ELF file whose
// signed output is out (to be renamed onto dest), as `fsverity sign --key K
// --cert C` makes it over the signed bytes (SHA-256 file digest, 4 KiB
// blocks, no salt; PKCS#7 with SHA-256 over the formatted digest), and
// writes it to the sidecar FILE.fsv.sig beside dest in the same
// all-or-nothing commit (p). The output is read again for its fs-verity
// digest once the handler has written it: handlers patch what they wrote
// (checksums, lengths), so no digest of the bytes as they go by would do.
func signFSVerity(opts *SignOptions, p *pending, s *Signed, out *os.File, dest, display string) error {
	st, err := out.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	d := fsverity.New()
	if _, err := io.Copy(d, io.NewSectionReader(out, 0, size)); err != nil {
		return fmt.Errorf("reading the signed output for its fs-verity digest: %w", err)
	}
	if d.Len() != size {
		return fmt.Errorf("reading the signed output for its fs-verity digest: %d bytes of %d", d.Len(), size)
	}
	sig, err := fsverity.Sign(d.Sum(nil), opts.Chain[0], opts.Key, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("making the fs-verity signature: %w", err)
	}
	sdest := dest + fsverity.SidecarSuffix
	if err := writeSidecar(opts, p, sdest, display+"'s fs-verity signature", "an fs-verity built-in signature", isFSVeritySidecar, sig); err != nil {
		return err
	}
	s.FSVeritySidecar = s.Output + fsverity.SidecarSuffix
	return nil
}

// isFSVeritySidecar takes b for an earlier fs-verity sidecar: a PKCS#7
// fsverity.ParseSignature reads.
func isFSVeritySidecar(b []byte) bool {
	_, err := fsverity.ParseSignature(b)
	return err == nil
}

// checkFSVerityOptions refuses, before anything is signed, a build key
// `fsverity sign` would refuse: one that is not the build certificate's
// (OpenSSL's PKCS7_sign_add_signer checks they match), or of a kind
// neither it nor the kernel's fs-verity keyring signs with (csv makes RSA
// and ECDSA signatures).
func checkFSVerityOptions(opts *SignOptions) error {
	if !opts.FSVerity {
		return nil
	}
	cert := opts.Chain[0]
	pub, ok := opts.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: fs-verity signatures: the key is not the build certificate %q's", ErrOptions, cert.Subject.CommonName)
	}
	switch cert.PublicKey.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return fmt.Errorf("%w: fs-verity signatures: the build certificate %q has a %T key: csv makes them with RSA or ECDSA keys", ErrOptions, cert.Subject.CommonName, cert.PublicKey)
	}
	return nil
}
