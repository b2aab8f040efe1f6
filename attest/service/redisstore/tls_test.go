package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/redisstore"
	"github.com/codesignval/csv/attest/service/redisstore/redistest"
)

// tlsFiles writes a CA and a server certificate for 127.0.0.1 signed by it,
// and returns the CA and the certificate and key files.
func tlsFiles(t *testing.T) (*x509.Certificate, string, string) {
	t.Helper()
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, cf, kf
}

// TestTLS: rediss:// to a TLS-only server works with its CA given, and is
// refused (not taken for a replay) with the system's roots or in plain
// text; CA certificates for a redis:// URL are a configuration error.
func TestTLS(t *testing.T) {
	ca, cf, kf := tlsFiles(t)
	srv := redistest.NewTLS(t, cf, kf)
	ctx := context.Background()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	s := newStore(t, srv.URL(), redisstore.Options{RootCAs: roots})
	if err := s.Use(ctx, key(1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Use(ctx, key(1), time.Minute); !errors.Is(err, service.ErrNonceReplayed) {
		t.Fatalf("second use over TLS: %v", err)
	}
	for name, st := range map[string]*redisstore.Store{
		"system roots": newStore(t, srv.URL(), redisstore.Options{}),
		"plain text":   newStore(t, "redis://"+srv.Addr(), redisstore.Options{}),
	} {
		if err := st.Use(ctx, key(2), time.Minute); err == nil || errors.Is(err, service.ErrNonceReplayed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := redisstore.New("redis://"+srv.Addr(), redisstore.Options{RootCAs: roots}); !errors.Is(err, redisstore.ErrURL) {
		t.Errorf("CA certificates for redis://: %v", err)
	}
}
