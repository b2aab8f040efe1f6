package msi_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// large builds a package holding a PE of n incompressible bytes: past
// 7 MB, a compound file of 512-byte sectors needs DIFAT sectors.
func large(t testing.TB, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	return testmsi.Build(t, testmsi.File{Name: "big.exe", Data: testbin.PE(testbin.PEOptions{Data: data})})
}

// TestLargeDIFAT: csv signs a package of 512-byte sectors that needs
// DIFAT sectors, keeping its sector size; osslsigncode verifies it.
func TestLargeDIFAT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 9 MB package")
	}
	p := newPKI(t)
	in := large(t, 9<<20)
	signer, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := msi.Sign(context.Background(), bytes.NewReader(in), int64(len(in)), &out, signer, msi.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pkg, _, sigs, err := inspect(t, out.Bytes(), p.certs)
	if err != nil || len(sigs) != 1 || !sigs[0].Verified() || pkg.CFB.SectorSize != 512 {
		t.Fatalf("%v %+v", err, sigs)
	}
	ok, digests, o := testmsi.Verify(t, p.files, out.Bytes())
	if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(res.Digest) {
		t.Fatalf("osslsigncode (ok %v) %v, csv %x\n%s", ok, digests, res.Digest, o)
	}
}

// BenchmarkVerify: csv's verification of a 30 MB package (parse, the SIP
// digest by random access, the signature) against osslsigncode verify's
// on the same file, in one run.
func BenchmarkVerify(b *testing.B) {
	p := newPKI(b)
	signed := testmsi.Sign(b, p.files, large(b, 30<<20))
	path := filepath.Join(b.TempDir(), "big.msi")
	if err := os.WriteFile(path, signed, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Run("csv", func(b *testing.B) {
		b.SetBytes(int64(len(signed)))
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			pkg, err := msi.Parse(f, int64(len(signed)))
			if err != nil {
				b.Fatal(err)
			}
			sums, err := pkg.Digest(authenticode.DigestAlgorithms(pkg)...)
			if err != nil {
				b.Fatal(err)
			}
			sigs, err := msi.Verify(pkg, sums, authenticode.VerifyOptions{Certificates: p.certs})
			if err != nil || !sigs[0].Verified() {
				b.Fatal(err, sigs)
			}
			f.Close()
		}
	})
	b.Run("osslsigncode", func(b *testing.B) {
		ossl := testenv.Tool(b, "osslsigncode")
		b.SetBytes(int64(len(signed)))
		for b.Loop() {
			cmd := exec.Command(ossl, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
			cmd.Env = testmsi.Env()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
	})
}

// BenchmarkSign: csv signing a 30 MB package against osslsigncode sign.
func BenchmarkSign(b *testing.B) {
	p := newPKI(b)
	in := large(b, 30<<20)
	dir := b.TempDir()
	path := filepath.Join(dir, "big.msi")
	if err := os.WriteFile(path, in, 0o600); err != nil {
		b.Fatal(err)
	}
	signer, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("csv", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			out, err := os.Create(filepath.Join(dir, "csv.msi"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := msi.Sign(context.Background(), f, int64(len(in)), out, signer, msi.SignOptions{}); err != nil {
				b.Fatal(err)
			}
			out.Close()
			f.Close()
		}
	})
	b.Run("osslsigncode", func(b *testing.B) {
		ossl := testenv.Tool(b, "osslsigncode")
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			cmd := exec.Command(ossl, "sign", "-certs", p.files.Chain, "-key", p.files.Key, "-in", path, "-out", filepath.Join(dir, "ossl.msi"))
			cmd.Env = testmsi.Env()
			os.Remove(filepath.Join(dir, "ossl.msi"))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
	})
}
