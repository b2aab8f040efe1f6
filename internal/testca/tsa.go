package testca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// TSA issues a time-stamping certificate from the intermediate CA, valid
// from a year before Epoch to five years after: key usage digitalSignature
// and the timeStamping EKU alone, critical, as RFC 3161 and OpenSSL's
// responder require (x509.ExtKeyUsage is written non-critical).
func (ca *CA) TSA(t TB) *Cert {
	t.Helper()
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"csv tests"}, CommonName: "Test TSA"},
		NotBefore:             Epoch.AddDate(-1, 0, 0),
		NotAfter:              Epoch.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	return ca.sign(t, tmpl, ca.Intermediate, nextKey(t, RSA2048))
}

// ServerTB is the part of testing.TB a test server needs.
type ServerTB interface {
	TB
	TempDir() string
	Cleanup(func())
	Errorf(format string, args ...any)
}

// OpenSSLTSA serves RFC 3161 requests over HTTP with OpenSSL's responder
// (`openssl ts -reply`, the binary at openssl), signing with tsa and
// carrying chain (the TSA certificate first). It stamps the current time:
// an independent TSA for the tests of csv's requests and of what csv does
// with the answers. It returns the URL.
func OpenSSLTSA(t ServerTB, openssl string, tsa *Cert, chain ...*x509.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"tsa.key":   KeyPEM(t, tsa.Key),
		"chain.pem": PEM(chain...),
		"serial":    []byte("01\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("testca: %v", err)
		}
	}
	cnf := filepath.Join(dir, "tsa.cnf")
	conf := fmt.Sprintf(`[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = %[1]s/serial
crypto_device = builtin
signer_cert = %[1]s/chain.pem
certs = %[1]s/chain.pem
signer_key = %[1]s/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.2
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
`, dir)
	if err := os.WriteFile(cnf, []byte(conf), 0o600); err != nil {
		t.Fatalf("testca: %v", err)
	}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q, rsp := filepath.Join(dir, "q.tsq"), filepath.Join(dir, "r.tsr")
		if err := os.WriteFile(q, body, 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if msg, err := exec.Command(openssl, "ts", "-reply", "-config", cnf, "-queryfile", q, "-out", rsp).CombinedOutput(); err != nil {
			t.Errorf("openssl ts -reply: %v\n%s", err, msg)
			http.Error(w, "openssl failed", http.StatusInternalServerError)
			return
		}
		data, err := os.ReadFile(rsp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
