package signing

import (
	"crypto"
	_ "crypto/md5" // to make the MD5 signatures CheckSignature must refuse
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// pssParams encodes RSASSA-PSS-params naming hash (and MGF1 with it).
func pssParams(hash asn1.ObjectIdentifier, salt int64) []byte {
	alg := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, params func(*cryptobyte.Builder)) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			params(b)
		})
	}
	null := func(b *cryptobyte.Builder) { b.AddASN1NULL() }
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { alg(b, hash, null) })
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			alg(b, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}, func(b *cryptobyte.Builder) { alg(b, hash, null) })
		})
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(salt) })
	})
	return b.BytesOrPanic()
}

// TestCheckSignatureRefusesMD5 checks that an MD5 signature is refused
// whatever the algorithm says it is: md5WithRSAEncryption, RSA-PSS whose
// parameters name MD5 (modsig refused that already), or a digest-only
// algorithm with MD5 as the digest; and that the same RSA-PSS signature
// over SHA-256 verifies.
func TestCheckSignatureRefusesMD5(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("signed attributes")
	oidPSS := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMD5 := asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	oidSHA256 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	sign := func(h crypto.Hash, pss bool) []byte {
		hh := h.New()
		hh.Write(data)
		var sig []byte
		var err error
		if pss {
			sig, err = rsa.SignPSS(rand.Reader, key, h, hh.Sum(nil), &rsa.PSSOptions{SaltLength: 16})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, h, hh.Sum(nil))
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	if err := CheckSignature(&key.PublicKey, oidPSS, pssParams(oidSHA256, 16), data, sign(crypto.SHA256, true)); err != nil {
		t.Fatalf("RSA-PSS over SHA-256: %v", err)
	}
	for name, check := range map[string]func() error{
		"RSA-PSS over MD5": func() error {
			return CheckSignature(&key.PublicKey, oidPSS, pssParams(oidMD5, 16), data, sign(crypto.MD5, true))
		},
		"md5WithRSAEncryption": func() error {
			return CheckSignature(&key.PublicKey, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}, nil, data, sign(crypto.MD5, false))
		},
		"rsaEncryption with an MD5 digest": func() error {
			return CheckDigestSignature(&key.PublicKey, "RSA", crypto.MD5, data, sign(crypto.MD5, false))
		},
		"precomputed MD5 digest": func() error {
			h := crypto.MD5.New()
			h.Write(data)
			return CheckPrecomputed(&key.PublicKey, "RSA-PSS", crypto.MD5, h.Sum(nil), sign(crypto.MD5, true))
		},
	} {
		if err := check(); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want an error wrapping ErrSignature", name, err)
		}
	}
}
