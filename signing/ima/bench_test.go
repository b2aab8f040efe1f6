package ima

import (
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// BenchmarkVerify: csv's check of one IMA signature over a 1 MiB file,
// digest included (what the pipeline adds to a file's one read: the
// digest, then the public-key check), RSA-2048 and ECDSA P-256, against
// BenchmarkEvmctlVerify, evmctl ima_verify --sigfile of the same file, one
// process per file as a script would run it.
func BenchmarkVerify(b *testing.B) {
	p := testPKI(b)
	data := fileOf(1 << 20)
	for _, k := range []struct {
		name string
		leaf *testca.Cert
		c    *signing.Certificate
	}{{"rsa", p.rsa, p.rsaCert}, {"ecdsa", p.ec, p.ecCert}} {
		b.Run(k.name, func(b *testing.B) {
			raw, err := Sign(digestOf(crypto.SHA256, data), crypto.SHA256, k.leaf.Key, k.leaf.Cert)
			if err != nil {
				b.Fatal(err)
			}
			keyring := []*signing.Certificate{k.c}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				v, err := Parse(raw)
				if err != nil {
					b.Fatal(err)
				}
				if s := v.Verify(digestOf(crypto.SHA256, data), keyring, nil); !s.Verified() {
					b.Fatal(s.Problem)
				}
			}
		})
	}
}

func BenchmarkEvmctlVerify(b *testing.B) {
	bin := testenv.Tool(b, "evmctl")
	p := testPKI(b)
	data := fileOf(1 << 20)
	for _, k := range []struct {
		name string
		leaf *testca.Cert
	}{{"rsa", p.rsa}, {"ecdsa", p.ec}} {
		b.Run(k.name, func(b *testing.B) {
			dir := b.TempDir()
			path, cert := filepath.Join(dir, "file"), filepath.Join(dir, "cert.der")
			raw, err := Sign(digestOf(crypto.SHA256, data), crypto.SHA256, k.leaf.Key, k.leaf.Cert)
			if err != nil {
				b.Fatal(err)
			}
			for name, content := range map[string][]byte{path: data, path + ".sig": raw, cert: k.leaf.Cert.Raw} {
				if err := os.WriteFile(name, content, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if out, err := exec.Command(bin, "ima_verify", "--sigfile", "--key", cert, path).CombinedOutput(); err != nil {
					b.Fatalf("%v\n%s", err, out)
				}
			}
		})
	}
}
