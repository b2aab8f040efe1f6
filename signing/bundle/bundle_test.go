package bundle_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/codesignval/csv/internal/sgtest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func TestRoundTrip(t *testing.T) {
	ca := testca.New(t)
	for _, kt := range []struct {
		name string
		kt   testca.KeyType
	}{{"RSA", testca.RSA2048}, {"ECDSA P-256", testca.ECDSAP256}} {
		t.Run(kt.name, func(t *testing.T) {
			leaf := ca.Leaf(t, testca.LeafOptions{KeyType: kt.kt})
			chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert}
			d := digestOf("artifact")
			data, err := bundle.New(d, leaf.Key, chain, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := bundle.Verify(data, d, bundle.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch}); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// The JSON as sigstore clients expect it: v0.2, leaf and
			// intermediate (no root), a message digest, no tlog entry.
			var doc struct {
				MediaType            string `json:"mediaType"`
				VerificationMaterial struct {
					X509CertificateChain struct {
						Certificates []struct{ RawBytes []byte } `json:"certificates"`
					} `json:"x509CertificateChain"`
					TlogEntries []any `json:"tlogEntries"`
				} `json:"verificationMaterial"`
				MessageSignature struct {
					MessageDigest struct{ Algorithm string } `json:"messageDigest"`
				} `json:"messageSignature"`
			}
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			certs := doc.VerificationMaterial.X509CertificateChain.Certificates
			if doc.MediaType != bundle.MediaType || len(certs) != 2 || !bytes.Equal(certs[0].RawBytes, leaf.Cert.Raw) ||
				!bytes.Equal(certs[1].RawBytes, ca.Intermediate.Cert.Raw) || len(doc.VerificationMaterial.TlogEntries) != 0 ||
				doc.MessageSignature.MessageDigest.Algorithm != "SHA2_256" {
				t.Fatalf("unexpected bundle:\n%s", data)
			}
		})
	}
}

// TestVerifyFails covers each check of Verify.
func TestVerifyFails(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	noEKU := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256, EKUs: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	d := digestOf("artifact")
	good, err := bundle.New(d, leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	noEKUBundle, err := bundle.New(d, noEKU.Key, []*x509.Certificate{noEKU.Cert, ca.Intermediate.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dsse, err := bundle.NewDSSE("text/plain", []byte("x"), leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ms := func(m map[string]any) map[string]any { return m["messageSignature"].(map[string]any) }
	roots := []*x509.Certificate{ca.Root.Cert}
	other256 := digestOf("other artifact")
	tests := []struct {
		name    string
		bundle  []byte
		digest  []byte
		roots   []*x509.Certificate
		now     time.Time
		wantErr error
	}{
		{"tampered artifact", good, other256, roots, testca.Epoch, signing.ErrDigestMismatch},
		{"wrong root", good, d, []*x509.Certificate{other.Root.Cert}, testca.Epoch, bundle.ErrUntrusted},
		{"no roots", good, d, nil, testca.Epoch, bundle.ErrUntrusted},
		{"expired leaf", good, d, roots, testca.Epoch.AddDate(3, 0, 0), bundle.ErrUntrusted},
		{"leaf without code signing EKU", noEKUBundle, d, roots, testca.Epoch, bundle.ErrUntrusted},
		{"digest swapped to another artifact's", edit(func(m map[string]any) {
			ms(m)["messageDigest"].(map[string]any)["digest"] = other256
		}), other256, roots, testca.Epoch, signing.ErrSignature},
		{"signature altered", edit(func(m map[string]any) {
			// Flip a bit of the signature itself (flipping one of its
			// base64 text could make the JSON invalid instead).
			sig, err := base64.StdEncoding.DecodeString(ms(m)["signature"].(string))
			if err != nil {
				t.Fatal(err)
			}
			sig[len(sig)/2] ^= 1
			ms(m)["signature"] = base64.StdEncoding.EncodeToString(sig)
		}), d, roots, testca.Epoch, signing.ErrSignature},
		{"signature of another key", edit(func(m map[string]any) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			sig, _ := ecdsa.SignASN1(rand.Reader, k, d)
			ms(m)["signature"] = sig
		}), d, roots, testca.Epoch, signing.ErrSignature},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), d, roots, testca.Epoch, signing.ErrMalformed},
		{"unknown media type", edit(func(m map[string]any) { m["mediaType"] = "application/json" }), d, roots, testca.Epoch, signing.ErrMalformed},
		{"DSSE content", dsse, d, roots, testca.Epoch, signing.ErrMalformed},
		{"not JSON", []byte("{"), d, roots, testca.Epoch, signing.ErrMalformed},
		{"trailing data", append(bytes.Clone(good), []byte("{}")...), d, roots, testca.Epoch, signing.ErrMalformed},
		{"over the cap", append(bytes.Clone(good), bytes.Repeat([]byte(" "), bundle.MaxSize)...), d, roots, testca.Epoch, signing.ErrMalformed},
		{"no certificate", edit(func(m map[string]any) { delete(m, "verificationMaterial") }), d, roots, testca.Epoch, signing.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bundle.Verify(tt.bundle, tt.digest, bundle.VerifyOptions{Roots: tt.roots, Now: tt.now})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "bundle: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	ca := testca.New(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	for name, key := range map[string]crypto.Signer{"P-384": p384, "Ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			c := ca.SANLeaf(t, key)
			if _, err := bundle.New(digestOf("a"), key, []*x509.Certificate{c.Cert}, nil); !errors.Is(err, signing.ErrSigner) {
				t.Fatalf("got %v, want signing.ErrSigner", err)
			}
		})
	}
	if _, err := bundle.New(digestOf("a"), p384, []*x509.Certificate{leaf.Cert}, nil); !errors.Is(err, signing.ErrSigner) {
		t.Fatalf("key of another certificate: got %v, want signing.ErrSigner", err)
	}
	if _, err := bundle.New([]byte("short"), leaf.Key, []*x509.Certificate{leaf.Cert}, nil); err == nil {
		t.Fatal("accepted a digest that is not SHA-256")
	}
}

// trustedRootFile writes bundle.TrustedRoot for ca to dir.
func trustedRootFile(t *testing.T, dir string, ca *testca.CA) string {
	t.Helper()
	tr, err := bundle.TrustedRoot([]*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(p, tr, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSigstoreGoVerifies: sigstore-go v1.3.0 verifies our bundle offline,
// with a trusted root holding our CA, WithCurrentTime (no tlog, no TSA: the
// certificate is checked at the current time) and no identity policy.
func TestSigstoreGoVerifies(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	artifact := []byte("a build output")
	d := sha256.Sum256(artifact)
	for _, kt := range []testca.KeyType{testca.RSA2048, testca.ECDSAP256} {
		leaf := ca.SANLeaf(t, ca.Leaf(t, testca.LeafOptions{KeyType: kt}).Key)
		data, err := bundle.New(d[:], leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(data); err != nil {
			t.Fatalf("sigstore-go does not load the bundle: %v", err)
		}
		verifyWith := func(ca *testca.CA, policy verify.ArtifactPolicyOption) error {
			trJSON, err := bundle.TrustedRoot([]*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert})
			if err != nil {
				t.Fatal(err)
			}
			tr, err := root.NewTrustedRootFromJSON(trJSON)
			if err != nil {
				t.Fatalf("sigstore-go does not load the trusted root: %v", err)
			}
			v, err := verify.NewVerifier(tr, verify.WithCurrentTime())
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(&b, verify.NewPolicy(policy, verify.WithoutIdentitiesUnsafe()))
			return err
		}
		if err := verifyWith(ca, verify.WithArtifact(bytes.NewReader(artifact))); err != nil {
			t.Fatalf("sigstore-go rejects the bundle (artifact): %v", err)
		}
		if err := verifyWith(ca, verify.WithArtifactDigest("sha256", d[:])); err != nil {
			t.Fatalf("sigstore-go rejects the bundle (digest): %v", err)
		}
		if err := verifyWith(ca, verify.WithArtifact(bytes.NewReader([]byte("tampered")))); err == nil {
			t.Fatal("sigstore-go accepts a tampered artifact")
		}
		if err := verifyWith(other, verify.WithArtifact(bytes.NewReader(artifact))); err == nil {
			t.Fatal("sigstore-go accepts the bundle under another root")
		}
		// And ours agrees.
		if err := bundle.Verify(data, d[:], bundle.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSigstoreGoNeedsSAN pins a limit of sigstore-go (and so of cosign):
// it refuses a leaf without a URI or e-mail SAN, as most commercial code
// signing certificates are. Our Verify accepts it.
func TestSigstoreGoNeedsSAN(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	d := digestOf("artifact")
	data, err := bundle.New(d, leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Verify(data, d, bundle.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: time.Now()}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	trJSON, err := bundle.TrustedRoot([]*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.NewTrustedRootFromJSON(trJSON)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.NewVerifier(tr, verify.WithCurrentTime())
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest("sha256", d), verify.WithoutIdentitiesUnsafe()))
	if err == nil || !strings.Contains(err.Error(), "Subject Alternative Name") {
		t.Fatalf("sigstore-go without a SAN: got %v; if it now accepts such certificates, update the package doc", err)
	}
}

// TestCosignVerifies runs cosign verify-blob on our bundle, offline. It
// skips when cosign is not installed
// (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5).
func TestCosignVerifies(t *testing.T) {
	cosign := sgtest.Cosign(t)
	ca, other := testca.New(t), testca.New(t)
	leaf := ca.SANLeaf(t, nil)
	dir := t.TempDir()
	artifact := filepath.Join(dir, "app.exe")
	if err := os.WriteFile(artifact, []byte("MZ a build output"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("MZ a build output"))
	data, err := bundle.New(d[:], leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bundlePath := artifact + ".sigstore.json"
	if err := os.WriteFile(bundlePath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.exe")
	if err := os.WriteFile(tampered, []byte("MZ a changed output"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	verifyBlob := func(trustedRoot, file string) ([]byte, error) {
		cmd := exec.Command(cosign, "verify-blob",
			"--bundle", bundlePath, "--trusted-root", trustedRoot,
			"--insecure-ignore-tlog", "--insecure-ignore-sct",
			"--certificate-identity-regexp", ".*", "--certificate-oidc-issuer-regexp", ".*",
			file)
		cmd.Env = append(os.Environ(), "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
		return cmd.CombinedOutput()
	}
	if out, err := verifyBlob(trustedRootFile(t, dir, ca), artifact); err != nil || !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("cosign verify-blob: %v\n%s", err, out)
	}
	if out, err := verifyBlob(trustedRootFile(t, dir, ca), tampered); err == nil {
		t.Fatalf("cosign accepts a tampered artifact:\n%s", out)
	}
	if out, err := verifyBlob(trustedRootFile(t, otherDir, other), artifact); err == nil {
		t.Fatalf("cosign accepts the bundle under another root:\n%s", out)
	}
}

func FuzzVerify(f *testing.F) {
	ca := testca.New(f)
	leaf := ca.Leaf(f, testca.LeafOptions{KeyType: testca.ECDSAP256})
	d := digestOf("artifact")
	good, err := bundle.New(d, leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=0.2"}`))
	roots := []*x509.Certificate{ca.Root.Cert}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := bundle.Verify(data, d, bundle.VerifyOptions{Roots: roots, Now: testca.Epoch})
		if err == nil && !bytes.Equal(data, good) {
			// Another encoding of the same bundle may verify; it must
			// still be for this digest and this CA.
			var b sgbundle.Bundle
			if b.UnmarshalJSON(data) != nil {
				t.Logf("verified a bundle sigstore-go does not load: %q", data)
			}
		}
	})
}

// TestTimestampedBundle: with a Timestamper (here OpenSSL's RFC 3161
// responder, of a PKI of its own), an artifact bundle carries a timestamp
// over its signature that sigstore-go verifies when its trusted root holds
// that TSA (and not when it holds another); our Verify, given a way to
// trust the TSA, checks the chain at the timestamp's time, so the bundle
// verifies after the certificate expires, and fails closed on a TSA it is
// not told to trust.
func TestTimestampedBundle(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	ca, tsaCA, other := testca.New(t), testca.New(t), testca.New(t)
	tsa := tsaCA.TSA(t)
	tsaURL := testca.OpenSSLTSA(t, openssl, tsa, tsa.Cert, tsaCA.Intermediate.Cert)
	leaf := ca.SANLeaf(t, nil)
	artifact := []byte("a build output")
	d := sha256.Sum256(artifact)
	data, err := bundle.New(d[:], leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, func(sig []byte) ([]byte, error) {
		resp, _, err := tsahttp.Request(t.Context(), tsaURL, nil, sig)
		return resp, err
	})
	if err != nil {
		t.Fatal(err)
	}
	trustTSA := func(roots ...*x509.Certificate) func(resp, sig []byte) (time.Time, error) {
		return func(resp, sig []byte) (time.Time, error) {
			tok, err := authenticode.VerifyTimestampResponse(resp, sig)
			if err != nil {
				return time.Time{}, err
			}
			return tok.Time, tok.VerifyTSA(roots)
		}
	}
	roots := []*x509.Certificate{ca.Root.Cert}
	expired := leaf.Cert.NotAfter.AddDate(1, 0, 0)
	if err := bundle.Verify(data, d[:], bundle.VerifyOptions{Roots: roots, Now: expired, VerifyTimestamp: trustTSA(tsaCA.Root.Cert)}); err != nil {
		t.Errorf("with the TSA trusted, after the certificate expired: %v", err)
	}
	if err := bundle.Verify(data, d[:], bundle.VerifyOptions{Roots: roots, Now: expired}); !errors.Is(err, bundle.ErrUntrusted) {
		t.Errorf("without timestamps, after the certificate expired: %v, want ErrUntrusted", err)
	}
	if err := bundle.Verify(data, d[:], bundle.VerifyOptions{Roots: roots, Now: time.Now(), VerifyTimestamp: trustTSA(other.Root.Cert)}); !errors.Is(err, signing.ErrTimestamp) {
		t.Errorf("with another TSA trusted: %v, want ErrTimestamp", err)
	}
	// A timestamp an hour after the verification time is refused.
	if err := bundle.Verify(data, d[:], bundle.VerifyOptions{Roots: roots, Now: time.Now().Add(-time.Hour), VerifyTimestamp: trustTSA(tsaCA.Root.Cert)}); !errors.Is(err, signing.ErrTimestamp) {
		t.Errorf("a timestamp after the verification time: %v, want ErrTimestamp", err)
	}

	// Every timestamp must verify, not just the first; and there may be at
	// most MaxTimestamps.
	other256 := sha256.Sum256([]byte("another artifact"))
	otherData, err := bundle.New(other256[:], leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, func(sig []byte) ([]byte, error) {
		resp, _, err := tsahttp.Request(t.Context(), tsaURL, nil, sig)
		return resp, err
	})
	if err != nil {
		t.Fatal(err)
	}
	stamps := func(data []byte) []any {
		var m map[string]any
		json.Unmarshal(data, &m)
		return m["verificationMaterial"].(map[string]any)["timestampVerificationData"].(map[string]any)["rfc3161Timestamps"].([]any)
	}
	withStamps := func(list ...any) []byte {
		var m map[string]any
		json.Unmarshal(data, &m)
		m["verificationMaterial"].(map[string]any)["timestampVerificationData"].(map[string]any)["rfc3161Timestamps"] = list
		out, _ := json.Marshal(m)
		return out
	}
	good, bad := stamps(data)[0], stamps(otherData)[0]
	trusted := bundle.VerifyOptions{Roots: roots, Now: time.Now(), VerifyTimestamp: trustTSA(tsaCA.Root.Cert)}
	if err := bundle.Verify(withStamps(good, good), d[:], trusted); err != nil {
		t.Errorf("two good timestamps: %v", err)
	}
	if err := bundle.Verify(withStamps(good, bad), d[:], trusted); !errors.Is(err, signing.ErrTimestamp) || !strings.Contains(err.Error(), "#2") {
		t.Errorf("a second timestamp over another signature: %v, want ErrTimestamp #2", err)
	}
	if err := bundle.Verify(withStamps(good, good, good, good, good), d[:], trusted); !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("five timestamps: %v, want ErrMalformed", err)
	}

	// TrustedRoot writes the TSA into the trusted root sigstore-go reads.
	sigstoreGo := func(tsaOf *testca.CA, leaf *x509.Certificate) error {
		trJSON, err := bundle.TrustedRoot([]*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert}, []*x509.Certificate{leaf, tsaOf.Intermediate.Cert, tsaOf.Root.Cert})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sgtest.Verify(t, trJSON, data, verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithoutIdentitiesUnsafe()), verify.WithSignedTimestamps(1))
		return err
	}
	if err := sigstoreGo(tsaCA, tsa.Cert); err != nil {
		t.Errorf("sigstore-go rejects the timestamped bundle: %v", err)
	}
	if err := sigstoreGo(other, other.TSA(t).Cert); err == nil {
		t.Error("sigstore-go accepts the timestamp with another TSA in its trusted root")
	}
}
