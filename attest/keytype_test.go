package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/verifiedby"
	"github.com/codesignval/csv/signing"
)

// TestAuthorityKeyType: a Secure Boot authority whose key csv does not
// parse is RSA only when its SubjectPublicKeyInfo says rsaEncryption; a
// key of another kind is unknown, so that a policy accepting RSA keys
// only (key_types, wdac_compatible) does not admit what it signed.
func TestAuthorityKeyType(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Odd Key CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	// withSPKI returns the certificate with its SubjectPublicKeyInfo
	// replaced (its signature no longer verifies: a boot authority's own
	// signature is not judged).
	withSPKI := func(oid asn1.ObjectIdentifier, params []byte) *signing.Certificate {
		t.Helper()
		in := cryptobyte.String(der)
		var cert, tbs cryptobyte.String
		if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
			t.Fatal("bad certificate")
		}
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for i := 0; !tbs.Empty(); i++ {
					var e cryptobyte.String
					var tag cbasn1.Tag
					if !tbs.ReadAnyASN1Element(&e, &tag) {
						t.Fatal("bad TBSCertificate")
					}
					if i != 6 { // [0] version, serial, signature, issuer, validity, subject, SPKI
						b.AddBytes(e)
						continue
					}
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oid)
							b.AddBytes(params)
						})
						b.AddASN1BitString([]byte{0x30, 0x03, 0x02, 0x01, 0x05})
					})
				}
			})
			b.AddBytes(cert)
		})
		c, err := signing.ParseCertificate(b.BytesOrPanic())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	withKeyOID := func(oid asn1.ObjectIdentifier) *signing.Certificate { return withSPKI(oid, []byte{5, 0}) }
	ec, err := signing.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		c    *signing.Certificate
		want string
	}{
		{"ECDSA", ec, "ECDSA"},
		// rsaEncryption over a key Go's x509 refuses.
		{"rsaEncryption csv cannot parse", withKeyOID(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}), "RSA"},
		{"a key type csv does not know", withKeyOID(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 99}), "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := sigAlg(tt.c); got != tt.want {
				t.Errorf("sigAlg = %q, want %q", got, tt.want)
			}
		})
	}
	// A policy that names the odd authority and accepts RSA keys does not
	// admit what it signed.
	odd := withKeyOID(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 99})
	p, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: p\nkey_types: [rsa]\nrules:\n  - {id: odd, action: allow, signer: {tbs: "+odd.TBSHashHex()+", level: leaf}}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		t.Fatal(err)
	}
	d := set.Evaluate(cipolicy.Subject{Path: "pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/1", Format: cipolicy.FormatPE, Scenario: cipolicy.ScenarioBoot, Signed: true,
		Signatures: []*signing.Signature{verifiedby.Firmware(odd, sigAlg(odd))}})
	if d.Allowed() {
		t.Errorf("an authority with an unknown key type is allowed under key_types [rsa]: %s", d.Reason)
	}
}
