package fsverity

import (
	"bytes"
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

type pki struct {
	ca      *testca.CA
	rsa, ec *testca.Cert
	certs   []*signing.Certificate // leaves, intermediate and root, parsed
}

func testPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{ca: testca.New(t)}
	p.rsa = p.ca.Leaf(t, testca.LeafOptions{CommonName: "fs-verity RSA"})
	p.ec = p.ca.Leaf(t, testca.LeafOptions{CommonName: "fs-verity ECDSA", KeyType: testca.ECDSAP256})
	for _, c := range []*testca.Cert{p.rsa, p.ec, p.ca.Intermediate, p.ca.Root} {
		sc, err := signing.ParseCertificate(c.Cert.Raw)
		if err != nil {
			t.Fatal(err)
		}
		p.certs = append(p.certs, sc)
	}
	return p
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// peerSign runs `fsverity sign FILE SIG --key --cert` and returns the
// signature.
func peerSign(t *testing.T, tool, dir, file string, leaf *testca.Cert) []byte {
	t.Helper()
	key := write(t, dir, "key.pem", testca.KeyPEM(t, leaf.Key))
	cert := write(t, dir, "cert.pem", testca.PEM(leaf.Cert))
	sig := filepath.Join(dir, "peer.sig")
	out, err := exec.Command(tool, "sign", file, sig, "--key="+key, "--cert="+cert).CombinedOutput()
	if err != nil {
		t.Fatalf("fsverity sign: %v\n%s", err, out)
	}
	b, err := os.ReadFile(sig)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPeerSignatureVerifies: csv verifies what `fsverity sign` writes,
// against the fs-verity digest it computes, and refuses it for the same
// file with one byte changed; csv's own signature of the file is
// byte-identical to fsverity sign's (RSA PKCS#1 v1.5 is deterministic)
// and openssl cms verifies it over the formatted digest (both key types),
// refusing it over a changed one.
func TestPeerSignatureVerifies(t *testing.T) {
	tool := testenv.Tool(t, "fsverity")
	openssl := testenv.Tool(t, "openssl")
	p := testPKI(t)
	for _, n := range []int{0, 1, 4097, 200 << 10} {
		for _, leaf := range []*testca.Cert{p.rsa, p.ec} {
			t.Run(fmt.Sprintf("%d-%s", n, leaf.Cert.Subject.CommonName), func(t *testing.T) {
				dir := t.TempDir()
				data := content(n, 5)
				file := write(t, dir, "f", data)
				peer := peerSign(t, tool, dir, file, leaf)
				digest := digestOf(data, 1<<20)

				sig, err := ParseSignature(peer)
				if err != nil {
					t.Fatal(err)
				}
				s := sig.Verify(digest, p.certs)
				if !s.Verified() || s.Format != SignatureFormat || !bytes.Equal(s.Digest, digest) {
					t.Fatalf("fsverity sign's signature: verified %v format %q problem %v", s.Verified(), s.Format, s.Problem)
				}
				if len(s.Chains) == 0 || len(s.Chains[0]) != 3 || !bytes.Equal(s.Chains[0][0].Raw, leaf.Cert.Raw) {
					t.Errorf("chains %v", s.Chains)
				}
				changed := append(bytes.Clone(data), 0)
				if s := sig.Verify(digestOf(changed, 4096), p.certs); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
					t.Errorf("signature over another file: verified %v, problem %v", s.Verified(), s.Problem)
				}
				if s := sig.Verify(digest, p.certs[2:]); s.Verified() || !errors.Is(s.Problem, signing.ErrSignerNotFound) {
					t.Errorf("without the signer's certificate: verified %v, problem %v", s.Verified(), s.Problem)
				}

				mine, err := Sign(digest, leaf.Cert, leaf.Key, 0)
				if err != nil {
					t.Fatal(err)
				}
				if leaf == p.rsa && !bytes.Equal(mine, peer) {
					t.Errorf("csv's signature differs from fsverity sign's:\n%x\n%x", mine, peer)
				}
				formatted := write(t, dir, "formatted", FormattedDigest(digest))
				sigPath := write(t, dir, "mine.sig", mine)
				leafPEM := write(t, dir, "leaf.pem", testca.PEM(leaf.Cert))
				cas := write(t, dir, "cas.pem", testca.PEM(p.ca.Intermediate.Cert, p.ca.Root.Cert))
				verify := func(content string) error {
					out, err := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", sigPath, "-content", content,
						"-certfile", leafPEM, "-CAfile", cas, "-purpose", "any", "-attime", fmt.Sprint(testca.Epoch.Unix()), "-out", os.DevNull).CombinedOutput()
					if err != nil {
						return fmt.Errorf("%v: %s", err, out)
					}
					return nil
				}
				if err := verify(formatted); err != nil {
					t.Errorf("openssl cms refuses csv's signature: %v", err)
				}
				other := FormattedDigest(digest)
				other[len(other)-1] ^= 1
				if verify(write(t, dir, "other", other)) == nil {
					t.Error("openssl cms accepts csv's signature over a changed digest")
				}
				if s := mustParse(t, mine).Verify(digest, p.certs); !s.Verified() {
					t.Errorf("csv's own signature: %v", s.Problem)
				}
			})
		}
	}
}

func mustParse(t *testing.T, der []byte) *Signature {
	t.Helper()
	s, err := ParseSignature(der)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestParseSignatureRefuses: what is not a detached PKCS#7 with one
// SignerInfo is malformed, with an offset; over the cap is ErrLimit.
func TestParseSignatureRefuses(t *testing.T) {
	p := testPKI(t)
	good, err := Sign(make([]byte, 32), p.rsa.Cert, p.rsa.Key, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want error
	}{
		{"empty", nil, signing.ErrMalformed},
		{"cut", good[:len(good)-1], signing.ErrMalformed},
		{"trailing", append(bytes.Clone(good), 0), signing.ErrMalformed},
		{"not der", []byte("FSVerity signature"), signing.ErrMalformed},
		{"huge", make([]byte, 1<<20), signing.ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSignature(tc.der)
			var me *signing.MalformedError
			if s != nil || !errors.Is(err, tc.want) || !errors.As(err, &me) || me.Format != Format {
				t.Errorf("ParseSignature: %v, %v; want %v", s, err, tc.want)
			}
		})
	}
	if _, err := Sign(make([]byte, 31), p.rsa.Cert, p.rsa.Key, 0); !errors.Is(err, signing.ErrDigestNotComputed) {
		t.Errorf("Sign of a 31-byte digest: %v", err)
	}
	if _, err := Sign(make([]byte, 32), p.rsa.Cert, p.ec.Key, 0); !errors.Is(err, signing.ErrSigner) {
		t.Errorf("Sign with another key: %v", err)
	}
}
