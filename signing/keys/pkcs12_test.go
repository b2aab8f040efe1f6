package keys_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing/keys"
)

func password(pw string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(pw), nil }
}

// pfxFixture encodes a PKCS#12 file with go-pkcs12, its CA certificates
// in the order given.
func pfxFixture(t *testing.T, enc *pkcs12.Encoder, pw string) ([]byte, *testca.CA, *testca.Cert) {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	// The root before the intermediate: the order a file may hold them in.
	data, err := enc.Encode(leaf.Key, leaf.Cert, []*x509.Certificate{ca.Root.Cert, ca.Intermediate.Cert}, pw)
	if err != nil {
		t.Fatal(err)
	}
	return data, ca, leaf
}

// TestParsePKCS12: the key and its chain, leaf first, whatever the order
// of the CA certificates in the file; a wrong password is ErrWrongPassword;
// a file with an empty password opens without asking.
func TestParsePKCS12(t *testing.T) {
	data, ca, leaf := pfxFixture(t, pkcs12.Modern2023, "s3cret")
	k, err := keys.ParsePKCS12(data, password("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Error("the key is not the leaf's")
	}
	chain := k.Chain()
	want := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert}
	if len(chain) != len(want) {
		t.Fatalf("chain of %d certificates, want %d", len(chain), len(want))
	}
	for i := range want {
		if !chain[i].Equal(want[i]) {
			t.Errorf("chain[%d] = %s, want %s", i, chain[i].Subject, want[i].Subject)
		}
	}
	if _, err := keys.ParsePKCS12(data, password("wrong")); !errors.Is(err, keys.ErrWrongPassword) {
		t.Errorf("wrong password: %v, want ErrWrongPassword", err)
	}
	noPW := func() ([]byte, error) { return nil, keys.ErrNoPassword }
	if _, err := keys.ParsePKCS12(data, noPW); !errors.Is(err, keys.ErrNoPassword) {
		t.Errorf("no password: %v, want ErrNoPassword", err)
	}
	open, _, _ := pfxFixture(t, pkcs12.Modern2023, "")
	if _, err := keys.ParsePKCS12(open, func() ([]byte, error) { t.Error("asked for a password"); return nil, keys.ErrNoPassword }); err != nil {
		t.Errorf("empty password: %v", err)
	}
	legacy, _, _ := pfxFixture(t, pkcs12.LegacyDES, "s3cret")
	if _, err := keys.ParsePKCS12(legacy, password("s3cret")); err != nil {
		t.Errorf("LegacyDES: %v", err)
	}
}

// TestParsePKCS12Hostile: cut and changed files, an iteration count over
// the cap, and files that are not PKCS#12 are ErrKeyFile (or a wrong
// password), never a panic.
func TestParsePKCS12Hostile(t *testing.T) {
	data, _, _ := pfxFixture(t, pkcs12.Modern2023, "s3cret")
	for _, n := range []int{1, 2, 10, len(data) / 2, len(data) - 1} {
		if _, err := keys.ParsePKCS12(data[:n], password("s3cret")); !errors.Is(err, keys.ErrKeyFile) {
			t.Errorf("cut at %d: %v, want ErrKeyFile", n, err)
		}
	}
	for i := 0; i < len(data); i += 97 {
		bad := bytes.Clone(data)
		bad[i] ^= 0x5a
		if _, err := keys.ParsePKCS12(bad, password("s3cret")); err == nil {
			t.Errorf("byte %d changed: accepted", i)
		}
	}
	// SEQUENCE { SEQUENCE { OCTET STRING salt, INTEGER 20000000 } }: a
	// PBE parameter asking for 20 million iterations.
	costly := []byte{0x30, 0x0e, 0x30, 0x0c, 0x04, 0x04, 1, 2, 3, 4, 0x02, 0x04, 0x01, 0x31, 0x2d, 0x00}
	if _, err := keys.ParsePKCS12(costly, password("x")); !errors.Is(err, keys.ErrKeyFile) {
		t.Errorf("20 million iterations: %v, want ErrKeyFile", err)
	}
	// PBKDF2-params whose salt is not an OCTET STRING (go-pkcs12 takes
	// any value), asking for 20 million iterations.
	pbkdf2 := []byte{0x30, 0x15, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c,
		0x30, 0x08, 0x30, 0x00, 0x02, 0x04, 0x01, 0x31, 0x2d, 0x00}
	if _, err := keys.ParsePKCS12(pbkdf2, password("x")); !errors.Is(err, keys.ErrKeyFile) || !strings.Contains(err.Error(), "iteration count 20000000") {
		t.Errorf("PBKDF2 with a SEQUENCE salt, 20 million iterations: %v, want ErrKeyFile naming the count", err)
	}
	huge := []byte{0x30, 0x10, 0x30, 0x0e, 0x04, 0x04, 1, 2, 3, 4, 0x02, 0x06, 0x01, 0, 0, 0, 0, 0}
	if _, err := keys.ParsePKCS12(huge, password("x")); !errors.Is(err, keys.ErrKeyFile) {
		t.Errorf("a 6-byte iteration count: %v, want ErrKeyFile", err)
	}
}

// TestPKCS12OpenSSL: a .pfx that openssl pkcs12 -export writes opens with
// its password and yields openssl's chain; csv's own .pfx (go-pkcs12)
// opens in openssl; a wrong password fails both.
func TestPKCS12OpenSSL(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	dir := t.TempDir()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("leaf.key", testca.KeyPEM(t, leaf.Key))
	chainFile := write("chain.pem", testca.PEM(leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert))
	pfx := filepath.Join(dir, "build.pfx")
	if out, err := exec.Command(openssl, "pkcs12", "-export", "-inkey", keyFile, "-in", chainFile, "-passout", "pass:s3cret", "-out", pfx).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkcs12 -export: %v\n%s", err, out)
	}
	data, err := os.ReadFile(pfx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.ParsePKCS12(data, password("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Chain()) != 3 || !k.Chain()[0].Equal(leaf.Cert) || !k.Chain()[2].Equal(ca.Root.Cert) {
		t.Errorf("chain from openssl's file: %d certificates", len(k.Chain()))
	}
	if _, err := keys.ParsePKCS12(data, password("wrong")); !errors.Is(err, keys.ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	// The other way: go-pkcs12's file, read by openssl.
	ours, err := pkcs12.Modern2023.Encode(leaf.Key, leaf.Cert, []*x509.Certificate{ca.Intermediate.Cert}, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	oursFile := write("ours.pfx", ours)
	out, err := exec.Command(openssl, "pkcs12", "-in", oursFile, "-passin", "pass:s3cret", "-nodes").Output()
	if err != nil {
		t.Fatalf("openssl pkcs12 -in: %v", err)
	}
	var n int
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		n++
	}
	if n != 3 {
		t.Errorf("openssl read %d PEM blocks from go-pkcs12's file, want 3 (key, leaf, intermediate)", n)
	}
	if err := exec.Command(openssl, "pkcs12", "-in", oursFile, "-passin", "pass:wrong", "-nodes").Run(); err == nil {
		t.Error("openssl accepted a wrong password")
	}
	_ = rand.Reader
}

// FuzzParsePKCS12 feeds PKCS#12 files (openssl's where it is installed,
// go-pkcs12's) and cut and changed ones: never a panic, and an error or a
// key with a non-empty chain whose first certificate is the key's.
func FuzzParsePKCS12(f *testing.F) {
	ca := testca.New(f)
	leaf := ca.Leaf(f, testca.LeafOptions{CommonName: "Build Signing"})
	for _, enc := range []*pkcs12.Encoder{pkcs12.Modern2023, pkcs12.LegacyDES, pkcs12.Passwordless} {
		pw := "pw"
		if enc == pkcs12.Passwordless {
			pw = ""
		}
		data, err := enc.Encode(leaf.Key, leaf.Cert, []*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert}, pw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		dir := f.TempDir()
		keyFile, chainFile, pfx := filepath.Join(dir, "k"), filepath.Join(dir, "c"), filepath.Join(dir, "p")
		os.WriteFile(keyFile, testca.KeyPEM(f, leaf.Key), 0o600)
		os.WriteFile(chainFile, testca.PEM(leaf.Cert, ca.Intermediate.Cert), 0o600)
		if exec.Command(openssl, "pkcs12", "-export", "-inkey", keyFile, "-in", chainFile, "-passout", "pass:pw", "-out", pfx).Run() == nil {
			if data, err := os.ReadFile(pfx); err == nil {
				f.Add(data)
			}
		}
	}
	// Iteration counts the cap allows cost seconds each: the fuzzer would
	// spend its time deriving keys.
	defer keys.SetPKCS12IterationCap(4096)()
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keys.ParsePKCS12(data, password("pw"))
		panicerr.Check(t, err)
		if err != nil {
			if k != nil {
				t.Fatal("a key with an error")
			}
			return
		}
		chain := k.Chain()
		if len(chain) == 0 || !chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Fatal("the chain does not start with the key's certificate")
		}
	})
}
