package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/big"
	"testing"
)

// The verification cache answers a repeated success from memory, and
// nothing else: a changed signature, digest, key, hash or padding is
// verified, and refused, as without it.
func TestVerifyCache(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("a signed binary"))
	rsig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	esig, err := ecdsa.SignASN1(rand.Reader, ek, d[:])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pub  crypto.PublicKey
		kind string
		sig  []byte
	}{
		{"RSA", &rk.PublicKey, "RSA", rsig},
		{"ECDSA", &ek.PublicKey, "ECDSA", esig},
	} {
		t.Run(c.name, func(t *testing.T) {
			h0 := verified.hits.Load()
			if err := CheckPrecomputed(c.pub, c.kind, crypto.SHA256, d[:], c.sig); err != nil {
				t.Fatalf("first check: %v", err)
			}
			if err := CheckPrecomputed(c.pub, c.kind, crypto.SHA256, d[:], c.sig); err != nil {
				t.Fatalf("second check: %v", err)
			}
			if got := verified.hits.Load() - h0; got < 1 {
				t.Errorf("the second check of the same bytes was not answered from the cache (hits +%d)", got)
			}
			bad := append([]byte(nil), c.sig...)
			bad[len(bad)/2] ^= 1
			if err := CheckPrecomputed(c.pub, c.kind, crypto.SHA256, d[:], bad); !errors.Is(err, ErrSignature) {
				t.Errorf("a changed signature after a cached success: %v, want ErrSignature", err)
			}
			d2 := d
			d2[0] ^= 1
			if err := CheckPrecomputed(c.pub, c.kind, crypto.SHA256, d2[:], c.sig); !errors.Is(err, ErrSignature) {
				t.Errorf("a changed digest after a cached success: %v, want ErrSignature", err)
			}
		})
	}
	// The same signature and digest, another RSA key: refused.
	if err := CheckPrecomputed(&other.PublicKey, "RSA", crypto.SHA256, d[:], rsig); !errors.Is(err, ErrSignature) {
		t.Errorf("another key: %v, want ErrSignature", err)
	}
	// The same bytes as PSS: the kind is in the key.
	if err := CheckPrecomputed(&rk.PublicKey, "RSA-PSS", crypto.SHA256, d[:], rsig); !errors.Is(err, ErrSignature) {
		t.Errorf("a PKCS#1 v1.5 signature checked as PSS: %v, want ErrSignature", err)
	}
	// The same digest bytes named as another hash: refused (its size differs).
	if err := CheckPrecomputed(&rk.PublicKey, "RSA", crypto.SHA384, d[:], rsig); err == nil {
		t.Error("a SHA-256 digest named SHA-384 passed")
	}
	// MD5 is refused before the cache is asked.
	if err := CheckPrecomputed(&rk.PublicKey, "RSA", crypto.MD5, d[:16], rsig); err == nil {
		t.Error("MD5 passed")
	}
}

// The cache never holds more than maxVerified entries.
func TestVerifyCacheBounded(t *testing.T) {
	var c verifyCache
	c.m = map[[32]byte]struct{}{}
	for i := range maxVerified + 10 {
		var k [32]byte
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		c.add(k)
		if len(c.m) > maxVerified {
			t.Fatalf("%d entries after %d adds, cap %d", len(c.m), i+1, maxVerified)
		}
	}
	var last [32]byte
	n := maxVerified + 9
	last[0], last[1], last[2] = byte(n), byte(n>>8), byte(n>>16)
	if !c.has(last) {
		t.Error("the newest entry is not kept")
	}
}

// A cached ECDSA success never answers a check by an RSA key whose
// modulus bytes spell the ECDSA key's cache bytes (review 9, F1): the key
// type must fit the kind before the cache is asked, and the type is in
// the cache key.
func TestVerifyCacheKeyType(t *testing.T) {
	// An ECDSA key whose point's last 8 bytes make a valid RSA exponent
	// (an int): then N = "P-256:" + the rest, E = those bytes spell the
	// old cache encoding of the ECDSA key exactly.
	var ek *ecdsa.PrivateKey
	var point []byte
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if point, err = k.PublicKey.Bytes(); err != nil {
			t.Fatal(err)
		}
		if point[len(point)-8]&0x80 == 0 {
			ek = k
			break
		}
	}
	d := sha256.Sum256([]byte("x"))
	sig, err := ecdsa.SignASN1(rand.Reader, ek, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPrecomputed(&ek.PublicKey, "ECDSA", crypto.SHA256, d[:], sig); err != nil {
		t.Fatal(err)
	}
	enc := append([]byte("P-256:"), point...)
	mimic := &rsa.PublicKey{
		N: new(big.Int).SetBytes(enc[:len(enc)-8]),
		E: int(binary.BigEndian.Uint64(enc[len(enc)-8:])),
	}
	if err := CheckPrecomputed(mimic, "ECDSA", crypto.SHA256, d[:], sig); !errors.Is(err, ErrSignature) {
		t.Errorf("an RSA key checking an ECDSA signature after a cached success: %v, want ErrSignature", err)
	}
	a, _ := verifyKey(&ek.PublicKey, "ECDSA", crypto.SHA256, d[:], sig)
	if b, ok := verifyKey(mimic, "ECDSA", crypto.SHA256, d[:], sig); ok && a == b {
		t.Error("an RSA key and an ECDSA key share a cache key")
	}
}
