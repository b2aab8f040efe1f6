//go:build cgo

package keys_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/keys"
)

// softHSMModule returns the SoftHSM2 PKCS#11 library, or skips (fails under
// CSV_REQUIRE_PEERS=1). Debian: apt-get install softhsm2.
func softHSMModule(t *testing.T) string {
	t.Helper()
	testenv.Tool(t, "softhsm2-util")
	for _, p := range []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
		"/opt/homebrew/lib/softhsm/libsofthsm2.so",
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	why := "libsofthsm2.so not found (apt-get install softhsm2)"
	if os.Getenv("CSV_REQUIRE_PEERS") == "1" {
		t.Fatalf("required by CSV_REQUIRE_PEERS=1: %s", why)
	}
	t.Skip(why)
	return ""
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestPKCS11SoftHSM signs through LoadSigner with pkcs11: URIs against a
// real SoftHSM2 token made in a temporary directory, holding an RSA, an
// ECDSA P-256 and an ECDSA P-384 key imported with softhsm2-util. The
// PKCS#11 module is initialized once per process (SOFTHSM2_CONF is read
// then), so all PKCS#11 cases live in this one test.
func TestPKCS11SoftHSM(t *testing.T) {
	module := softHSMModule(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	t.Setenv("CSV_PKCS11_PIN", "")
	os.Unsetenv("CSV_PKCS11_PIN")
	const pin = "1234"
	run(t, "softhsm2-util", "--init-token", "--free", "--label", "csv-test", "--pin", pin, "--so-pin", "5678")

	ca := testca.New(t)
	rsaLeaf := ca.Leaf(t, testca.LeafOptions{CommonName: "HSM RSA Signing"})
	ecLeaf := ca.Leaf(t, testca.LeafOptions{CommonName: "HSM EC Signing", KeyType: testca.ECDSAP256})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		label, id string
		key       crypto.Signer
	}{
		{"rsa-key", "01", rsaLeaf.Key},
		{"ec-key", "02", ecLeaf.Key},
		{"p384-key", "03", p384},
	} {
		path := filepath.Join(dir, k.label+".pem")
		if err := os.WriteFile(path, testca.KeyPEM(t, k.key), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "softhsm2-util", "--import", path, "--token", "csv-test", "--label", k.label, "--id", k.id, "--pin", pin)
	}
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := func(path, query string) string {
		return "pkcs11:" + path + "?module-path=" + module + query
	}
	load := func(t *testing.T, ref string) (crypto.Signer, error) {
		t.Helper()
		s, err := keys.LoadSigner(context.Background(), ref, keys.LoadOptions{})
		if err == nil {
			t.Cleanup(func() { _ = s.(io.Closer).Close() })
		}
		return s, err
	}

	// Before any successful login: once a session is logged in, C_Login
	// answers CKR_USER_ALREADY_LOGGED_IN whatever the PIN.
	t.Run("wrong PIN", func(t *testing.T) {
		_, err := load(t, uri("token=csv-test;object=rsa-key", "&pin-value=9999"))
		if !errors.Is(err, keys.ErrWrongPassword) {
			t.Fatalf("got %v, want ErrWrongPassword", err)
		}
		if strings.Contains(err.Error(), "9999") {
			t.Errorf("error %q shows the PIN", err)
		}
	})
	t.Run("no PIN", func(t *testing.T) {
		if _, err := load(t, uri("token=csv-test;object=rsa-key", "")); !errors.Is(err, keys.ErrNoPassword) {
			t.Fatalf("got %v, want ErrNoPassword", err)
		}
	})

	t.Run("RSA by label, pin-value", func(t *testing.T) {
		s, err := load(t, uri("token=csv-test;object=rsa-key;type=private", "&pin-value="+pin))
		if err != nil {
			t.Fatal(err)
		}
		checkSigns(t, s, rsaLeaf.Cert.PublicKey) // PKCS#1 v1.5 and PSS
		if err := signing.CheckSigningChain(s, []*x509.Certificate{rsaLeaf.Cert, ca.Intermediate.Cert}, testca.Epoch); err != nil {
			t.Fatalf("CheckSigningChain with the HSM key: %v", err)
		}
		if err := signing.CheckSigningChain(s, []*x509.Certificate{ecLeaf.Cert, ca.Intermediate.Cert}, testca.Epoch); !errors.Is(err, signing.ErrKeyMismatch) {
			t.Fatalf("HSM key against another certificate: got %v", err)
		}
	})
	t.Run("EC by id, pin-source file URI", func(t *testing.T) {
		s, err := load(t, uri("token=csv-test;id=%02", "&pin-source=file://"+pinFile))
		if err != nil {
			t.Fatal(err)
		}
		checkSigns(t, s, ecLeaf.Cert.PublicKey)
	})
	t.Run("EC P-384 with SHA-384, PIN from the environment", func(t *testing.T) {
		t.Setenv("CSV_PKCS11_PIN", pin)
		s, err := load(t, uri("token=csv-test;object=p384-key", ""))
		if err != nil {
			t.Fatal(err)
		}
		if !p384.PublicKey.Equal(s.Public()) {
			t.Fatal("Public() is not the P-384 key")
		}
		d := sha512.Sum384([]byte("csv"))
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA384)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&p384.PublicKey, d[:], sig) {
			t.Fatal("P-384 signature does not verify")
		}
		if _, err := s.Sign(rand.Reader, d[:32], crypto.SHA256); err != nil {
			t.Fatalf("SHA-256 digest with a P-384 key: %v", err)
		}
		if _, err := s.Sign(rand.Reader, d[:20], crypto.SHA1); !errors.Is(err, keys.ErrUnsupportedKey) {
			t.Fatalf("SHA-1: got %v, want ErrUnsupportedKey", err)
		}
	})
	t.Run("concurrent signing on one session", func(t *testing.T) {
		s, err := load(t, uri("token=csv-test;object=ec-key", "&pin-value="+pin))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				for range 10 {
					d := make([]byte, 32)
					d[0] = byte(i)
					sig, err := s.Sign(rand.Reader, d, crypto.SHA256)
					if err == nil && !ecdsa.VerifyASN1(ecLeaf.Cert.PublicKey.(*ecdsa.PublicKey), d, sig) {
						err = errors.New("bad signature")
					}
					if err != nil {
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("closed signer", func(t *testing.T) {
		s, err := load(t, uri("token=csv-test;object=ec-key", "&pin-value="+pin))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.(io.Closer).Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, keys.ErrPKCS11) {
			t.Fatalf("Sign after Close: got %v", err)
		}
	})
	for _, tt := range []struct {
		name, ref string
		wantErr   error
	}{
		{"no such object", uri("token=csv-test;object=nope", "&pin-value="+pin), keys.ErrPKCS11},
		{"no such token", uri("token=other;object=rsa-key", "&pin-value="+pin), keys.ErrPKCS11},
		{"no such module", "pkcs11:object=rsa-key?module-path=" + filepath.Join(dir, "nope.so") + "&pin-value=" + pin, fs.ErrNotExist},
		{"not a PKCS#11 module", "pkcs11:object=rsa-key?module-path=" + conf + "&pin-value=" + pin, keys.ErrPKCS11},
		{"unreadable pin-source", uri("token=csv-test;object=rsa-key", "&pin-source="+filepath.Join(dir, "nope")), fs.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := load(t, tt.ref); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}
