// Package kmstest serves a fake AWS KMS on loopback for tests of KMS
// signing (package keys, and csv handing a KMS-keyed command to csv-kms),
// and sets an environment in which the AWS SDK reaches only it.
package kmstest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testca"
)

// AWSKeyID is the fake's one key.
const AWSKeyID = "1234abcd-12ab-34cd-56ef-1234567890ab"

// FakeAWSKMS serves DescribeKey, GetPublicKey and Sign (AWS JSON 1.1) for
// one ECDSA P-256 key, over TLS on loopback. Ref is the awskms:// reference
// of the key at it (awskms://HOST:PORT/KEY sets the endpoint).
func FakeAWSKMS(t testing.TB, key *ecdsa.PrivateKey) (srv *httptest.Server, ref string) {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var out any
		switch r.Header.Get("X-Amz-Target") {
		case "TrentService.DescribeKey":
			out = map[string]any{"KeyMetadata": map[string]any{
				"KeyId": AWSKeyID, "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
				"SigningAlgorithms": []string{"ECDSA_SHA_256"}, "Enabled": true, "KeyState": "Enabled",
			}}
		case "TrentService.GetPublicKey":
			out = map[string]any{"KeyId": AWSKeyID, "PublicKey": base64.StdEncoding.EncodeToString(spki),
				"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": []string{"ECDSA_SHA_256"}}
		case "TrentService.Sign":
			var in struct{ Message []byte }
			if err := json.Unmarshal(body, &in); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			sig, err := ecdsa.SignASN1(rand.Reader, key, in.Message)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out = map[string]any{"KeyId": AWSKeyID, "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"}
		default:
			http.Error(w, "unexpected "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv, "awskms://" + srv.Listener.Addr().String() + "/" + AWSKeyID
}

// AWSEnv sets (with t.Setenv) static test credentials, no config files,
// no instance metadata, one attempt, and, for srv, AWS_CA_BUNDLE trusting
// its certificate: the SDK reaches nothing but srv.
func AWSEnv(t *testing.T, srv *httptest.Server) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCSVTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "csv-test-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	if srv != nil {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, testca.PEM(srv.Certificate()), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", ca)
	}
}
