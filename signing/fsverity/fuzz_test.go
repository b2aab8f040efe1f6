package fsverity

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// FuzzSignature parses arbitrary bytes as a built-in signature and, when
// they parse, verifies them: never a panic, a nil result with every error,
// and a signature verifies only over the digest it was made for. Seeds:
// signatures `fsverity sign` makes (RSA, ECDSA; when it is installed),
// csv's own, cut and with bytes flipped.
func FuzzSignature(f *testing.F) {
	ca := testca.New(f)
	rsa := ca.Leaf(f, testca.LeafOptions{})
	ec := ca.Leaf(f, testca.LeafOptions{KeyType: testca.ECDSAP256})
	var certs []*signing.Certificate
	for _, c := range []*testca.Cert{rsa, ec, ca.Intermediate, ca.Root} {
		sc, err := signing.ParseCertificate(c.Cert.Raw)
		if err != nil {
			f.Fatal(err)
		}
		certs = append(certs, sc)
	}
	digest := digestOf([]byte("fuzz"), 4)
	var seeds [][]byte
	for _, leaf := range []*testca.Cert{rsa, ec} {
		s, err := Sign(digest, leaf.Cert, leaf.Key, 0)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, s)
	}
	if tool, err := exec.LookPath("fsverity"); err == nil {
		dir := f.TempDir()
		file := filepath.Join(dir, "f")
		os.WriteFile(file, []byte("fuzz"), 0o600)
		for _, leaf := range []*testca.Cert{rsa, ec} {
			key, cert, sig := filepath.Join(dir, "k"), filepath.Join(dir, "c"), filepath.Join(dir, "s")
			os.WriteFile(key, testca.KeyPEM(f, leaf.Key), 0o600)
			os.WriteFile(cert, testca.PEM(leaf.Cert), 0o600)
			if out, err := exec.Command(tool, "sign", file, sig, "--key="+key, "--cert="+cert).CombinedOutput(); err != nil {
				f.Fatalf("fsverity sign: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(sig)
			seeds = append(seeds, b)
		}
	}
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:len(s)-1])
		for _, at := range []int{1, 15, len(s) / 2, len(s) - 3} {
			b := bytes.Clone(s)
			b[at] ^= 0x80
			f.Add(b)
		}
	}
	other := bytes.Clone(digest)
	other[0] ^= 1
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := ParseSignature(der)
		panicerr.Check(t, err)
		if err != nil {
			if s != nil {
				t.Fatal("a signature with an error")
			}
			return
		}
		v := s.Verify(digest, certs)
		panicerr.Check(t, v.Problem)
		if v.Verified() == (v.Problem != nil) {
			t.Fatalf("verified %v with problem %v", v.Verified(), v.Problem)
		}
		if v.Verified() && s.Verify(other, certs).Verified() {
			t.Fatal("a signature verifies over two digests")
		}
	})
}
