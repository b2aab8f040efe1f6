// Package kmstest serves a fake AWS KMS and a fake Vault transit engine on
// loopback for tests of KMS
// signing (package keys, and csv handing a KMS-keyed command to csv-kms),
// and sets an environment in which the AWS SDK reaches only it.
package kmstest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
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

// FakeVault serves the Vault transit engine's keys and sign endpoints for
// one ECDSA P-256 key named name, and counts the signatures it makes.
func FakeVault(t testing.TB, name, token string, key *ecdsa.PrivateKey) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	var signed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != token {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		var out any
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/transit/keys/"+name:
			out = map[string]any{"data": map[string]any{
				"latest_version": 1,
				"keys":           map[string]any{"1": map[string]any{"public_key": string(pubPEM), "name": "P-256"}},
			}}
		case (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.URL.Path == "/v1/transit/sign/"+name+"/sha2-256":
			var in struct {
				Input     string `json:"input"`
				Prehashed bool   `json:"prehashed"`
			}
			digest, err := []byte(nil), json.NewDecoder(r.Body).Decode(&in)
			if err == nil {
				digest, err = base64.StdEncoding.DecodeString(in.Input)
			}
			if err != nil || !in.Prehashed || len(digest) != sha256.Size {
				http.Error(w, `{"errors":["bad request"]}`, http.StatusBadRequest)
				return
			}
			sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			signed.Add(1)
			out = map[string]any{"data": map[string]any{"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig)}}
		default:
			http.Error(w, `{"errors":["no handler"]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv, &signed
}
