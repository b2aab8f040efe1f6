// Package keys loads signing keys: a PEM private key file (plain or
// encrypted), a key in a cloud KMS, or a key on a PKCS#11 token, each as a
// crypto.Signer ([LoadSigner]).
//
// It is the only package of csv that links the cloud KMS SDKs (through
// sigstore's KMS providers for AWS, Google Cloud, Azure and HashiCorp
// Vault / OpenBao) and the PKCS#11 binding: packages that verify (signing,
// cipolicy, csv, attest) and packages that sign with a crypto.Signer they
// are given (signing/authenticode, signing/modsig, signing/bundle,
// signing/manifest, csv's signing pipeline) do not import it. The command
// line loads keys here and hands the signer on; checking that a key goes
// with its certificate chain is [signing.CheckSigningChain].
//
// # Security
//
// Key references come from the operator (a flag or a config file), never
// from the files being signed: a PKCS#11 reference names a shared library
// that is loaded into the process, and a KMS reference makes network calls
// with the ambient cloud credentials. See [LoadSigner] for the caps on key
// files and key derivation, and for where passwords and PINs may come from.
package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des" //nolint:gosec // DES-EDE3-CBC is one of the PBES2 ciphers openssl writes; decryption only.
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // hmacWithSHA1 is the PBKDF2 default PRF in PKCS#8 files.
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"golang.org/x/crypto/scrypt"

	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/signing"
)

// Errors of [LoadSigner] and [ParsePrivateKeyPEM]. Test for them with
// errors.Is.
var (
	// ErrWrongPassword: the password (or PKCS#11 PIN) does not open the key.
	ErrWrongPassword = errors.New("keys: wrong password")
	// ErrNoPassword: the key is encrypted and no password was given.
	ErrNoPassword = errors.New("keys: no password")
	// ErrUnsupportedKey: the key's type, size or curve is not supported.
	ErrUnsupportedKey = errors.New("keys: unsupported key")
	// ErrUnknownScheme: the key reference has a scheme csv does not know.
	ErrUnknownScheme = errors.New("keys: unknown key reference scheme")
	// ErrNotInBuild: the key reference needs support this binary was
	// built without (PKCS#11 without cgo).
	ErrNotInBuild = errors.New("keys: not supported in this build")
	// ErrKeyFile: the key file is unreadable, too large or malformed.
	ErrKeyFile = errors.New("keys: bad key file")
	// ErrPKCS11: the PKCS#11 URI, module or token failed.
	ErrPKCS11 = errors.New("keys: pkcs11")
	// ErrKMS: the KMS provider failed (credentials, network, key).
	ErrKMS = errors.New("keys: kms")
)

// DefaultPasswordEnv and DefaultPINEnv are the environment variables
// LoadSigner reads by default.
const (
	DefaultPasswordEnv = "CSV_KEY_PASSWORD"
	DefaultPINEnv      = "CSV_PKCS11_PIN"
)

// LoadOptions configure [LoadSigner]. The zero value is ready to use.
type LoadOptions struct {
	// PasswordEnv names the environment variable holding the password of an
	// encrypted PEM key (never a flag). Default "CSV_KEY_PASSWORD". A
	// variable that is set but empty is an empty password.
	PasswordEnv string
	// Password, if set, gives the password of an encrypted key file
	// (PEM or PKCS#12) in place of PasswordEnv, which is then not read:
	// the command line's --password-stdin and terminal prompt. It is
	// called only for a key that needs a password, at most once per
	// LoadSigner.
	Password func() ([]byte, error)
	// PINEnv names the environment variable holding the PIN of a PKCS#11
	// token when the URI has neither pin-value nor pin-source. Default
	// "CSV_PKCS11_PIN".
	PINEnv string
}

// Caps on key material.
const (
	maxKeyFile = 1 << 20
	// maxPBKDF2Iterations bounds the work an encrypted PKCS#8 key may ask
	// for (openssl writes 2048; OWASP suggests 600000 for SHA-256).
	maxPBKDF2Iterations = 10_000_000
	// maxScryptMemory bounds 128*N*r, the memory scrypt needs.
	maxScryptMemory = 256 << 20
	maxScryptP      = 16
	minRSABits      = 2048
)

// LoadSigner returns the signer for a key reference:
//
//   - a PEM private key file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC); RSA,
//     ECDSA, or Ed25519 (PKCS#8). Encrypted keys are opened with the
//     password from opts.Password, or else from the environment variable
//     opts.PasswordEnv: encrypted
//     PKCS#8 ("ENCRYPTED PRIVATE KEY", PBES2 with PBKDF2 or scrypt, AES-CBC
//     or 3DES-CBC: what openssl writes), legacy PEM encryption
//     ("Proc-Type: 4,ENCRYPTED", openssl -traditional), and the scrypt +
//     secretbox format of sigstore and cosign ("ENCRYPTED SIGSTORE PRIVATE
//     KEY", "ENCRYPTED COSIGN PRIVATE KEY", cosign generate-key-pair);
//   - a PKCS#12 file (.pfx, .p12: DER, told from PEM by its first bytes),
//     opened with [ParsePKCS12]: the signer returned is then a
//     [ChainSigner] carrying the file's certificate chain;
//   - a KMS reference, through sigstore's KMS providers: awskms://,
//     gcpkms://, azurekms://, hashivault:// (and openbao://). The
//     provider's credentials come from its usual environment. ctx is kept
//     for the signer's later calls: cancelling it makes signing fail;
//   - a PKCS#11 URI (RFC 7512) naming a private key on a token, for an HSM:
//     pkcs11:token=T;object=O?module-path=/usr/lib/x.so&pin-source=file:/p
//     (see "PKCS#11" below). The returned signer then also implements
//     io.Closer, which ends its session.
//
// The returned crypto.Signer's Public() is the key's public key. Signers
// other than file keys sign digests only (opts.HashFunc() must not be 0) and
// check each signature they get from the KMS or token against the public
// key before returning it.
//
// # PKCS#11
//
// Path attributes: token, manufacturer, model, serial, slot-id (to pick the
// token), object (the key's CKA_LABEL), id (its CKA_ID, percent-encoded)
// and type=private; object or id is required. Query attributes:
// module-path (required), and pin-value or pin-source (a file: URI or a
// path); without either, the PIN comes from the environment variable
// opts.PINEnv if it is set. Unknown or repeated attributes are refused.
// RSA (PKCS#1 v1.5 and PSS) and ECDSA P-256/384/521 keys sign on the token;
// an EC key needs its public key object beside it (softhsm2-util --import
// and pkcs11-tool --keypairgen make one).
//
// The token is driven through github.com/miekg/pkcs11, the maintained cgo
// binding that crypto11 and cosign's pkcs11key are built on, with a small
// crypto.Signer of our own; crypto11 itself was not taken (its module path
// moved twice in 2026, and csv needs none of its key management). Loading a
// PKCS#11 module needs cgo: in a build without cgo (CGO_ENABLED=0)
// pkcs11: references fail with ErrNotInBuild. Modules are loaded once per
// path and stay loaded for the life of the process.
//
// # Security
//
// Key references come from the operator (a flag or a config file), never
// from the files being signed: a PKCS#11 reference names a shared library
// that is loaded into the process, and a KMS reference makes network calls
// with the ambient cloud credentials. Only the schemes above reach
// sigstore's KMS code, so its plugin fallback (running a
// sigstore-kms-NAME program from PATH) is never used. Key files are read
// with a 1 MiB cap and strict PEM handling, and the key-derivation
// parameters of an encrypted key are capped (PBKDF2: 10 million iterations;
// scrypt: 256 MiB, p <= 16), so that a hostile key file cannot cost minutes
// or gigabytes. Passwords come from the environment or from
// opts.Password (the command line's standard input or terminal prompt),
// never from a flag (a flag shows in process listings and CI logs); a PKCS#11 PIN may come from
// the URI (pin-value: it then shows in process listings; print the URI only
// through [RedactKeyRef], as csv does), a file (pin-source) or the
// environment. Errors never include a PIN.
//
// RSA keys shorter than 2048 bits, ECDSA keys on curves other than P-256,
// P-384 and P-521, and other key types (DSA, X25519) are refused.
func LoadSigner(ctx context.Context, ref string, opts LoadOptions) (_ crypto.Signer, err error) {
	// Errors quote what they could not open (a key file, a module path), and
	// a PIN typed after the wrong separator, or in a URI not read as one
	// ("PKCS11:..."), is part of it.
	defer func() { err = scrubKeyRefSecrets(err, ref) }()
	if opts.PasswordEnv == "" {
		opts.PasswordEnv = DefaultPasswordEnv
	}
	if opts.PINEnv == "" {
		opts.PINEnv = DefaultPINEnv
	}
	switch {
	case ref == "":
		return nil, fmt.Errorf("%w: empty key reference", ErrKeyFile)
	case hasPKCS11Scheme(ref):
		u, err := parsePKCS11URI(ref)
		if err != nil {
			return nil, err
		}
		pin, err := u.pin(opts.PINEnv)
		if err != nil {
			return nil, err
		}
		return loadPKCS11(u, pin)
	case strings.Contains(ref, "://"):
		if IsKMSRef(ref) {
			return loadKMS(ctx, ref)
		}
		scheme := ref[:strings.Index(ref, "://")+3]
		return nil, fmt.Errorf("%w %q (want a file path, pkcs11:, or one of %s)", ErrUnknownScheme, scheme, strings.Join(kmsSchemes, ", "))
	}
	return loadKeyFile(ref, opts.PasswordEnv, opts.Password)
}

// hasPKCS11Scheme reports whether ref is a pkcs11: URI, in any letter case.
func hasPKCS11Scheme(ref string) bool {
	_, ok := cutPKCS11Scheme(ref)
	return ok
}

// loadKeyFile reads a PEM private key file.
func loadKeyFile(path, passwordEnv string, given func() ([]byte, error)) (crypto.Signer, error) {
	data, err := readCapped(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	var pw []byte
	var pwErr error
	asked := false
	password := func() ([]byte, error) {
		if asked {
			return pw, pwErr
		}
		asked = true
		if given != nil {
			pw, pwErr = given()
			return pw, pwErr
		}
		s, ok := os.LookupEnv(passwordEnv)
		if !ok {
			pwErr = fmt.Errorf("%w: %s is encrypted: set %s to its password", ErrNoPassword, path, passwordEnv)
			return nil, pwErr
		}
		pw = []byte(s)
		return pw, nil
	}
	if isPKCS12(data) {
		k, err := ParsePKCS12(data, password)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, path)
		}
		return k, nil
	}
	k, err := ParsePrivateKeyPEM(data, password)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// readCapped reads a regular file of at most max bytes, without waiting on
// a FIFO or reading a device (internal/safefile).
func readCapped(path string, max int64) ([]byte, error) {
	data, err := safefile.ReadFile(path, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// ParsePrivateKeyPEM parses a PEM private key (see [LoadSigner] for the
// formats). password is called only if the key is encrypted; it may return
// an error (such as one wrapping ErrNoPassword). Blocks other than keys
// ("EC PARAMETERS", "CERTIFICATE") are skipped; more than one key is an
// error.
func ParsePrivateKeyPEM(data []byte, password func() ([]byte, error)) (crypto.Signer, error) {
	var keyBlock *pem.Block
	var others []string
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.Contains(b.Type, "PRIVATE KEY") {
			others = append(others, b.Type)
			continue
		}
		if keyBlock != nil {
			return nil, fmt.Errorf("%w: more than one private key", ErrKeyFile)
		}
		keyBlock = b
	}
	if keyBlock == nil {
		if len(others) > 0 {
			return nil, fmt.Errorf("%w: no private key (found %s)", ErrKeyFile, strings.Join(others, ", "))
		}
		return nil, fmt.Errorf("%w: not a PEM file", ErrKeyFile)
	}
	key, err := decodeKeyBlock(keyBlock, password)
	if err != nil {
		return nil, err
	}
	return checkKey(key)
}

func decodeKeyBlock(b *pem.Block, password func() ([]byte, error)) (any, error) {
	switch b.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8: %w", ErrKeyFile, err)
		}
		return k, nil
	case "RSA PRIVATE KEY", "EC PRIVATE KEY":
		der := b.Bytes
		encrypted := x509.IsEncryptedPEMBlock(b) //nolint:staticcheck // legacy PEM encryption is still written by openssl -traditional.
		if encrypted {
			pw, err := password()
			if err != nil {
				return nil, err
			}
			der, err = x509.DecryptPEMBlock(b, pw) //nolint:staticcheck // see above; a wrong password is detected by the padding and the parse.
			if errors.Is(err, x509.IncorrectPasswordError) {
				return nil, ErrWrongPassword
			}
			if err != nil {
				return nil, fmt.Errorf("%w: legacy PEM encryption: %w", ErrKeyFile, err)
			}
		}
		var k any
		var err error
		if b.Type == "RSA PRIVATE KEY" {
			k, err = x509.ParsePKCS1PrivateKey(der)
		} else {
			k, err = x509.ParseECPrivateKey(der)
		}
		if err != nil {
			if encrypted {
				return nil, ErrWrongPassword // CBC padding can pass by chance; the DER then does not
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, b.Type, err)
		}
		return k, nil
	case "ENCRYPTED PRIVATE KEY":
		pw, err := password()
		if err != nil {
			return nil, err
		}
		der, err := decryptPKCS8(b.Bytes, pw)
		if err != nil {
			return nil, err
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, ErrWrongPassword
		}
		return k, nil
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		pw, err := password()
		if err != nil {
			return nil, err
		}
		der, err := encrypted.Decrypt(b.Bytes, pw)
		if err != nil {
			// secretbox is authenticated: failing to open is a wrong
			// password (or a tampered file); the library has no sentinel.
			if err.Error() == "encrypted: decryption failed" {
				return nil, ErrWrongPassword
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, b.Type, err)
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, b.Type, err)
		}
		return k, nil
	case "OPENSSH PRIVATE KEY", "DSA PRIVATE KEY":
		return nil, fmt.Errorf("%w: %s (convert it to PKCS#8 with openssl or ssh-keygen -m PKCS8)", ErrUnsupportedKey, b.Type)
	}
	return nil, fmt.Errorf("%w: PEM type %q", ErrUnsupportedKey, b.Type)
}

// checkKey accepts RSA of 2048 bits or more, ECDSA on P-256/384/521 and
// Ed25519.
func checkKey(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (at least %d)", ErrUnsupportedKey, k.N.BitLen(), minRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: key type %T", ErrUnsupportedKey, k)
}

// PKCS#8 encryption (RFC 8018 PBES2, RFC 7914 scrypt).
var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt      []byte
	N         int
	R         int
	P         int
	KeyLength int `asn1:"optional"`
}

func unmarshalStrict(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data")
	}
	return nil
}

// decryptPKCS8 decrypts an EncryptedPrivateKeyInfo (PBES2 only: PBES1's
// DES and RC2 schemes are refused).
func decryptPKCS8(der, password []byte) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: encrypted PKCS#8: %s", ErrKeyFile, fmt.Sprintf(format, args...))
	}
	var info encryptedPrivateKeyInfo
	if err := unmarshalStrict(der, &info); err != nil {
		return nil, bad("%v", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("%w: encrypted PKCS#8 with scheme %v (only PBES2 is supported)", ErrUnsupportedKey, info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if err := unmarshalStrict(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, bad("PBES2 parameters: %v", err)
	}

	// The cipher first: it fixes the key length.
	var keyLen int
	var newCipher func(key []byte) (cipher.Block, error)
	switch alg := params.EncryptionScheme.Algorithm; {
	case alg.Equal(oidAES128CBC):
		keyLen, newCipher = 16, aes.NewCipher
	case alg.Equal(oidAES192CBC):
		keyLen, newCipher = 24, aes.NewCipher
	case alg.Equal(oidAES256CBC):
		keyLen, newCipher = 32, aes.NewCipher
	case alg.Equal(oidDESEDE3CBC):
		keyLen, newCipher = 24, des.NewTripleDESCipher
	default:
		return nil, fmt.Errorf("%w: encrypted PKCS#8 cipher %v", ErrUnsupportedKey, alg)
	}
	var iv []byte
	if err := unmarshalStrict(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil {
		return nil, bad("IV: %v", err)
	}

	var key []byte
	switch kdf := params.KeyDerivationFunc; {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if err := unmarshalStrict(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, bad("PBKDF2 parameters: %v", err)
		}
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return nil, bad("PBKDF2 iteration count %d (at most %d)", p.Iterations, maxPBKDF2Iterations)
		}
		if p.KeyLength != 0 && p.KeyLength != keyLen {
			return nil, bad("PBKDF2 key length %d for a %d-byte cipher key", p.KeyLength, keyLen)
		}
		var h func() hash.Hash
		switch prf := p.PRF.Algorithm; {
		case len(prf) == 0 || prf.Equal(oidHMACSHA1):
			h = sha1.New
		case prf.Equal(oidHMACSHA224):
			h = sha256.New224
		case prf.Equal(oidHMACSHA256):
			h = sha256.New
		case prf.Equal(oidHMACSHA384):
			h = sha512.New384
		case prf.Equal(oidHMACSHA512):
			h = sha512.New
		default:
			return nil, fmt.Errorf("%w: PBKDF2 PRF %v", ErrUnsupportedKey, prf)
		}
		var err error
		if key, err = pbkdf2.Key(h, string(password), p.Salt, p.Iterations, keyLen); err != nil {
			return nil, bad("PBKDF2: %v", err)
		}
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if err := unmarshalStrict(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, bad("scrypt parameters: %v", err)
		}
		if p.N < 2 || p.N&(p.N-1) != 0 || p.R < 1 || p.P < 1 || p.P > maxScryptP ||
			int64(p.N)*int64(p.R) > maxScryptMemory/128 {
			return nil, bad("scrypt parameters N=%d r=%d p=%d over the caps", p.N, p.R, p.P)
		}
		if p.KeyLength != 0 && p.KeyLength != keyLen {
			return nil, bad("scrypt key length %d for a %d-byte cipher key", p.KeyLength, keyLen)
		}
		var err error
		if key, err = scrypt.Key(password, p.Salt, p.N, p.R, p.P, keyLen); err != nil {
			return nil, bad("scrypt: %v", err)
		}
	default:
		return nil, fmt.Errorf("%w: encrypted PKCS#8 key derivation %v", ErrUnsupportedKey, kdf.Algorithm)
	}

	block, err := newCipher(key)
	if err != nil {
		return nil, bad("%v", err)
	}
	bs := block.BlockSize()
	if len(iv) != bs {
		return nil, bad("IV of %d bytes for a %d-byte block", len(iv), bs)
	}
	data := info.EncryptedData
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, bad("ciphertext of %d bytes is not a multiple of the block size", len(data))
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	// PKCS#7 padding: a wrong password almost always breaks it.
	n := int(out[len(out)-1])
	if n == 0 || n > bs || !bytes.Equal(out[len(out)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, ErrWrongPassword
	}
	return out[:len(out)-n], nil
}

// verifyDigestSignature checks sig as crypto.Signer.Sign would have made it.
func verifyDigestSignature(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts, sig []byte) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(p, pss.Hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: pss.Hash})
		}
		return rsa.VerifyPKCS1v15(p, opts.HashFunc(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return signing.ErrSignature
		}
		return nil
	}
	return fmt.Errorf("%w: public key type %T", ErrUnsupportedKey, pub)
}
