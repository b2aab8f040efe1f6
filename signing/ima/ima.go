// Package ima reads, verifies and makes the values of Linux's security.ima
// extended attribute: the IMA appraisal signatures `evmctl ima_sign` writes
// (digital signature version 2, over the file's digest) and the version 3
// signatures over a file's fs-verity digest, and recognises the other
// values the attribute can hold (file digests, EVM values) so that a caller
// can say what a file carries instead of skipping it.
//
// A value starts with its type (enum evm_ima_xattr_type in the kernel's
// security/integrity/integrity.h):
//
//	0x01 IMA_XATTR_DIGEST       a SHA-1 digest (20 bytes), the oldest form
//	0x02 EVM_XATTR_HMAC         an EVM HMAC (belongs in security.evm)
//	0x03 EVM_IMA_XATTR_DIGSIG   a signature (struct signature_v2_hdr, below)
//	0x04 IMA_XATTR_DIGEST_NG    hash_algo (u8) and the digest
//	0x05 EVM_XATTR_PORTABLE_DIGSIG  an EVM signature (belongs in security.evm)
//	0x06 IMA_VERITY_DIGSIG      a version 3 signature over the fs-verity digest
//
// A signature is struct signature_v2_hdr, packed: type (u8, 0x03 or 0x06),
// version (u8), hash_algo (u8, enum hash_algo of
// include/uapi/linux/hash_info.h), keyid (__be32), sig_size (__be16), then
// sig_size bytes of signature: RSA PKCS#1 v1.5 ("pkcs1") or an ECDSA
// Ecdsa-Sig-Value in DER ("x962"). Version 2 signs the file's digest with
// hash_algo; version 3 signs the hash, with hash_algo, of struct
// ima_file_id {hash_type (0x06), hash_algorithm, hash}, the fs-verity
// digest. `evmctl ima_sign --sigfile` writes the same bytes to FILE.sig.
//
// The kernel finds the key by keyid in its .ima keyring: the last four
// bytes of a certificate's subject key identifier (asymmetric_key_id
// partial match; evmctl writes SHA-1 of the public key's bits, which is
// the identifier RFC 5280's first method makes). [KeyID] is that id.
//
// # Security
//
// Everything [Parse] reads is untrusted. It takes the whole value, at most
// limits.MaxIMAValue bytes (the kernel's largest real values, an
// RSA-16384 signature, are about 2 KiB), checks every length against what
// remains and allocates nothing sized by a field. It is strict where the
// kernel is: a signature's sig_size must be exactly what follows the
// header (asymmetric_verify), a type 0x03 signature must be version 2 and a
// type 0x06 one version 3 (xattr_verify refuses the others), and a digest
// must be exactly the size its algorithm makes.
//
// [Value.Verify] trusts nothing in the value: the key comes from the
// certificates the caller supplies (the IMA keyring), matched by key id,
// and its signature must verify. It refuses MD5 (the one algorithm table
// of package signing) and the algorithms csv cannot compute (SM3,
// Streebog, RIPEMD, ...), and records SHA-1 in the signature's
// DigestAlgorithm for policy to judge. Values that are not signatures
// never verify: a digest admits nothing by signer.
package ima

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	_ "crypto/sha1" // SHA-1 IMA signatures exist; policy judges them
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/binary"
	"fmt"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
)

// XattrName is the extended attribute IMA appraisal reads.
const XattrName = "security.ima"

// Format is how messages name what Parse reads (signing.MalformedError's
// Format); SignatureFormat is signing.Signature.Format for what Verify
// returns.
const (
	Format          = "IMA xattr"
	SignatureFormat = "ima"
)

// Type is the first byte of a security.ima value (enum evm_ima_xattr_type).
type Type uint8

// The types of security.ima values.
const (
	TypeDigest            Type = 0x01 // IMA_XATTR_DIGEST
	TypeEVMHMAC           Type = 0x02 // EVM_XATTR_HMAC
	TypeDigsig            Type = 0x03 // EVM_IMA_XATTR_DIGSIG
	TypeDigestNG          Type = 0x04 // IMA_XATTR_DIGEST_NG
	TypeEVMPortableDigsig Type = 0x05 // EVM_XATTR_PORTABLE_DIGSIG
	TypeVerityDigsig      Type = 0x06 // IMA_VERITY_DIGSIG
)

func (t Type) String() string {
	switch t {
	case TypeDigest:
		return "IMA_XATTR_DIGEST"
	case TypeEVMHMAC:
		return "EVM_XATTR_HMAC"
	case TypeDigsig:
		return "EVM_IMA_XATTR_DIGSIG"
	case TypeDigestNG:
		return "IMA_XATTR_DIGEST_NG"
	case TypeEVMPortableDigsig:
		return "EVM_XATTR_PORTABLE_DIGSIG"
	case TypeVerityDigsig:
		return "IMA_VERITY_DIGSIG"
	}
	return fmt.Sprintf("type %#02x", uint8(t))
}

// HashAlgo is the kernel's enum hash_algo (include/uapi/linux/hash_info.h).
type HashAlgo uint8

// The kernel's hash algorithms csv names; the others are numbers between.
const (
	HashMD5    HashAlgo = 1
	HashSHA1   HashAlgo = 2
	HashSHA256 HashAlgo = 4
	HashSHA384 HashAlgo = 5
	HashSHA512 HashAlgo = 6
	HashSHA224 HashAlgo = 7
	// hashAlgoLast is HASH_ALGO__LAST of Linux 6.1 (SHA-3, numbered from
	// 20 in later kernels, is not one csv computes for IMA).
	hashAlgoLast = 20
)

var hashNames = [hashAlgoLast]string{"md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224",
	"rmd128", "rmd256", "rmd320", "wp256", "wp384", "wp512", "tgr128", "tgr160", "tgr192", "sm3", "streebog256", "streebog512"}

func (a HashAlgo) String() string {
	if int(a) < len(hashNames) {
		return hashNames[a]
	}
	return fmt.Sprintf("hash_algo %d", uint8(a))
}

// Hash returns the crypto.Hash a, or an error wrapping
// signing.ErrUnsupportedAlgorithm for an algorithm csv does not compute
// (MD5 included: it verifies nothing with it).
func (a HashAlgo) Hash() (crypto.Hash, error) {
	switch a {
	case HashSHA1:
		return crypto.SHA1, nil
	case HashSHA256:
		return crypto.SHA256, nil
	case HashSHA384:
		return crypto.SHA384, nil
	case HashSHA512:
		return crypto.SHA512, nil
	case HashSHA224:
		return crypto.SHA224, nil
	}
	return 0, signing.Errorf(signing.ErrUnsupportedAlgorithm, "ima: %v is not an algorithm csv verifies IMA values with", a)
}

// HashAlgoOf returns the kernel's number for h.
func HashAlgoOf(h crypto.Hash) (HashAlgo, bool) {
	switch h {
	case crypto.SHA1:
		return HashSHA1, true
	case crypto.SHA256:
		return HashSHA256, true
	case crypto.SHA384:
		return HashSHA384, true
	case crypto.SHA512:
		return HashSHA512, true
	case crypto.SHA224:
		return HashSHA224, true
	}
	return 0, false
}

// hdrLen is sizeof(struct signature_v2_hdr) without sig.
const hdrLen = 9

// Value is a parsed security.ima value. Which fields are set depends on
// Type: a signature (TypeDigsig, TypeVerityDigsig) has Version, HashAlgo,
// KeyID and Sig; a digest (TypeDigest, TypeDigestNG) HashAlgo and Digest;
// an EVM value only Type (csv does not read EVM values: they belong in
// security.evm, and IMA appraisal refuses them in security.ima).
type Value struct {
	Type     Type
	Version  uint8
	HashAlgo HashAlgo
	KeyID    uint32
	Sig      []byte
	Digest   []byte
}

// IsSignature reports whether v is a signature (version 2 or 3).
func (v *Value) IsSignature() bool { return v.Type == TypeDigsig || v.Type == TypeVerityDigsig }

// Describe says what v is, for reports.
func (v *Value) Describe() string {
	switch {
	case v.IsSignature():
		return fmt.Sprintf("IMA signature v%d (%v), %v, key id %08x", v.Version, v.Type, v.HashAlgo, v.KeyID)
	case v.Type == TypeDigest || v.Type == TypeDigestNG:
		return fmt.Sprintf("IMA digest (%v), %v", v.Type, v.HashAlgo)
	}
	return fmt.Sprintf("%v value", v.Type)
}

func malformed(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads a security.ima value (or a sidecar FILE.sig, which holds the
// same bytes). It returns a *signing.MalformedError (Err
// signing.ErrLimit past limits.MaxIMAValue, signing.ErrUnsupportedAlgorithm
// for a version 1 signature) for anything the kernel would not read as the
// type it claims; the offsets are into the value. The Value's slices are
// copies.
func Parse(b []byte) (*Value, error) {
	if len(b) == 0 {
		return nil, malformed(-1, "empty value")
	}
	if len(b) > limits.MaxIMAValue {
		return nil, &signing.MalformedError{Format: Format, Offset: -1, Err: signing.ErrLimit,
			Reason: fmt.Sprintf("a %d-byte value is over the %d-byte cap", len(b), limits.MaxIMAValue)}
	}
	v := &Value{Type: Type(b[0])}
	switch v.Type {
	case TypeDigsig, TypeVerityDigsig:
		if err := v.parseSignature(b); err != nil {
			return nil, err
		}
		return v, nil
	case TypeDigest:
		// The oldest form: the SHA-1 digest follows the type.
		if len(b) != 1+20 {
			return nil, malformed(1, "an IMA_XATTR_DIGEST value holds a 20-byte SHA-1 digest, not %d bytes", len(b)-1)
		}
		v.HashAlgo = HashSHA1
		v.Digest = append([]byte(nil), b[1:]...)
		return v, nil
	case TypeDigestNG:
		if len(b) < 2 {
			return nil, malformed(1, "an IMA_XATTR_DIGEST_NG value ends before its hash algorithm")
		}
		v.HashAlgo = HashAlgo(b[1])
		if v.HashAlgo >= hashAlgoLast {
			return nil, malformed(1, "unknown hash algorithm %d", b[1])
		}
		if h, err := v.HashAlgo.Hash(); err == nil && len(b)-2 != h.Size() {
			return nil, malformed(2, "a %v digest is %d bytes, not %d", v.HashAlgo, h.Size(), len(b)-2)
		}
		if len(b) == 2 {
			return nil, malformed(2, "an IMA_XATTR_DIGEST_NG value holds no digest")
		}
		v.Digest = append([]byte(nil), b[2:]...)
		return v, nil
	case TypeEVMHMAC, TypeEVMPortableDigsig:
		return v, nil
	}
	return nil, malformed(0, "unknown value type %#02x", b[0])
}

func (v *Value) parseSignature(b []byte) error {
	if len(b) < 2 {
		return malformed(1, "%v value ends before its version", v.Type)
	}
	v.Version = b[1]
	switch {
	case v.Version == 1:
		return &signing.MalformedError{Format: Format, Offset: 1, Err: signing.ErrUnsupportedAlgorithm,
			Reason: "a version 1 signature (the kernel's legacy RSA format) is not verified by csv"}
	case v.Type == TypeDigsig && v.Version != 2:
		return malformed(1, "an EVM_IMA_XATTR_DIGSIG signature must be version 2 (the kernel refuses version %d)", v.Version)
	case v.Type == TypeVerityDigsig && v.Version != 3:
		return malformed(1, "an IMA_VERITY_DIGSIG signature must be version 3 (the kernel refuses version %d)", v.Version)
	}
	if len(b) <= hdrLen {
		return malformed(int64(len(b)), "a %d-byte signature ends inside its %d-byte header or holds no signature", len(b), hdrLen)
	}
	v.HashAlgo = HashAlgo(b[2])
	if v.HashAlgo >= hashAlgoLast {
		return malformed(2, "unknown hash algorithm %d", b[2])
	}
	v.KeyID = binary.BigEndian.Uint32(b[3:7])
	size := int(binary.BigEndian.Uint16(b[7:9]))
	if size != len(b)-hdrLen {
		return malformed(7, "sig_size says %d bytes, %d follow the header", size, len(b)-hdrLen)
	}
	v.Sig = append([]byte(nil), b[hdrLen:]...)
	return nil
}

// Marshal encodes v as the kernel stores it.
func (v *Value) Marshal() []byte {
	switch v.Type {
	case TypeDigsig, TypeVerityDigsig:
		out := make([]byte, hdrLen, hdrLen+len(v.Sig))
		out[0], out[1], out[2] = byte(v.Type), v.Version, byte(v.HashAlgo)
		binary.BigEndian.PutUint32(out[3:], v.KeyID)
		binary.BigEndian.PutUint16(out[7:], uint16(len(v.Sig)))
		return append(out, v.Sig...)
	case TypeDigestNG:
		return append([]byte{byte(v.Type), byte(v.HashAlgo)}, v.Digest...)
	case TypeDigest:
		return append([]byte{byte(v.Type)}, v.Digest...)
	}
	return []byte{byte(v.Type)}
}

// KeyID returns the key id the kernel's IMA keyring knows c by: the last
// four bytes of its subject key identifier. ok is false for a certificate
// without one (or with one shorter than four bytes): no evmctl signature
// names it.
func KeyID(c *signing.Certificate) (id uint32, ok bool) {
	if c == nil || len(c.SubjectKeyID) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(c.SubjectKeyID[len(c.SubjectKeyID)-4:]), true
}

// FileIDDigest returns the digest a version 3 signature signs for a file
// whose fs-verity digest is verity, computed with h: the hash of struct
// ima_file_id {IMA_VERITY_DIGSIG, hash_algorithm, verity}, as the kernel's
// calc_file_id_hash makes it (hash_algorithm is h's number: the kernel
// hashes the structure with the fs-verity digest's own algorithm).
func FileIDDigest(h crypto.Hash, verity []byte) ([]byte, error) {
	a, ok := HashAlgoOf(h)
	if !ok || !h.Available() {
		return nil, signing.Errorf(signing.ErrUnsupportedAlgorithm, "ima: %v is not an fs-verity digest algorithm", h)
	}
	if len(verity) != h.Size() {
		return nil, signing.Errorf(signing.ErrDigestNotComputed, "ima: a %d-byte fs-verity digest is not %v", len(verity), h)
	}
	d := h.New()
	d.Write([]byte{byte(TypeVerityDigsig), byte(a)})
	d.Write(verity)
	return d.Sum(nil), nil
}

// keyKind is the signature scheme the kernel uses with pub
// (asymmetric_verify): PKCS#1 v1.5 for RSA, X9.62 (DER) for ECDSA.
func keyKind(pub crypto.PublicKey) (string, bool) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "RSA", true
	case *ecdsa.PublicKey:
		return "ECDSA", true
	}
	return "", false
}
