package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"time"
)

// CredentialFormat is the payload of a credential.
type CredentialFormat string

// Credential formats (attest/service.Config.CredentialFormat says which
// the service issues, and how).
const (
	// FormatToken, the default, is a compact JWS (a JWT) signed by the
	// service's CA key.
	FormatToken CredentialFormat = "token"
	// FormatX509 is an X.509 certificate for the AK's public key, issued
	// by the service's CA, with the claims in an extension.
	FormatX509 CredentialFormat = "x509"
	// FormatEAR is an EAR (EAT Attestation Result, draft-ietf-rats-ear):
	// a JWT signed by the service's CA key whose claims are the IETF RATS
	// attestation result's, for relying parties that speak it.
	FormatEAR CredentialFormat = "ear"
)

// Credential is the sealed post-attestation credential: a random 32-byte
// secret wrapped with TPM2_MakeCredential to the host's EK and its AK's
// Name, and the payload encrypted under that secret. Only the TPM that
// holds the EK, with the AK loaded, can run TPM2_ActivateCredential on
// IDObject and EncryptedSecret and recover the secret; [Open] then
// decrypts the payload.
type Credential struct {
	// Format is the payload's: "x509" (a DER certificate), "token" or
	// "ear" (a compact JWS).
	Format CredentialFormat `json:"format"`
	// IDObject is the TPM2B_ID_OBJECT's contents (credentialBlob of
	// TPM2_ActivateCredential); EncryptedSecret the
	// TPM2B_ENCRYPTED_SECRET's (secret).
	IDObject        []byte `json:"id_object"`
	EncryptedSecret []byte `json:"encrypted_secret"`
	// Ciphertext is a 12-byte nonce followed by AES-256-GCM of the payload
	// under the secret, with the additional data described at [Open].
	Ciphertext []byte `json:"ciphertext"`
	// ExpiresAt is the payload's end of validity.
	ExpiresAt time.Time `json:"expires_at"`
}

// credentialAAD is the additional data the payload's encryption binds.
func credentialAAD(format CredentialFormat, akName []byte) []byte {
	aad := []byte("csv-attest-credential/v1\x00")
	aad = append(aad, format...)
	aad = append(aad, 0)
	return append(aad, akName...)
}

// Encrypt is [Open]'s inverse, for the service: it encrypts a payload of
// the given format for the AK of Name akName under a 32-byte secret,
// reading the GCM nonce from rnd, and returns Credential.Ciphertext.
func Encrypt(rnd io.Reader, secret []byte, format CredentialFormat, akName, payload []byte) ([]byte, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	ct := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(payload)+gcm.Overhead())
	if _, err := io.ReadFull(rnd, ct); err != nil {
		return nil, err
	}
	return gcm.Seal(ct, ct, payload, credentialAAD(format, akName)), nil
}

// Open decrypts a credential's payload with the secret that
// TPM2_ActivateCredential returned, for the AK of Name akName. The payload
// is AES-256-GCM under the secret, with the 12-byte nonce that starts
// Ciphertext and the additional data "csv-attest-credential/v1\0" |
// format | "\0" | AK Name.
func Open(c *Credential, secret, akName []byte) ([]byte, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("service: the credential secret is %d bytes, want 32", len(secret))
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(c.Ciphertext) < gcm.NonceSize()+gcm.Overhead() {
		return nil, errors.New("service: the credential's ciphertext is truncated")
	}
	n := gcm.NonceSize()
	pt, err := gcm.Open(nil, c.Ciphertext[:n], c.Ciphertext[n:], credentialAAD(c.Format, akName))
	if err != nil {
		return nil, errors.New("service: the credential does not decrypt with this secret and AK")
	}
	return pt, nil
}
