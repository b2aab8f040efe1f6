package keys_test

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/codesignval/csv/internal/kmstest"
	"github.com/codesignval/csv/internal/sgtest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/keys"
	_ "github.com/codesignval/csv/signing/keys/kmsproviders" // the KMS tests load keys through them
)

// writeFile writes data to a new file in t's temp dir.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkSigns signs a digest with s and verifies it with want's public key.
func checkSigns(t *testing.T, s crypto.Signer, want crypto.PublicKey) {
	t.Helper()
	if pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(want) {
		t.Fatalf("Public() = %T, not the key's public key", s.Public())
	}
	msg := []byte("csv signing test")
	digest := sha256.Sum256(msg)
	switch p := want.(type) {
	case *rsa.PublicKey:
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("PKCS#1 v1.5 signature does not verify: %v", err)
		}
		sig, err = s.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
		if err != nil {
			t.Fatalf("Sign (PSS): %v", err)
		}
		if err := rsa.VerifyPSS(p, crypto.SHA256, digest[:], sig, nil); err != nil {
			t.Fatalf("PSS signature does not verify: %v", err)
		}
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if !ecdsa.VerifyASN1(p, digest[:], sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	case ed25519.PublicKey:
		sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if !ed25519.Verify(p, msg, sig) {
			t.Fatal("Ed25519 signature does not verify")
		}
	default:
		t.Fatalf("unexpected key type %T", want)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestLoadSignerPEM(t *testing.T) {
	rsaKey := testca.New(t).Leaf(t, testca.LeafOptions{}).Key.(*rsa.PrivateKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	ecParams, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 34})
	cert := testca.New(t).Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	tests := []struct {
		name string
		pem  []byte
		pub  crypto.PublicKey
	}{
		{"PKCS#8 RSA", testca.KeyPEM(t, rsaKey), &rsaKey.PublicKey},
		{"PKCS#8 ECDSA", testca.KeyPEM(t, ecKey), &ecKey.PublicKey},
		{"PKCS#8 Ed25519", testca.KeyPEM(t, edKey), edKey.Public()},
		{"PKCS#1 RSA", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), &rsaKey.PublicKey},
		{"SEC1 EC with EC PARAMETERS first (openssl ecparam -genkey)", append(pemBlock("EC PARAMETERS", ecParams), pemBlock("EC PRIVATE KEY", sec1)...), &ecKey.PublicKey},
		{"key and certificate in one file", append(testca.PEM(cert.Cert), testca.KeyPEM(t, cert.Key)...), cert.Cert.PublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := keys.LoadSigner(context.Background(), writeFile(t, "key.pem", tt.pem), keys.LoadOptions{})
			if err != nil {
				t.Fatalf("LoadSigner: %v", err)
			}
			checkSigns(t, s, tt.pub)
		})
	}
}

// encryptLegacy writes a "Proc-Type: 4,ENCRYPTED" PEM block.
func encryptLegacy(t *testing.T, typ string, der []byte, pw string) []byte {
	t.Helper()
	b, err := x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(pw), x509.PEMCipherAES256) //nolint:staticcheck // the format under test
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b)
}

func TestLoadSignerEncrypted(t *testing.T) {
	rsaKey := testca.New(t).Leaf(t, testca.LeafOptions{}).Key.(*rsa.PrivateKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	const pw = "correct horse"
	sigstoreDER, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(ecKey, cryptoutils.StaticPasswordFunc([]byte(pw)))
	if err != nil {
		t.Fatal(err)
	}
	type keyFile struct {
		name string
		pem  []byte
		pub  crypto.PublicKey
	}
	files := []keyFile{
		{"legacy PEM RSA", encryptLegacy(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), pw), &rsaKey.PublicKey},
		{"legacy PEM EC", encryptLegacy(t, "EC PRIVATE KEY", sec1, pw), &ecKey.PublicKey},
		{"sigstore scrypt+secretbox", pemBlock("ENCRYPTED SIGSTORE PRIVATE KEY", sigstoreDER), &ecKey.PublicKey},
	}
	// Encrypted PKCS#8 as openssl writes it, with each KDF and cipher.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		plain := writeFile(t, "plain.pem", testca.KeyPEM(t, ecKey))
		for _, args := range [][]string{
			{"-v2", "aes-256-cbc"},
			{"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"},
			{"-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA1"},
			{"-v2", "des3"},
			{"-scrypt"},
		} {
			cmd := exec.Command(openssl, append([]string{"pkcs8", "-topk8", "-in", plain, "-passout", "env:PW"}, args...)...)
			cmd.Env = append(os.Environ(), "PW="+pw)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("openssl pkcs8 %v: %v", args, err)
			}
			files = append(files, keyFile{"openssl PKCS#8 " + strings.Join(args, " "), out, &ecKey.PublicKey})
		}
		cmd := exec.Command(openssl, "rsa", "-traditional", "-aes256", "-passout", "env:PW")
		cmd.Env = append(os.Environ(), "PW="+pw)
		cmd.Stdin = strings.NewReader(string(testca.KeyPEM(t, rsaKey)))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl rsa -traditional: %v", err)
		}
		files = append(files, keyFile{"openssl legacy PEM RSA", out, &rsaKey.PublicKey})
	} else {
		t.Log("openssl not found: encrypted PKCS#8 cases skipped")
	}
	t.Run("cosign scrypt+secretbox (old PEM type)", func(t *testing.T) {
		t.Setenv("CSV_KEY_PASSWORD", pw)
		s, err := keys.LoadSigner(context.Background(), writeFile(t, "key.pem", pemBlock("ENCRYPTED COSIGN PRIVATE KEY", sigstoreDER)), keys.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkSigns(t, s, &ecKey.PublicKey)
	})
	for i, f := range files {
		t.Run(f.name, func(t *testing.T) {
			path := writeFile(t, "key.pem", f.pem)
			t.Setenv("CSV_KEY_PASSWORD", pw)
			s, err := keys.LoadSigner(context.Background(), path, keys.LoadOptions{})
			if err != nil {
				t.Fatalf("LoadSigner: %v", err)
			}
			checkSigns(t, s, f.pub)

			t.Setenv("CSV_KEY_PASSWORD", "wrong horse")
			_, err = keys.LoadSigner(context.Background(), path, keys.LoadOptions{})
			if !errors.Is(err, keys.ErrWrongPassword) {
				t.Fatalf("wrong password: got %v, want ErrWrongPassword", err)
			}
			if !strings.Contains(err.Error(), "wrong password") {
				t.Errorf("wrong password message %q does not say so", err)
			}

			os.Unsetenv("CSV_KEY_PASSWORD")
			_, err = keys.LoadSigner(context.Background(), path, keys.LoadOptions{})
			if !errors.Is(err, keys.ErrNoPassword) || !strings.Contains(err.Error(), "CSV_KEY_PASSWORD") {
				t.Fatalf("no password: got %v, want ErrNoPassword naming CSV_KEY_PASSWORD", err)
			}

			if i == 0 { // once: each scrypt derivation costs a second under -race
				t.Setenv("MY_KEY_PW", pw)
				if _, err := keys.LoadSigner(context.Background(), path, keys.LoadOptions{PasswordEnv: "MY_KEY_PW"}); err != nil {
					t.Fatalf("PasswordEnv MY_KEY_PW: %v", err)
				}
			}
		})
	}
}

// TestLoadSignerCosignKey reads a key written by cosign generate-key-pair.
func TestLoadSignerCosignKey(t *testing.T) {
	cosign := sgtest.Cosign(t)
	dir := t.TempDir()
	cmd := exec.Command(cosign, "generate-key-pair")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=cosign pw")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CSV_KEY_PASSWORD", "cosign pw")
	s, err := keys.LoadSigner(context.Background(), filepath.Join(dir, "cosign.key"), keys.LoadOptions{})
	if err != nil {
		t.Fatalf("LoadSigner(cosign.key): %v", err)
	}
	checkSigns(t, s, pub)
	t.Setenv("CSV_KEY_PASSWORD", "not it")
	if _, err := keys.LoadSigner(context.Background(), filepath.Join(dir, "cosign.key"), keys.LoadOptions{}); !errors.Is(err, keys.ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
}

func TestLoadSignerErrors(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	ec := testca.New(t).Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	x25519DER, _ := x509.MarshalPKCS8PrivateKey(x25519)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ref     string
		wantErr error
	}{
		{"missing file", filepath.Join(dir, "nope.pem"), fs.ErrNotExist},
		{"missing file is a key file error", filepath.Join(dir, "nope.pem"), keys.ErrKeyFile},
		{"directory", dir, keys.ErrKeyFile},
		{"over the size cap", big, keys.ErrKeyFile},
		{"not PEM", writeFile(t, "k.pem", []byte("hello")), keys.ErrKeyFile},
		{"certificate only", writeFile(t, "k.pem", testca.PEM(ec.Cert)), keys.ErrKeyFile},
		{"two keys", writeFile(t, "k.pem", append(testca.KeyPEM(t, ec.Key), testca.KeyPEM(t, ec.Key)...)), keys.ErrKeyFile},
		{"corrupt PKCS#8", writeFile(t, "k.pem", pemBlock("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00})), keys.ErrKeyFile},
		{"RSA 1024", writeFile(t, "k.pem", testca.KeyPEM(t, small)), keys.ErrUnsupportedKey},
		{"ECDSA P-224", writeFile(t, "k.pem", testca.KeyPEM(t, p224)), keys.ErrUnsupportedKey},
		{"X25519", writeFile(t, "k.pem", pemBlock("PRIVATE KEY", x25519DER)), keys.ErrUnsupportedKey},
		{"OpenSSH", writeFile(t, "k.pem", pemBlock("OPENSSH PRIVATE KEY", []byte("x"))), keys.ErrUnsupportedKey},
		{"unknown scheme", "s3://bucket/key", keys.ErrUnknownScheme},
		{"file:// is not a scheme csv knows", "file:///tmp/key.pem", keys.ErrUnknownScheme},
		{"empty reference", "", keys.ErrKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keys.LoadSigner(context.Background(), tt.ref, keys.LoadOptions{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "keys: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestEncryptedPKCS8Caps feeds hand-made EncryptedPrivateKeyInfo structures
// whose key derivation would cost too much.
func TestEncryptedPKCS8Caps(t *testing.T) {
	type algID struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	raw := func(v any) asn1.RawValue {
		der, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return asn1.RawValue{FullBytes: der}
	}
	build := func(kdf algID) []byte {
		iv := make([]byte, 16)
		scheme := algID{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, raw(iv)}
		pbes2 := struct{ KDF, Scheme algID }{kdf, scheme}
		info := struct {
			Alg  algID
			Data []byte
		}{algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}, raw(pbes2)}, make([]byte, 32)}
		der, err := asn1.Marshal(info)
		if err != nil {
			t.Fatal(err)
		}
		return pemBlock("ENCRYPTED PRIVATE KEY", der)
	}
	pbkdf2 := func(iter int) algID {
		return algID{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}, raw(struct {
			Salt []byte
			Iter int
		}{[]byte("salt"), iter})}
	}
	scrypt := func(n, r, p int) algID {
		return algID{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}, raw(struct {
			Salt    []byte
			N, R, P int
		}{[]byte("salt"), n, r, p})}
	}
	pw := func() ([]byte, error) { return []byte("pw"), nil }
	for name, data := range map[string][]byte{
		"PBKDF2 2^31-1 iterations":  build(pbkdf2(1<<31 - 1)),
		"PBKDF2 0 iterations":       build(pbkdf2(0)),
		"scrypt N=2^24":             build(scrypt(1<<24, 8, 1)),
		"scrypt p=1000":             build(scrypt(1<<10, 8, 1000)),
		"scrypt N not a power of 2": build(scrypt(1000, 8, 1)),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := keys.ParsePrivateKeyPEM(data, pw)
			if !errors.Is(err, keys.ErrKeyFile) {
				t.Fatalf("got %v, want ErrKeyFile", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusing took %v", d)
			}
		})
	}
	// Within the caps, a wrong key gives bad padding: "wrong password".
	if _, err := keys.ParsePrivateKeyPEM(build(pbkdf2(1000)), pw); !errors.Is(err, keys.ErrWrongPassword) {
		t.Fatalf("garbage ciphertext: got %v, want ErrWrongPassword", err)
	}
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	f.Add(pemBlock("PRIVATE KEY", der))
	f.Add(pemBlock("ENCRYPTED PRIVATE KEY", der))
	f.Add(pemBlock("ENCRYPTED SIGSTORE PRIVATE KEY", []byte(`{"kdf":{"name":"scrypt"}}`)))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00000000000000000000000000000000\n\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keys.ParsePrivateKeyPEM(data, func() ([]byte, error) { return []byte("pw"), nil })
		if (k == nil) == (err == nil) {
			t.Fatalf("key %v and error %v", k, err)
		}
	})
}

// TestKMSSchemesRegistered checks that each KMS scheme reaches its sigstore
// provider: a reference the provider cannot parse gets the provider's own
// error, offline.
func TestKMSSchemesRegistered(t *testing.T) {
	for _, tt := range []struct{ ref, providerSays string }{
		{"awskms://not a key", "awskms://"},
		{"gcpkms://not-a-key", "gcpkms://"},
		{"azurekms://not a key", "azurekms://"},
		{"hashivault://not a key!", "hashivault://"},
		{"openbao://not a key!", "hashivault://"},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := keys.LoadSigner(context.Background(), tt.ref, keys.LoadOptions{})
			if !errors.Is(err, keys.ErrKMS) {
				t.Fatalf("got %v, want a KMS provider error", err)
			}
			if !strings.Contains(err.Error(), "kms specification should be in the format "+tt.providerSays) {
				t.Errorf("error %q is not the provider's reference-format error", err)
			}
		})
	}
}

// TestGCPKMSNoCredentials: a valid gcpkms reference without credentials
// fails in the provider, before any network call.
func TestGCPKMSNoCredentials(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	_, err := keys.LoadSigner(context.Background(), "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1", keys.LoadOptions{})
	if !errors.Is(err, keys.ErrKMS) || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("got %v, want the provider's credentials error", err)
	}
}

// TestAWSKMSFake signs through the aws provider against a fake KMS on
// loopback (awskms://HOST:PORT/KEY sets the endpoint; AWS_CA_BUNDLE trusts
// the fake's certificate).
func TestAWSKMSFake(t *testing.T) {
	key := testca.New(t).Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	srv, ref := kmstest.FakeAWSKMS(t, key.Key.(*ecdsa.PrivateKey))
	kmstest.AWSEnv(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := keys.LoadSigner(ctx, ref, keys.LoadOptions{})
	if err != nil {
		t.Fatalf("LoadSigner(%s): %v", ref, err)
	}
	checkSigns(t, s, key.Cert.PublicKey)
	if err := signing.CheckSigningChain(s, []*x509.Certificate{key.Cert}, testca.Epoch); err != nil {
		t.Fatalf("CheckSigningChain with the KMS signer: %v", err)
	}
}

// TestAWSKMSUnreachable: with the endpoint on a closed loopback port the
// error is the provider's, after one attempt.
func TestAWSKMSUnreachable(t *testing.T) {
	kmstest.AWSEnv(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = keys.LoadSigner(ctx, "awskms://"+addr+"/alias/csv-build", keys.LoadOptions{})
	if !errors.Is(err, keys.ErrKMS) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want the provider's connection error", err)
	}
}

func TestHashivaultFake(t *testing.T) {
	key := testca.New(t).Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	srv, _ := kmstest.FakeVault(t, "csv-build", "csv-test-token", key.Key.(*ecdsa.PrivateKey))
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "csv-test-token")
	s, err := keys.LoadSigner(context.Background(), "hashivault://csv-build", keys.LoadOptions{})
	if err != nil {
		t.Fatalf("LoadSigner: %v", err)
	}
	checkSigns(t, s, key.Cert.PublicKey)
	if _, err := s.Sign(rand.Reader, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256}); !errors.Is(err, keys.ErrUnsupportedKey) {
		t.Errorf("PSS through KMS: got %v, want ErrUnsupportedKey", err)
	}

	t.Setenv("VAULT_TOKEN", "wrong-token")
	if _, err := keys.LoadSigner(context.Background(), "hashivault://csv-build", keys.LoadOptions{}); !errors.Is(err, keys.ErrKMS) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("wrong token: got %v, want the provider's permission error", err)
	}
}
