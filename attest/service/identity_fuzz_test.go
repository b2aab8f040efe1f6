package service

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/internal/panicerr"
)

// FuzzParseIdentity feeds hostile AK and EK public areas and certificates
// to parseIdentity, the first thing the service does with a submission's
// keys: it never panics, and what it accepts is self-consistent (the AK
// Name is the name algorithm's digest of the AK's public area, and an EK
// certificate certifies the EK key).
func FuzzParseIdentity(f *testing.F) {
	point := func(k *ecdsa.PrivateKey) *tpm2.TPMSECCPoint {
		return &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: k.X.FillBytes(make([]byte, 32))}, Y: tpm2.TPM2BECCParameter{Buffer: k.Y.FillBytes(make([]byte, 32))}}
	}
	akKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ak := tpm2.TPMTPublic{
		Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, point(akKey)),
	}
	rsaEK := tpm2.RSAEKTemplate
	rsaEK.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: bytes.Repeat([]byte{0xc5}, 256)})
	eccEK := tpm2.ECCEKTemplate
	eccEK.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, point(key))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ek"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0),
		KeyUsage: x509.KeyUsageKeyAgreement}
	cert, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	akB := tpm2.Marshal(ak)
	f.Add(akB, tpm2.Marshal(rsaEK), []byte(nil), []byte(nil))
	f.Add(akB, tpm2.Marshal(eccEK), []byte(nil), []byte(nil))
	f.Add(akB, []byte(nil), cert, []byte(nil))
	f.Add(append([]byte{byte(len(akB) >> 8), byte(len(akB))}, akB...), tpm2.Marshal(eccEK), cert, cert) // TPM2B_PUBLIC
	f.Fuzz(func(t *testing.T, akPub, ekPub, ekCert, akCert []byte) {
		req := &AttestRequest{AKPublic: akPub, EKPublic: ekPub, EKCertificate: ekCert, AKCertificate: akCert}
		id, err := parseIdentity(req, true, newEKCache(16))
		panicerr.Check(t, err)
		if err != nil {
			return
		}
		if id.ak == nil || id.akPublic == nil || id.ekKey == nil {
			t.Fatalf("accepted with parts missing: %+v", id)
		}
		name, err := Name(id.akPublic)
		if err != nil || !bytes.Equal(name, id.akName) {
			t.Fatalf("AK name %x, recomputed %x (%v)", id.akName, name, err)
		}
		if id.ekCert != nil && !samePublicKey(id.ekCert.PublicKey, id.ekKey) {
			t.Fatal("accepted an EK certificate for another key")
		}
	})
}
