package catalog_test

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/catalog"
)

// TestPeerAcceptsCSVCatalog: osslsigncode verifies the signature of a
// catalog csv makes and signs, accepts each PE member against it, and
// refuses a member with one byte changed; csv parses, verifies and looks up
// the same catalog.
func TestPeerAcceptsCSVCatalog(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		version int
		hash    crypto.Hash
	}{{2, crypto.SHA256}, {1, crypto.SHA1}} {
		t.Run("v"+string(rune('0'+tc.version)), func(t *testing.T) {
			dir := t.TempDir()
			a := testbin.PE(testbin.PEOptions{Data: []byte("member a")})
			b := testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("member b")})
			inf := []byte("[Version]\r\nSignature=\"$Windows NT$\"\r\n")
			der := p.signedCatalog(t, tc.version, entry(t, "a.exe", a, tc.hash), entry(t, "b.dll", b, tc.hash), entry(t, "x.inf", inf, tc.hash))
			cat := write(t, dir, "out.cat", der)

			if ok, out := ossl(t, append(p.osslVerifyArgs(), "-in", cat)...); !ok {
				t.Fatalf("osslsigncode refuses csv's catalog signature:\n%s", out)
			}
			for name, data := range map[string][]byte{"a.exe": a, "b.dll": b} {
				path := write(t, dir, name, data)
				if ok, out := ossl(t, "verify", "-catalog", cat, "-in", path, "-CAfile", p.files.Root); !ok {
					t.Errorf("osslsigncode refuses member %s of csv's catalog:\n%s", name, out)
				}
				changed := append([]byte(nil), data...)
				changed[len(changed)-1] ^= 1
				path = write(t, dir, "changed-"+name, changed)
				if ok, out := ossl(t, "verify", "-catalog", cat, "-in", path, "-CAfile", p.files.Root); ok {
					t.Errorf("osslsigncode accepts a changed %s against csv's catalog:\n%s", name, out)
				}
			}

			c, err := catalog.Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != tc.version || len(c.Members) != 3 {
				t.Fatalf("parsed version %d with %d members, want %d with 3", c.Version, len(c.Members), tc.version)
			}
			_, v, err := c.Verify(authenticode.VerifyOptions{Certificates: []*signing.Certificate{p.root(t)}})
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{"a.exe": a, "b.dll": b, "x.inf": inf} {
				e := entry(t, name, data, tc.hash)
				ms := v.Lookup(tc.hash, e.Digest)
				if len(ms) != 1 || ms[0].File != name {
					t.Errorf("Lookup(%s) = %v, want the member named %s", name, ms, name)
				}
			}
			if got := v.Signer().Chains[0][0].Subject.CommonName; got != "Catalog Signer" {
				t.Errorf("signer is %q, want Catalog Signer", got)
			}
		})
	}
}

// TestCSVAcceptsPeerCatalog: osslsigncode signs an unsigned catalog csv
// builds; csv verifies the signature and finds the members, and refuses
// the signed file with a byte of the list changed.
func TestCSVAcceptsPeerCatalog(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	a := testbin.PE(testbin.PEOptions{Data: []byte("peer member")})
	e := entry(t, "a.exe", a, crypto.SHA256)
	ctl, err := catalog.Build([]catalog.Entry{e}, catalog.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := catalog.Unsigned(ctl)
	if err != nil {
		t.Fatal(err)
	}
	in, out := write(t, dir, "unsigned.cat", unsigned), filepath.Join(dir, "signed.cat")
	if ok, msg := ossl(t, "sign", "-certs", p.files.Chain, "-key", p.files.Key, "-h", "sha256", "-in", in, "-out", out); !ok {
		t.Fatalf("osslsigncode sign: %s", msg)
	}
	der, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	sigs, v, err := c.Verify(authenticode.VerifyOptions{})
	if err != nil {
		t.Fatalf("csv refuses osslsigncode's catalog signature: %v", err)
	}
	if len(sigs) != 1 || v.Signer() != sigs[0] {
		t.Fatalf("%d signatures", len(sigs))
	}
	if ms := v.Lookup(crypto.SHA256, e.Digest); len(ms) != 1 {
		t.Fatalf("member not found in osslsigncode's catalog")
	}

	// One byte of the member's digest changed: the signature no longer
	// verifies, and nothing is admitted.
	i := indexOf(der, e.Digest)
	if i < 0 {
		t.Fatal("digest not found in the catalog")
	}
	der[i] ^= 1
	c, err = catalog.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, v, err := c.Verify(authenticode.VerifyOptions{}); !errors.Is(err, signing.ErrSignedAttributes) || v != nil {
		t.Fatalf("tampered catalog: Verify = %v, %v; want ErrSignedAttributes and no verified catalog", v, err)
	}
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}
