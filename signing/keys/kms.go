package keys

// KMS keys, through sigstore's KMS providers. This file is why package keys
// is the only one of csv that links the cloud SDKs: the providers register
// their schemes with kms.Get when imported.

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"

	// The KMS providers register their schemes with kms.Get.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// kmsSchemes are the KMS key reference prefixes LoadSigner hands to
// sigstore's KMS providers.
var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://", "openbao://"}

// kmsSigner adapts a sigstore KMS signer: it caches the public key and
// checks each signature against it.
type kmsSigner struct {
	inner crypto.Signer
	pub   crypto.PublicKey
	ref   string
}

func loadKMS(ctx context.Context, ref string) (crypto.Signer, error) {
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
