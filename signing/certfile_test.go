package signing_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// certFileCases are inputs the one certificate rule refuses, each with
// what it is; they seed FuzzParseCertificates too.
func certFileCases(t testing.TB) (good map[string][]byte, bad map[string][]byte) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	one := testca.PEM(leaf.Cert)
	two := testca.PEM(leaf.Cert, ca.Intermediate.Cert)
	good = map[string][]byte{
		"DER":                 leaf.Cert.Raw,
		"one PEM":             one,
		"two PEM":             two,
		"openssl subject=":    append([]byte("subject=CN = Test Code Signing\nissuer=CN = Test CA\n"), one...),
		"bundle comments":     []byte("# Test CA\n# é, tabs\t and CRLF\r\n" + string(one) + "\n## next\n" + string(testca.PEM(ca.Intermediate.Cert)) + "\n"),
		"CRLF":                bytes.ReplaceAll(two, []byte("\n"), []byte("\r\n")),
		"byte order mark":     append([]byte("\ufeff"), one...),
		"no final newline":    bytes.TrimRight(one, "\n"),
		"trailing whitespace": append(append([]byte{}, one...), " \n\n"...),
	}
	mal := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Cert.Raw})
	mal = bytes.Replace(mal, []byte("MII"), []byte("M*I"), 1) // not base64
	bad = map[string][]byte{
		"empty":                      nil,
		"whitespace":                 []byte(" \n\t\r\n"),
		"text":                       []byte("nothing here"),
		"private key":                append(append([]byte{}, one...), testca.KeyPEM(t, leaf.Key)...),
		"private key first":          append(testca.KeyPEM(t, leaf.Key), one...),
		"trusted certificate":        pem.EncodeToMemory(&pem.Block{Type: "TRUSTED CERTIFICATE", Bytes: leaf.Cert.Raw}),
		"PKCS7":                      pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: []byte{0x30, 0}}),
		"headers":                    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: leaf.Cert.Raw}),
		"malformed block between":    append(append(append([]byte{}, one...), mal...), testca.PEM(ca.Intermediate.Cert)...),
		"malformed block last":       append(append([]byte{}, one...), mal...),
		"malformed block only":       mal,
		"BEGIN without END":          append(append([]byte{}, one...), "-----BEGIN CERTIFICATE-----\nMIIB\n"...),
		"END without BEGIN":          append(append([]byte{}, one...), "-----END CERTIFICATE-----\n"...),
		"binary after":               append(append([]byte{}, one...), 0, 1, 2, 0xff),
		"NUL in text":                append([]byte("x\x00\n"), one...),
		"escape in text":             append([]byte("\x1b[31m\n"), one...),
		"invalid UTF-8 in text":      append([]byte("\xc3\x28\n"), one...),
		"garbage DER in PEM":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
		"DER with a byte after":      append(append([]byte{}, leaf.Cert.Raw...), 0),
		"two DER certificates":       append(append([]byte{}, leaf.Cert.Raw...), ca.Intermediate.Cert.Raw...),
		"DER cut short":              leaf.Cert.Raw[:len(leaf.Cert.Raw)-1],
		"short SEQUENCE":             []byte{0x30, 0x03, 0x02, 0x01, 0x00},
		"over the certificate cap":   append(bytes.Repeat([]byte("# padding\n"), 5<<20/10), one...),
		"PEM of a PEM's base64 only": []byte(strings.Join(strings.Split(string(one), "\n")[1:3], "\n")),
	}
	return good, bad
}

func TestParseCertificates(t *testing.T) {
	good, bad := certFileCases(t)
	for name, data := range good {
		t.Run(name, func(t *testing.T) {
			certs, err := signing.ParseCertificates(data)
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if name == "two PEM" || name == "bundle comments" || name == "CRLF" {
				want = 2
			}
			if len(certs) != want {
				t.Fatalf("%d certificates, want %d", len(certs), want)
			}
			_, err = signing.ParseOneCertificate(data)
			if want == 1 && err != nil {
				t.Errorf("ParseOneCertificate: %v", err)
			}
			if want > 1 && !errors.Is(err, signing.ErrCertificate) {
				t.Errorf("ParseOneCertificate of %d certificates: got %v, want ErrCertificate", want, err)
			}
		})
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			certs, err := signing.ParseCertificates(data)
			if !errors.Is(err, signing.ErrCertificate) || certs != nil {
				t.Fatalf("got %d certificates, %v; want ErrCertificate", len(certs), err)
			}
			if _, err := signing.ParseOneCertificate(data); !errors.Is(err, signing.ErrCertificate) {
				t.Fatalf("ParseOneCertificate: got %v, want ErrCertificate", err)
			}
		})
	}
}

// TestParseCertificatesLenient: a certificate Go's crypto/x509 refuses (a
// negative serial number, as some firmware roots have) is read, with
// Parsed nil; X509Certificates and ParseChain, which need Go's parse, say
// which one.
func TestParseCertificatesLenient(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	neg := withNegativeSerial(t, ca.Root)
	data := testca.PEM(leaf.Cert)
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: neg})...)
	certs, err := signing.ParseCertificates(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || certs[0].Parsed == nil || certs[1].Parsed != nil || certs[1].SerialNumber.Sign() >= 0 {
		t.Fatalf("got %d certificates; want the leaf parsed and the root read leniently", len(certs))
	}
	if _, err := signing.X509Certificates(certs); !errors.Is(err, signing.ErrCertificate) || !strings.Contains(err.Error(), "#2") {
		t.Errorf("X509Certificates: got %v, want ErrCertificate naming #2", err)
	}
	if _, err := signing.ParseChain(data); !errors.Is(err, signing.ErrCertificate) {
		t.Errorf("ParseChain: got %v, want ErrCertificate", err)
	}
}

// withNegativeSerial re-creates c as a self-signed certificate with a
// negative serial number (ECDSA, no extensions).
func withNegativeSerial(t *testing.T, c *testca.Cert) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x := c.Cert
	tbs := struct {
		Serial    *big.Int
		Alg       pkix.AlgorithmIdentifier
		Issuer    asn1.RawValue
		Validity  struct{ NotBefore, NotAfter time.Time }
		Subject   asn1.RawValue
		PublicKey asn1.RawValue
	}{big.NewInt(-12345), pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}}, asn1.RawValue{FullBytes: x.RawSubject},
		struct{ NotBefore, NotAfter time.Time }{x.NotBefore.UTC(), x.NotAfter.UTC()}, asn1.RawValue{FullBytes: x.RawSubject}, asn1.RawValue{FullBytes: x.RawSubjectPublicKeyInfo}}
	tbsDER, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(tbsDER)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{asn1.RawValue{FullBytes: tbsDER}, tbs.Alg, asn1.BitString{Bytes: sig, BitLength: len(sig) * 8}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestParseCertificatesRealFiles: every certificate file of the shared
// test data and of this machine's trust stores loads.
func TestParseCertificatesRealFiles(t *testing.T) {
	var files []string
	for _, dir := range []string{testenv.Shared(t, "testdata"), "/usr/share/shim", "/etc/ssl/certs", "/usr/share/ca-certificates"} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				switch filepath.Ext(p) {
				case ".pem", ".crt", ".cer", ".der":
					files = append(files, p)
				}
			}
			return nil
		})
	}
	if len(files) == 0 {
		t.Skip("no certificate files")
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("PUBLIC KEY-----")) {
			continue // a key, not a certificate file
		}
		if _, err := signing.ParseCertificates(data); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	t.Logf("%d files", len(files))
}

func TestLoadChain(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	write := func(t *testing.T, data []byte) string {
		p := filepath.Join(t.TempDir(), "chain.pem")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := append([]byte("subject=CN = Test Code Signing\n"), testca.PEM(leaf.Cert, ca.Intermediate.Cert)...)
	certs, err := signing.LoadChain(write(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 || !certs[0].Equal(leaf.Cert) || !certs[1].Equal(ca.Intermediate.Cert) {
		t.Fatalf("LoadChain returned %d certificates, not leaf then intermediate", len(certs))
	}
	if certs, err := signing.LoadChain(write(t, leaf.Cert.Raw)); err != nil || len(certs) != 1 {
		t.Fatalf("DER: %d certificates, %v", len(certs), err)
	}
	var many []*x509.Certificate
	for range 17 {
		many = append(many, leaf.Cert)
	}
	for name, data := range map[string][]byte{
		"with a private key": append(testca.PEM(leaf.Cert), testca.KeyPEM(t, leaf.Key)...),
		"no certificates":    []byte("nothing here"),
		"17 certificates":    testca.PEM(many...),
		"garbage DER":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
	} {
		t.Run(name, func(t *testing.T) {
			p := write(t, data)
			_, err := signing.LoadChain(p)
			if !errors.Is(err, signing.ErrChainFile) {
				t.Fatalf("got %v, want ErrChainFile", err)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%q does not name the file", err)
			}
		})
	}
	if _, err := signing.LoadChain(filepath.Join(t.TempDir(), "none.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
}

// FuzzParseCertificates: the rule never panics, returns certificates or
// an error (not both), and what it returns reads back the same from PEM
// and, for one certificate longer than 127 bytes (every real one), from
// DER.
func FuzzParseCertificates(f *testing.F) {
	good, bad := certFileCases(f)
	for _, m := range []map[string][]byte{good, bad} {
		for _, data := range m {
			if len(data) < 64<<10 {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := signing.ParseCertificates(data)
		one, oneErr := signing.ParseOneCertificate(data)
		if err != nil {
			if certs != nil || one != nil || !errors.Is(err, signing.ErrCertificate) || !errors.Is(oneErr, signing.ErrCertificate) {
				t.Fatalf("error %v with %d certificates, or not ErrCertificate (ParseOneCertificate: %v)", err, len(certs), oneErr)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		if (len(certs) == 1) != (oneErr == nil) {
			t.Fatalf("%d certificates, ParseOneCertificate: %v", len(certs), oneErr)
		}
		var again []byte
		for _, c := range certs {
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		back, err := signing.ParseCertificates(again)
		if err != nil || len(back) != len(certs) {
			t.Fatalf("re-encoded as PEM: %d certificates, %v", len(back), err)
		}
		for i := range back {
			if back[i].SHA256 != certs[i].SHA256 {
				t.Fatalf("certificate #%d differs when read back", i+1)
			}
		}
		if one != nil && len(one.Raw) > 129 { // DER is known by its long-form length
			if d, err := signing.ParseOneCertificate(one.Raw); err != nil || d.SHA256 != one.SHA256 {
				t.Fatalf("DER of the one certificate: %v", err)
			}
		}
	})
}

// TestLoadCertificateFiles: the certificate files csv is given (--certs,
// roots) are read by the one rule, in order, and errors name the file.
func TestLoadCertificateFiles(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "roots.pem")
	os.WriteFile(pemFile, append(testca.PEM(ca.Root.Cert), testca.PEM(ca.Intermediate.Cert)...), 0o644)
	derFile := filepath.Join(dir, "leaf.der")
	leaf := ca.Leaf(t, testca.LeafOptions{})
	os.WriteFile(derFile, leaf.Cert.Raw, 0o644)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)

	certs, err := signing.LoadCertificateFiles([]string{pemFile, derFile})
	if err != nil || len(certs) != 3 || !bytes.Equal(certs[0].Raw, ca.Root.Cert.Raw) || !bytes.Equal(certs[2].Raw, leaf.Cert.Raw) {
		t.Fatalf("LoadCertificateFiles = %d certificates, %v", len(certs), err)
	}
	xs, err := signing.LoadX509CertificateFiles([]string{pemFile})
	if err != nil || len(xs) != 2 || !xs[1].Equal(ca.Intermediate.Cert) {
		t.Fatalf("LoadX509CertificateFiles = %d certificates, %v", len(xs), err)
	}
	if _, err := signing.LoadCertificateFiles([]string{pemFile, bad}); !errors.Is(err, signing.ErrCertificate) || !strings.Contains(err.Error(), bad) {
		t.Errorf("a bad file: %v, want ErrCertificate naming it", err)
	}
	if _, err := signing.LoadCertificates(filepath.Join(dir, "missing.pem")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing file: %v", err)
	}
}
