package catalog_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/catalog"
)

// pki is a test CA, a code-signing leaf and their PEM files for
// osslsigncode.
type pki struct {
	ca    *testca.CA
	leaf  *testca.Cert
	files testca.Files
	chain []*x509.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Catalog Signer"})
	return &pki{ca: ca, leaf: leaf, files: ca.WriteFiles(t, t.TempDir(), leaf),
		chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}}
}

func (p *pki) signer(t testing.TB, opts authenticode.SignOptions) *authenticode.Signer {
	t.Helper()
	s, err := authenticode.NewSigner(p.leaf.Key, p.chain, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// root is the test root as a signing.Certificate, for VerifyOptions.
func (p *pki) root(t testing.TB) *signing.Certificate {
	t.Helper()
	c, err := signing.ParseCertificate(p.ca.Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// entry hashes data as a catalog member named name.
func entry(t testing.TB, name string, data []byte, h crypto.Hash) catalog.Entry {
	t.Helper()
	kind, d, err := catalog.HashFile(bytes.NewReader(data), int64(len(data)), h)
	if err != nil {
		t.Fatal(err)
	}
	return catalog.Entry{Name: name, Kind: kind, Hash: h, Digest: d}
}

// signedCatalog builds and signs a catalog of entries with csv.
func (p *pki) signedCatalog(t testing.TB, version int, entries ...catalog.Entry) []byte {
	t.Helper()
	ctl, err := catalog.Build(entries, catalog.BuildOptions{Version: version, ThisUpdate: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	der, err := catalog.Sign(context.Background(), p.signer(t, authenticode.SignOptions{}), ctl)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// osslEnv is the environment for osslsigncode, without proxies.
func osslEnv() []string {
	return testenv.NoProxyEnv()
}

// ossl runs osslsigncode and reports whether it succeeded, with its output.
func ossl(t testing.TB, args ...string) (bool, string) {
	t.Helper()
	tool := testenv.Tool(t, "osslsigncode")
	cmd := exec.Command(tool, args...)
	cmd.Env = osslEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running osslsigncode: %v", err)
		}
		return false, string(out)
	}
	return true, string(out)
}

func write(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// osslVerifyArgs are the arguments that verify at the test epoch with the
// test root.
func (p *pki) osslVerifyArgs() []string {
	return []string{"verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10)}
}
