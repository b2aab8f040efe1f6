//go:build cgo

package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"

	"github.com/miekg/pkcs11"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/safefile"
)

// PKCS#11 modules are loaded and initialized once per path and stay loaded
// for the life of the process: C_Initialize is process-wide, and a module
// finalized under another signer's feet would break it.
var (
	pkcs11Mu      sync.Mutex
	pkcs11Modules = map[string]*pkcs11.Ctx{}
)

func pkcs11Module(path string) (*pkcs11.Ctx, error) {
	pkcs11Mu.Lock()
	defer pkcs11Mu.Unlock()
	if p, ok := pkcs11Modules[path]; ok {
		return p, nil
	}
	// dlopen(3) opens the module plainly: a FIFO there would be waited on.
	switch fi, err := os.Stat(path); {
	case err != nil:
		return nil, fmt.Errorf("%w: module: %w", ErrPKCS11, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: module %s: %w (%s)", ErrPKCS11, path, safefile.ErrNotRegular, safefile.Kind(fi.Mode()))
	}
	p := pkcs11.New(path)
	if p == nil {
		return nil, fmt.Errorf("%w: module %s cannot be loaded (not a PKCS#11 library?)", ErrPKCS11, path)
	}
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return nil, fmt.Errorf("%w: module %s: C_Initialize: %w", ErrPKCS11, path, err)
	}
	pkcs11Modules[path] = p
	return p, nil
}

func isCKR(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}

// pkcs11Signer signs with a private key on a token, through one session
// guarded by a mutex (a PKCS#11 session runs one operation at a time).
type pkcs11Signer struct {
	mu      sync.Mutex
	p       *pkcs11.Ctx
	session pkcs11.SessionHandle
	key     pkcs11.ObjectHandle
	pub     crypto.PublicKey
	desc    string
	closed  bool
}

func loadPKCS11(u *pkcs11URI, pin []byte) (crypto.Signer, error) {
	desc := u.describe()
	p, err := pkcs11Module(u.modulePath)
	if err != nil {
		return nil, err
	}
	slot, ti, err := findSlot(p, u, desc)
	if err != nil {
		return nil, err
	}
	session, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: C_OpenSession: %w", ErrPKCS11, desc, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = p.CloseSession(session)
		}
	}()
	switch {
	case pin != nil:
		err := p.Login(session, pkcs11.CKU_USER, string(pin))
		switch {
		case err == nil, isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		case isCKR(err, pkcs11.CKR_PIN_INCORRECT), isCKR(err, pkcs11.CKR_PIN_LEN_RANGE):
			return nil, fmt.Errorf("%w (PIN) for %s", ErrWrongPassword, desc)
		default:
			return nil, fmt.Errorf("%w: %s: C_Login: %w", ErrPKCS11, desc, err)
		}
	case ti.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0:
		return nil, fmt.Errorf("%w: %s: the token requires a PIN: add pin-source= to the URI or set the PIN environment variable (%s by default)", ErrNoPassword, desc, DefaultPINEnv)
	}

	template := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if u.object != "" {
		template = append(template, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.object))
	}
	if u.hasID {
		template = append(template, pkcs11.NewAttribute(pkcs11.CKA_ID, u.id))
	}
	keys, err := findObjects(p, session, template)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: finding the key: %w", ErrPKCS11, desc, err)
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("%w: %s: no such private key on the token (wrong object=/id=, or not logged in)", ErrPKCS11, desc)
	case 1:
	default:
		return nil, fmt.Errorf("%w: %s: several private keys match: add id= or object=", ErrPKCS11, desc)
	}
	pub, err := pkcs11PublicKey(p, session, keys[0], u)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPKCS11, desc, err)
	}
	ok = true
	return &pkcs11Signer{p: p, session: session, key: keys[0], pub: pub, desc: desc}, nil
}

// findSlot returns the one slot whose token matches the URI.
func findSlot(p *pkcs11.Ctx, u *pkcs11URI, desc string) (uint, pkcs11.TokenInfo, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w: %s: C_GetSlotList: %w", ErrPKCS11, desc, err)
	}
	var found []uint
	var info pkcs11.TokenInfo
	for _, s := range slots {
		if u.slotID != nil && s != *u.slotID {
			continue
		}
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if (u.token != "" && ti.Label != u.token) ||
			(u.manufacturer != "" && ti.ManufacturerID != u.manufacturer) ||
			(u.model != "" && ti.Model != u.model) ||
			(u.serial != "" && ti.SerialNumber != u.serial) {
			continue
		}
		found = append(found, s)
		info = ti
	}
	switch len(found) {
	case 0:
		return 0, info, fmt.Errorf("%w: %s: no token matches (%d slots with a token)", ErrPKCS11, desc, len(slots))
	case 1:
		return found[0], info, nil
	}
	return 0, info, fmt.Errorf("%w: %s: %d tokens match: add token=, serial= or slot-id=", ErrPKCS11, desc, len(found))
}

// maxObjects bounds a search: more matches than this are "several" anyway.
const maxObjects = 4

func findObjects(p *pkcs11.Ctx, session pkcs11.SessionHandle, template []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := p.FindObjectsInit(session, template); err != nil {
		return nil, err
	}
	objs, _, err := p.FindObjects(session, maxObjects)
	if ferr := p.FindObjectsFinal(session); err == nil {
		err = ferr
	}
	return objs, err
}

// pkcs11PublicKey reads the key's public half: RSA from the private key's
// own attributes (CKA_MODULUS and CKA_PUBLIC_EXPONENT are public), EC from
// the matching public key object (CKA_EC_POINT is not on private keys).
func pkcs11PublicKey(p *pkcs11.Ctx, session pkcs11.SessionHandle, key pkcs11.ObjectHandle, u *pkcs11URI) (crypto.PublicKey, error) {
	attrs, err := p.GetAttributeValue(session, key, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("reading the key's type: %w", err)
	}
	keyType, err := attrUint(attrs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("key type: %w", err)
	}
	id, label := attrs[1].Value, attrs[2].Value
	switch keyType {
	case pkcs11.CKK_RSA:
		a, err := p.GetAttributeValue(session, key, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading the RSA public key: %w", err)
		}
		n := new(big.Int).SetBytes(a[0].Value)
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || n.Sign() <= 0 {
			return nil, errors.New("malformed RSA public key")
		}
		pub := &rsa.PublicKey{N: n, E: int(e.Int64())}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (at least %d)", ErrUnsupportedKey, pub.N.BitLen(), minRSABits)
		}
		return pub, nil
	case pkcs11.CKK_EC:
		template := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		}
		if len(id) > 0 {
			template = append(template, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
		} else if len(label) > 0 {
			template = append(template, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
		}
		pubs, err := findObjects(p, session, template)
		if err != nil {
			return nil, fmt.Errorf("finding the public key: %w", err)
		}
		if len(pubs) != 1 {
			return nil, fmt.Errorf("%d public key objects match the private key's id/label (want 1: the EC public point is only on the public key object)", len(pubs))
		}
		a, err := p.GetAttributeValue(session, pubs[0], []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading the EC public key: %w", err)
		}
		return parseECPublic(a[0].Value, a[1].Value)
	}
	return nil, fmt.Errorf("%w: PKCS#11 key type 0x%x (RSA and EC are supported)", ErrUnsupportedKey, keyType)
}

func attrUint(b []byte) (uint, error) {
	// CK_ULONG in host byte order and size.
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), nil
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), nil
	}
	return 0, fmt.Errorf("attribute of %d bytes is not a CK_ULONG", len(b))
}

var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// parseECPublic reads CKA_EC_PARAMS (a named-curve OID) and CKA_EC_POINT
// (the uncompressed point, DER OCTET STRING-wrapped as the standard says,
// or raw as some tokens return it).
func parseECPublic(params, point []byte) (crypto.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	if err := unmarshalStrict(params, &oid); err != nil {
		return nil, fmt.Errorf("%w: EC parameters are not a named curve", ErrUnsupportedKey)
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidP256):
		curve = elliptic.P256()
	case oid.Equal(oidP384):
		curve = elliptic.P384()
	case oid.Equal(oidP521):
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("%w: EC curve %v", ErrUnsupportedKey, oid)
	}
	size := 1 + 2*((curve.Params().BitSize+7)/8)
	raw := point
	if len(point) != size {
		s := cryptobyte.String(point)
		var inner cryptobyte.String
		if !s.ReadASN1(&inner, cbasn1.OCTET_STRING) || !s.Empty() {
			return nil, errors.New("malformed CKA_EC_POINT")
		}
		raw = inner
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("CKA_EC_POINT: %w", err)
	}
	return pub, nil
}

// DigestInfo prefixes (RFC 8017 section 9.2 note 1) for CKM_RSA_PKCS.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

var pssMechs = map[crypto.Hash][2]uint{
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

func (s *pkcs11Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs digest (SHA-256, SHA-384 or SHA-512) on the token: RSA
// PKCS#1 v1.5 (CKM_RSA_PKCS over the DigestInfo), RSA-PSS when opts is
// *rsa.PSSOptions (CKM_RSA_PKCS_PSS; salt length: as asked, the hash size
// for PSSSaltLengthAuto and PSSSaltLengthEqualsHash), or ECDSA (CKM_ECDSA,
// the token's r||s converted to ASN.1). The signature is checked against
// the public key before it is returned.
func (s *pkcs11Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: %s: no hash given (PKCS#11 signers sign digests)", ErrUnsupportedKey, s.desc)
	}
	h := opts.HashFunc()
	if _, ok := digestInfoPrefix[h]; !ok {
		return nil, fmt.Errorf("%w: %s: digest %v (SHA-256, SHA-384 or SHA-512)", ErrUnsupportedKey, s.desc, h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("%w: %s: digest of %d bytes for %v", ErrUnsupportedKey, s.desc, len(digest), h)
	}
	var mech *pkcs11.Mechanism
	var input []byte
	switch s.pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := pss.SaltLength
			if salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash {
				salt = h.Size()
			}
			if salt < 0 {
				return nil, fmt.Errorf("%w: %s: PSS salt length %d", ErrUnsupportedKey, s.desc, salt)
			}
			m := pssMechs[h]
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(m[0], m[1], uint(salt)))
			input = digest
		} else {
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
			input = append(append([]byte{}, digestInfoPrefix[h]...), digest...)
		}
	case *ecdsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
		input = digest
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s: signer closed", ErrPKCS11, s.desc)
	}
	err := s.p.SignInit(s.session, []*pkcs11.Mechanism{mech}, s.key)
	var sig []byte
	if err == nil {
		sig, err = s.p.Sign(s.session, input)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: signing: %w", ErrPKCS11, s.desc, err)
	}
	if pub, ok := s.pub.(*ecdsa.PublicKey); ok {
		if sig, err = ecdsaRawToASN1(pub, sig); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrPKCS11, s.desc, err)
		}
	}
	if err := verifyDigestSignature(s.pub, digest, opts, sig); err != nil {
		return nil, fmt.Errorf("%w: %s: the token's signature does not verify with its public key: %w", ErrPKCS11, s.desc, err)
	}
	return sig, nil
}

// ecdsaRawToASN1 turns PKCS#11's r||s into an ASN.1 ECDSA-Sig-Value.
func ecdsaRawToASN1(pub *ecdsa.PublicKey, raw []byte) ([]byte, error) {
	n := (pub.Curve.Params().BitSize + 7) / 8
	if len(raw) != 2*n {
		return nil, fmt.Errorf("ECDSA signature of %d bytes (want %d)", len(raw), 2*n)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[:n]))
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[n:]))
	})
	return b.Bytes()
}

// Close ends the signer's session (the module stays loaded). Signing after
// Close fails.
func (s *pkcs11Signer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.p.CloseSession(s.session); err != nil {
		return fmt.Errorf("%w: %s: C_CloseSession: %w", ErrPKCS11, s.desc, err)
	}
	return nil
}
