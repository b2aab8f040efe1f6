package ima

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// The peer is evmctl (ima-evm-utils, .ci/run installs it): `evmctl
// ima_sign --sigfile` writes FILE.sig, the bytes it would put in
// security.ima, and `evmctl ima_verify --sigfile --key CERT.der` checks
// one against a certificate, exiting 0 only when it verifies.

// peerFiles are the inputs both ways: empty, one byte, one 4 KiB block,
// and sizes that are not block-aligned.
var peerSizes = []int{0, 1, 4096, 5000, 70000}

func fileOf(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func evmctl(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EVMCTL_KEY_PASSWORD=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type peerKey struct {
	name string
	leaf *testca.Cert
	c    *signing.Certificate
}

func peerKeys(p *pki) []peerKey {
	return []peerKey{{"rsa", p.rsa, p.rsaCert}, {"ecdsa", p.ec, p.ecCert}}
}

func digestOf(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// TestEvmctlSignsCSVVerifies: what evmctl ima_sign writes, csv verifies
// against the file's digest with the signer's certificate as the keyring;
// one changed byte of the file or of the signature is refused by csv and by
// evmctl alike.
func TestEvmctlSignsCSVVerifies(t *testing.T) {
	bin := testenv.Tool(t, "evmctl")
	p := testPKI(t)
	for _, k := range peerKeys(p) {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA512} {
			for _, size := range peerSizes {
				t.Run(fmt.Sprintf("%s-%v-%d", k.name, h, size), func(t *testing.T) {
					dir := t.TempDir()
					keyFile := filepath.Join(dir, "key.pem")
					certFile := filepath.Join(dir, "cert.der")
					writeFile(t, keyFile, testca.KeyPEM(t, k.leaf.Key))
					writeFile(t, certFile, k.leaf.Cert.Raw)
					data := fileOf(size)
					path := filepath.Join(dir, "file")
					writeFile(t, path, data)
					algo := map[crypto.Hash]string{crypto.SHA256: "sha256", crypto.SHA512: "sha512"}[h]
					if out, err := evmctl(t, bin, "ima_sign", "--sigfile", "-a", algo, "--key", keyFile, path); err != nil {
						t.Fatalf("evmctl ima_sign: %v\n%s", err, out)
					}
					raw, err := os.ReadFile(path + ".sig")
					if err != nil {
						t.Fatal(err)
					}
					v, err := Parse(raw)
					if err != nil {
						t.Fatalf("Parse of evmctl's signature: %v", err)
					}
					id, _ := KeyID(k.c)
					if v.KeyID != id {
						t.Fatalf("evmctl's key id %08x, KeyID says %08x", v.KeyID, id)
					}
					keyring := []*signing.Certificate{k.c}
					s := v.Verify(digestOf(h, data), keyring, p.cas)
					if !s.Verified() || s.DigestAlgorithm != h || len(s.Chains) != 1 || len(s.Chains[0]) != 3 {
						t.Fatalf("csv does not verify evmctl's signature: %v", s.Problem)
					}

					// A changed byte of the file.
					changed := append([]byte(nil), data...)
					if len(changed) == 0 {
						changed = []byte{0}
					} else {
						changed[len(changed)/2] ^= 0x01
					}
					if s := v.Verify(digestOf(h, changed), keyring, nil); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
						t.Fatalf("csv: changed file: verified %v, %v", s.Verified(), s.Problem)
					}
					writeFile(t, path, changed)
					if out, err := evmctl(t, bin, "ima_verify", "--sigfile", "--key", certFile, path); err == nil {
						t.Fatalf("evmctl accepts a changed file:\n%s", out)
					}
					writeFile(t, path, data)
					if out, err := evmctl(t, bin, "ima_verify", "--sigfile", "--key", certFile, path); err != nil {
						t.Fatalf("evmctl refuses its own signature: %v\n%s", err, out)
					}

					// A changed byte of the signature.
					bad := append([]byte(nil), raw...)
					bad[len(bad)-2] ^= 0x10
					writeFile(t, path+".sig", bad)
					if out, err := evmctl(t, bin, "ima_verify", "--sigfile", "--key", certFile, path); err == nil {
						t.Fatalf("evmctl accepts a changed signature:\n%s", out)
					}
					if bv, err := Parse(bad); err == nil {
						if s := bv.Verify(digestOf(h, data), keyring, nil); s.Verified() {
							t.Fatal("csv verifies a changed signature")
						}
					}
				})
			}
		}
	}
}

// TestCSVSignsEvmctlVerifies: evmctl ima_verify accepts the sidecar csv
// writes, and refuses it once a byte of the file or of the signature
// changes.
func TestCSVSignsEvmctlVerifies(t *testing.T) {
	bin := testenv.Tool(t, "evmctl")
	p := testPKI(t)
	for _, k := range peerKeys(p) {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
			for _, size := range peerSizes {
				t.Run(fmt.Sprintf("%s-%v-%d", k.name, h, size), func(t *testing.T) {
					dir := t.TempDir()
					certFile := filepath.Join(dir, "cert.der")
					writeFile(t, certFile, k.leaf.Cert.Raw)
					data := fileOf(size)
					path := filepath.Join(dir, "file")
					writeFile(t, path, data)
					raw, err := Sign(digestOf(h, data), h, k.leaf.Key, k.leaf.Cert)
					if err != nil {
						t.Fatal(err)
					}
					writeFile(t, path+".sig", raw)
					if out, err := evmctl(t, bin, "ima_verify", "--sigfile", "--key", certFile, path); err != nil {
						t.Fatalf("evmctl refuses csv's signature: %v\n%s", err, out)
					}
					changed := append(append([]byte(nil), data...), 'x')
					writeFile(t, path, changed)
					if out, err := evmctl(t, bin, "ima_verify", "--sigfile", "--key", certFile, path); err == nil {
						t.Fatalf("evmctl accepts csv's signature on a changed file:\n%s", out)
					}
					writeFile(t, path, data)
					bad := append([]byte(nil), raw...)
					bad[hdrLen+3] ^= 0x01
					writeFile(t, path+".sig", bad)
					if out, err := evmctl(t, bin, "ima_verify", "--sigfile", "--key", certFile, path); err == nil {
						t.Fatalf("evmctl accepts a changed signature:\n%s", out)
					}
				})
			}
		}
	}
}
