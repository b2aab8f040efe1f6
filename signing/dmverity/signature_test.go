package dmverity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// TestRootHashSignatures: csv verifies the root hash signature openssl
// smime makes as systemd documents it (-nocerts -noattr -binary over the
// hex root hash), and refuses it for another root hash; csv's own
// signature is byte-identical to openssl's for RSA, and openssl cms
// verifies csv's (RSA and ECDSA) and refuses it over another root hash.
func TestRootHashSignatures(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	ca := testca.New(t)
	var certs []*signing.Certificate
	rsa := ca.Leaf(t, testca.LeafOptions{CommonName: "image signer"})
	ec := ca.Leaf(t, testca.LeafOptions{CommonName: "image signer EC", KeyType: testca.ECDSAP256})
	for _, c := range []*testca.Cert{rsa, ec, ca.Intermediate, ca.Root} {
		sc, err := signing.ParseCertificate(c.Cert.Raw)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, sc)
	}
	root, err := RootHash(bytes.NewReader(content(64<<10, 1)), 64<<10, Params{Salt: []byte("salt")})
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(root)
	other[31] ^= 1
	for _, leaf := range []*testca.Cert{rsa, ec} {
		t.Run(leaf.Cert.Subject.CommonName, func(t *testing.T) {
			dir := t.TempDir()
			rh := write(t, dir, "image.roothash", []byte(hex.EncodeToString(root)))
			key := write(t, dir, "key.pem", testca.KeyPEM(t, leaf.Key))
			cert := write(t, dir, "cert.pem", testca.PEM(leaf.Cert))
			p7s := dir + "/image.roothash.p7s"
			if out, err := exec.Command(openssl, "smime", "-sign", "-nocerts", "-noattr", "-binary", "-in", rh, "-inkey", key, "-signer", cert, "-outform", "der", "-out", p7s).CombinedOutput(); err != nil {
				t.Fatalf("openssl smime -sign: %v\n%s", err, out)
			}
			peer, _ := os.ReadFile(p7s)
			sig, err := ParseSignature(peer)
			if err != nil {
				t.Fatal(err)
			}
			if s := sig.Verify(root, certs); !s.Verified() || s.Format != SignatureFormat || !bytes.Equal(s.Digest, root) {
				t.Fatalf("openssl's signature: %v", s.Problem)
			}
			if s := sig.Verify(other, certs); s.Verified() || !errors.Is(s.Problem, signing.ErrSignature) {
				t.Errorf("openssl's signature over another root hash: %v", s.Problem)
			}
			mine, err := Sign(root, leaf.Cert, leaf.Key, 0)
			if err != nil {
				t.Fatal(err)
			}
			if leaf == rsa && !bytes.Equal(mine, peer) {
				t.Errorf("csv's signature differs from openssl smime's")
			}
			mp := write(t, dir, "mine.p7s", mine)
			cas := write(t, dir, "cas.pem", testca.PEM(ca.Intermediate.Cert, ca.Root.Cert))
			verify := func(content string) error {
				out, err := exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", mp, "-content", content,
					"-certfile", cert, "-CAfile", cas, "-purpose", "any", "-attime", fmt.Sprint(testca.Epoch.Unix()), "-out", os.DevNull).CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}
			if err := verify(rh); err != nil {
				t.Errorf("openssl cms refuses csv's signature: %v", err)
			}
			if verify(write(t, dir, "other.roothash", []byte(hex.EncodeToString(other)))) == nil {
				t.Error("openssl cms accepts csv's signature over another root hash")
			}
		})
	}
}
