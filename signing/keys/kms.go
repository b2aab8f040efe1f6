package keys

// KMS keys, through sigstore's KMS providers. The providers (and the cloud
// SDKs under them) are linked by package keys/kmsproviders, which only
// cmd/csv-kms imports: csv itself starts without them (their package
// initialisation cost 3-7 ms a run, and they doubled the binary), and hands
// a command whose key is a KMS reference to csv-kms (internal/cli).

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// kmsSchemes are the KMS key reference prefixes LoadSigner hands to
// sigstore's KMS providers.
var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://", "openbao://"}

// IsKMSRef reports whether ref names a KMS key (one of the schemes above).
func IsKMSRef(ref string) bool {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// KMSLinked reports whether this binary links the KMS providers
// (package kmsproviders).
func KMSLinked() bool { return len(kms.SupportedProviders()) > 0 }

// providerLinked reports whether a linked provider takes ref. kms.Get is
// never asked otherwise: for a scheme without a provider it would run a
// sigstore-kms-SCHEME plugin found on $PATH.
func providerLinked(ref string) bool {
	for _, p := range kms.SupportedProviders() {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return false
}

// kmsSigner adapts a sigstore KMS signer: it caches the public key and
// checks each signature against it.
type kmsSigner struct {
	inner crypto.Signer
	pub   crypto.PublicKey
	ref   string
}

func loadKMS(ctx context.Context, ref string) (crypto.Signer, error) {
	if !providerLinked(ref) {
		return nil, fmt.Errorf("%w: %s: KMS keys are loaded by csv-kms, the build of csv with the cloud KMS providers (csv runs it when it is installed beside csv)", ErrNotInBuild, ref)
	}
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		var nf *kms.ProviderNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s: no provider in this build", ErrNotInBuild, ref)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrKMS, ref, err)
	}
	pub, err := sv.PublicKey(options.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: fetching the public key: %w", ErrKMS, ref, err)
	}
	if pub == nil {
		return nil, fmt.Errorf("%w: %s: the provider returned no public key", ErrKMS, ref)
	}
	cs, _, err := sv.CryptoSigner(ctx, func(error) {})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKMS, ref, err)
	}
	return &kmsSigner{inner: cs, pub: pub, ref: ref}, nil
}

func (k *kmsSigner) Public() crypto.PublicKey { return k.pub }

func (k *kmsSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := opts.(*rsa.PSSOptions); ok {
		return nil, fmt.Errorf("%w: %s: RSA-PSS is not supported through KMS providers", ErrUnsupportedKey, k.ref)
	}
	if opts == nil || opts.HashFunc() == 0 {
		return nil, fmt.Errorf("%w: %s: KMS signers sign digests only", ErrUnsupportedKey, k.ref)
	}
	sig, err := k.inner.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: signing: %w", ErrKMS, k.ref, err)
	}
	if err := verifyDigestSignature(k.pub, digest, opts, sig); err != nil {
		return nil, fmt.Errorf("%w: %s: the signature returned does not verify with the key's public key: %w", ErrKMS, k.ref, err)
	}
	return sig, nil
}
