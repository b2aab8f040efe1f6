package manifest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/manifest"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

var policySum = sha256.Sum256([]byte("policy: release"))

func predicate(result manifest.Result) manifest.Predicate {
	p := manifest.Predicate{
		Verifier:           manifest.Verifier{Version: map[string]string{"csv": "v0.9.0-test"}},
		TimeVerified:       testca.Epoch.Add(1500 * time.Millisecond),
		ResourceURI:        "https://ci.example/builds/42",
		Policy:             manifest.ResourceDescriptor{Name: "release", Digest: manifest.DigestSet{"sha256": hexOf(policySum[:])}},
		VerificationResult: result,
	}
	if result == manifest.Passed {
		p.VerifiedLevels = []string{manifest.PolicyLevel("release")}
	}
	return p
}

func hexOf(b []byte) string { return manifest.SHA256Subject("x", b).Digest["sha256"] }

// buildTree writes files under a temp root and returns it with their
// subjects.
func buildTree(t *testing.T, files map[string]string) (string, []manifest.Subject) {
	t.Helper()
	root := t.TempDir()
	var subjects []manifest.Subject
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		subjects = append(subjects, manifest.SHA256Subject(name, sum[:]))
	}
	return root, subjects
}

var tree = map[string]string{
	"bin/app.exe":        "MZ app",
	"bin/helper.dll":     "MZ helper",
	"lib/modules/csv.ko": "\x7fELF module",
}

func TestRoundTrip(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}
	root, subjects := buildTree(t, tree)
	for _, result := range []manifest.Result{manifest.Passed, manifest.Failed} {
		t.Run(result.String(), func(t *testing.T) {
			data, err := manifest.New(subjects, predicate(result), leaf.Key, chain)
			if err != nil {
				t.Fatal(err)
			}
			st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if len(st.Subject) != 3 || st.Subject[0].Name != "bin/app.exe" || st.Subject[2].Name != "lib/modules/csv.ko" {
				t.Fatalf("subjects not sorted by name: %+v", st.Subject)
			}
			p := st.Predicate
			if p.Verifier.ID != manifest.VerifierID || p.Verifier.Version["csv"] != "v0.9.0-test" ||
				!p.TimeVerified.Equal(testca.Epoch.Add(time.Second)) || p.VerificationResult != result ||
				p.Policy.Digest["sha256"] != hexOf(policySum[:]) {
				t.Fatalf("predicate %+v", p)
			}
			want := []string{"CSV_POLICY_RELEASE"}
			if result == manifest.Failed {
				want = []string{"FAILED"}
			}
			if !reflect.DeepEqual(p.VerifiedLevels, want) {
				t.Fatalf("verifiedLevels %v, want %v", p.VerifiedLevels, want)
			}
			if m := manifest.CheckFiles(t.Context(), st, root); len(m) != 0 {
				t.Fatalf("unchanged tree: %v", m)
			}
		})
	}
}

// TestWireFormat checks the JSON other tools read: a Sigstore bundle with a
// DSSE envelope of an in-toto statement with a VSA predicate.
func TestWireFormat(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	_, subjects := buildTree(t, tree)
	data, err := manifest.New(subjects, predicate(manifest.Passed), leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		MediaType    string `json:"mediaType"`
		DSSEEnvelope struct {
			Payload     []byte `json:"payload"`
			PayloadType string `json:"payloadType"`
			Signatures  []struct {
				Sig []byte `json:"sig"`
			} `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	if b.MediaType != bundle.MediaType || b.DSSEEnvelope.PayloadType != "application/vnd.in-toto+json" || len(b.DSSEEnvelope.Signatures) != 1 {
		t.Fatalf("bundle:\n%s", data)
	}
	var st map[string]any
	if err := json.Unmarshal(b.DSSEEnvelope.Payload, &st); err != nil {
		t.Fatal(err)
	}
	pred := st["predicate"].(map[string]any)
	subj := st["subject"].([]any)[0].(map[string]any)
	if st["_type"] != "https://in-toto.io/Statement/v1" || st["predicateType"] != "https://slsa.dev/verification_summary/v1" ||
		subj["name"] != "bin/app.exe" || subj["digest"].(map[string]any)["sha256"] != hexOf(func() []byte { s := sha256.Sum256([]byte("MZ app")); return s[:] }()) ||
		pred["timeVerified"] != "2026-06-01T12:00:01Z" || pred["verificationResult"] != "PASSED" ||
		pred["resourceUri"] != "https://ci.example/builds/42" || pred["verifier"].(map[string]any)["id"] != "https://github.com/codesignval/csv" {
		t.Fatalf("statement:\n%s", b.DSSEEnvelope.Payload)
	}
}

func TestCheckFiles(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	root, subjects := buildTree(t, tree)
	data, err := manifest.New(subjects, predicate(manifest.Passed), leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	// One byte changed, one file removed, one file added.
	if err := os.WriteFile(filepath.Join(root, "bin", "app.exe"), []byte("MZ apq"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "bin", "helper.dll")); err != nil {
		t.Fatal(err)
	}
	got := manifest.CheckFiles(t.Context(), st, root)
	if len(got) != 2 || got[0].Name != "bin/app.exe" || got[0].Kind != manifest.Changed ||
		got[1].Name != "bin/helper.dll" || got[1].Kind != manifest.Missing || !errors.Is(got[1].Err, fs.ErrNotExist) {
		t.Fatalf("CheckFiles = %v", got)
	}
	if !strings.Contains(got[0].String(), "changed") {
		t.Errorf("String() = %q", got[0])
	}
	extra := manifest.ExtraFiles(st, []string{"bin/app.exe", "bin/new.exe", "lib/modules/csv.ko"})
	if len(extra) != 1 || extra[0].Name != "bin/new.exe" || extra[0].Kind != manifest.Extra {
		t.Fatalf("ExtraFiles = %v", extra)
	}
	// Unreadable, not missing nor changed: a FIFO in a file's place
	// (refused without waiting for a writer), a directory, a symbolic link
	// out of the root; a link within the root is followed. A cancelled
	// context stops the run.
	outside := filepath.Join(t.TempDir(), "app.exe")
	os.WriteFile(outside, []byte("MZ app"), 0o600)
	os.Remove(filepath.Join(root, "bin", "app.exe"))
	if err := os.Symlink(outside, filepath.Join(root, "bin", "app.exe")); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	os.Mkdir(filepath.Join(root, "bin", "helper.dll"), 0o755)
	os.Remove(filepath.Join(root, "lib", "modules", "csv.ko"))
	if err := mkfifo(filepath.Join(root, "lib", "modules", "csv.ko")); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan []manifest.Mismatch)
	go func() { done <- manifest.CheckFiles(t.Context(), st, root) }()
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("CheckFiles hangs on a FIFO")
	}
	if len(got) != 3 {
		t.Fatalf("CheckFiles = %v", got)
	}
	for _, m := range got {
		if m.Kind != manifest.Unreadable {
			t.Errorf("%s: %v, want unreadable", m.Name, m)
		}
	}
	os.Remove(filepath.Join(root, "bin", "app.exe"))
	os.WriteFile(filepath.Join(root, "bin", "real.exe"), []byte("MZ app"), 0o600)
	os.Symlink("real.exe", filepath.Join(root, "bin", "app.exe"))
	if got := manifest.CheckFiles(t.Context(), st, root); len(got) != 2 || got[0].Name != "bin/helper.dll" {
		t.Errorf("a link within the root: %v", got)
	}
	os.Remove(filepath.Join(root, "bin", "app.exe"))
	os.Symlink(filepath.Join(root, "bin", "real.exe"), filepath.Join(root, "bin", "app.exe"))
	if got := manifest.CheckFiles(t.Context(), st, root); len(got) != 2 || got[0].Name != "bin/helper.dll" {
		t.Errorf("an absolute link within the root: %v", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got := manifest.CheckFiles(ctx, st, root); len(got) != 3 || !errors.Is(got[0].Err, context.Canceled) {
		t.Errorf("cancelled: %v", got)
	}
}

// tamper re-encodes the bundle after f edits its decoded JSON.
func tamper(t *testing.T, data []byte, f func(b map[string]any, env map[string]any)) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	f(b, b["dsseEnvelope"].(map[string]any))
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyFails(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	otherLeaf := other.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}
	_, subjects := buildTree(t, tree)
	good, err := manifest.New(subjects, predicate(manifest.Passed), leaf.Key, chain)
	if err != nil {
		t.Fatal(err)
	}
	roots := []*x509.Certificate{ca.Root.Cert}
	payload := func(env map[string]any) []byte {
		p, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// resign replaces the payload and signs it with key, as an attacker
	// holding some key would.
	resign := func(key crypto.Signer, edit func([]byte) []byte) []byte {
		return tamper(t, good, func(_ map[string]any, env map[string]any) {
			p := edit(payload(env))
			env["payload"] = p
			d := sha256.Sum256(bundle.PAE(manifest.PayloadType, p))
			sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			env["signatures"] = []any{map[string]any{"sig": sig}}
		})
	}
	otherSigned, err := manifest.New(subjects, predicate(manifest.Passed), otherLeaf.Key, []*x509.Certificate{otherLeaf.Cert, other.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr error
	}{
		{"payload changed (a digest)", tamper(t, good, func(_, env map[string]any) {
			app, evil := sha256.Sum256([]byte("MZ app")), sha256.Sum256([]byte("MZ evil"))
			p := bytes.Replace(payload(env), []byte(hexOf(app[:])), []byte(hexOf(evil[:])), 1)
			if bytes.Equal(p, payload(env)) {
				t.Fatal("digest not found in the payload")
			}
			env["payload"] = p
		}), signing.ErrSignature},
		{"payload changed (result)", tamper(t, good, func(_, env map[string]any) {
			env["payload"] = bytes.Replace(payload(env), []byte("PASSED"), []byte("FAILED"), 1)
		}), signing.ErrSignature},
		{"payload type changed", tamper(t, good, func(_, env map[string]any) { env["payloadType"] = "application/json" }), signing.ErrMalformed},
		{"two signatures", tamper(t, good, func(_, env map[string]any) {
			sigs := env["signatures"].([]any)
			env["signatures"] = append(sigs, sigs[0])
		}), signing.ErrMalformed},
		{"signed by another key, same chain", resign(otherLeaf.Key, func(p []byte) []byte { return p }), signing.ErrSignature},
		{"signed by another CA's certificate", otherSigned, bundle.ErrUntrusted},
		{"chain swapped for another CA's", tamper(t, good, func(b, _ map[string]any) {
			var ob map[string]any
			_ = json.Unmarshal(otherSigned, &ob)
			b["verificationMaterial"] = ob["verificationMaterial"]
		}), bundle.ErrUntrusted},
		// A statement the right key signed but that is not a VSA manifest.
		{"duplicate key in the statement", resign(leaf.Key, func(p []byte) []byte {
			return bytes.Replace(p, []byte(`{"_type":`), []byte(`{"_type":"x","_type":`), 1)
		}), signing.ErrMalformed},
		// encoding/json matches keys to fields case-insensitively: a
		// second subject list under "SUBJECT" (read by csv, the last one)
		// beside "subject" (read by a case-sensitive verifier), a subject
		// list under "ſubject" (U+017F folds to s) alone, a second digest.
		{"case-variant duplicate key", resign(leaf.Key, func(p []byte) []byte {
			evil := sha256.Sum256([]byte("MZ evil"))
			return bytes.Replace(p, []byte(`"subject":`), []byte(`"subject":[{"name":"bin/evil.exe","digest":{"sha256":"`+hexOf(evil[:])+`"}}],"SUBJECT":`), 1)
		}), signing.ErrMalformed},
		{"field name in another case", resign(leaf.Key, func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"subject":`), []byte(`"\u017fubject":`), 1)
		}), signing.ErrMalformed},
		{"long s in a duplicate field name", resign(leaf.Key, func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"verificationResult":"PASSED"`), []byte(`"verificationResult":"FAILED","verificationRe\u017fult":"PASSED"`), 1)
		}), signing.ErrMalformed},
		{"case-variant digest", resign(leaf.Key, func(p []byte) []byte {
			evil := sha256.Sum256([]byte("MZ evil"))
			return bytes.Replace(p, []byte(`"digest":{`), []byte(`"digest":{"SHA256":"`+hexOf(evil[:])+`",`), 1)
		}), signing.ErrMalformed},
		{"unknown field in the statement", resign(leaf.Key, func(p []byte) []byte {
			return bytes.Replace(p, []byte(`{"_type":`), []byte(`{"extra":1,"_type":`), 1)
		}), signing.ErrMalformed},
		{"wrong predicate type", resign(leaf.Key, func(p []byte) []byte {
			return bytes.Replace(p, []byte("verification_summary/v1"), []byte("provenance/v1"), 1)
		}), signing.ErrMalformed},
		{"path escaping the root", resign(leaf.Key, func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"bin/app.exe"`), []byte(`"../../etc/passwd"`), 1)
		}), signing.ErrMalformed},
		{"trailing data", resign(leaf.Key, func(p []byte) []byte { return append(p, []byte(" {}")...) }), signing.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := manifest.Verify(tt.data, manifest.VerifyOptions{Roots: roots, Now: testca.Epoch})
			if !errors.Is(err, tt.wantErr) || st != nil {
				t.Fatalf("got %v, %v; want %v", st, err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "manifest: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256})
	otherKey := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256}).Key
	chain := []*x509.Certificate{leaf.Cert}
	_, good := buildTree(t, tree)
	sum := sha256.Sum256(nil)
	sub := func(name string) []manifest.Subject { return []manifest.Subject{manifest.SHA256Subject(name, sum[:])} }
	pred := func(f func(*manifest.Predicate)) manifest.Predicate {
		p := predicate(manifest.Passed)
		f(&p)
		return p
	}
	for _, tt := range []struct {
		name     string
		subjects []manifest.Subject
		pred     manifest.Predicate
	}{
		{"no subjects", nil, predicate(manifest.Passed)},
		{"absolute path", sub("/bin/app.exe"), predicate(manifest.Passed)},
		{"dot-dot", sub("bin/../../app.exe"), predicate(manifest.Passed)},
		{"backslashes are not slash paths", sub(`bin\app.exe`), predicate(manifest.Passed)},
		{"duplicate", append(sub("a"), sub("a")...), predicate(manifest.Passed)},
		{"no sha256", []manifest.Subject{{Name: "a", Digest: manifest.DigestSet{"sha1": "00"}}}, predicate(manifest.Passed)},
		{"upper-case hex", []manifest.Subject{{Name: "a", Digest: manifest.DigestSet{"sha256": strings.Repeat("AB", 32)}}}, predicate(manifest.Passed)},
		{"no time", good, pred(func(p *manifest.Predicate) { p.TimeVerified = time.Time{} })},
		{"no resource", good, pred(func(p *manifest.Predicate) { p.ResourceURI = "" })},
		{"no policy digest", good, pred(func(p *manifest.Predicate) { p.Policy.Digest = nil })},
		{"unknown result", good, pred(func(p *manifest.Predicate) { p.VerificationResult = "OK" })},
		{"passed without levels", good, pred(func(p *manifest.Predicate) { p.VerifiedLevels = nil })},
		{"failed with a level", good, pred(func(p *manifest.Predicate) {
			p.VerificationResult = manifest.Failed
			p.VerifiedLevels = []string{"CSV_POLICY_X"}
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := manifest.New(tt.subjects, tt.pred, leaf.Key, chain); !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := manifest.New(good, predicate(manifest.Passed), otherKey, chain); !errors.Is(err, signing.ErrSigner) {
		t.Fatalf("key of another certificate: got %v, want signing.ErrSigner", err)
	}
}

func TestPolicyLevel(t *testing.T) {
	for in, want := range map[string]string{"release": "CSV_POLICY_RELEASE", "release-x64 v2": "CSV_POLICY_RELEASE_X64_V2", "": "CSV_POLICY_"} {
		if got := manifest.PolicyLevel(in); got != want {
			t.Errorf("PolicyLevel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSigstoreGoVerifiesDSSE: sigstore-go v1.3.0 verifies the manifest's
// DSSE envelope and matches an artifact digest against its subjects, for
// each key type csv signs with (the hash per key must be the one sigstore
// expects: SHA-384 for P-384, none for Ed25519).
func TestSigstoreGoVerifiesDSSE(t *testing.T) {
	ca, other := testca.New(t), testca.New(t)
	_, subjects := buildTree(t, tree)
	appSum := sha256.Sum256([]byte("MZ app"))
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]crypto.Signer{
		"RSA":         ca.Leaf(t, testca.LeafOptions{}).Key,
		"ECDSA P-256": ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256}).Key,
		"ECDSA P-384": p384,
		"Ed25519":     ed,
	}
	verifier := func(ca *testca.CA) *verify.Verifier {
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
		return v
	}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			leaf := ca.SANLeaf(t, key).Cert
			data, err := manifest.New(subjects, predicate(manifest.Passed), key, []*x509.Certificate{leaf, ca.Intermediate.Cert})
			if err != nil {
				t.Fatal(err)
			}
			var b sgbundle.Bundle
			if err := b.UnmarshalJSON(data); err != nil {
				t.Fatalf("sigstore-go does not load the bundle: %v", err)
			}
			policy := func(d []byte) verify.PolicyBuilder {
				return verify.NewPolicy(verify.WithArtifactDigest("sha256", d), verify.WithoutIdentitiesUnsafe())
			}
			res, err := verifier(ca).Verify(&b, policy(appSum[:]))
			if err != nil {
				t.Fatalf("sigstore-go rejects the manifest: %v", err)
			}
			if res.Statement == nil || res.Statement.GetPredicateType() != manifest.PredicateType || len(res.Statement.GetSubject()) != 3 {
				t.Fatalf("sigstore-go's statement: %v", res.Statement)
			}
			notListed := sha256.Sum256([]byte("not in the build"))
			if _, err := verifier(ca).Verify(&b, policy(notListed[:])); err == nil {
				t.Fatal("sigstore-go matched a digest the manifest does not list")
			}
			if _, err := verifier(other).Verify(&b, policy(appSum[:])); err == nil {
				t.Fatal("sigstore-go accepts the manifest under another root")
			}
			if _, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: time.Now()}); err != nil {
				t.Fatalf("our Verify: %v", err)
			}
		})
	}
}

// TestCosignVerifiesAttestation runs cosign verify-blob-attestation on the
// manifest for one of its files, offline.
func TestCosignVerifiesAttestation(t *testing.T) {
	cosign := sgtest.Cosign(t)
	ca := testca.New(t)
	key := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256}).Key
	leaf := ca.SANLeaf(t, key).Cert
	root, subjects := buildTree(t, tree)
	data, err := manifest.New(subjects, predicate(manifest.Passed), key, []*x509.Certificate{leaf, ca.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manifestPath := filepath.Join(dir, "csv-manifest.sigstore.json")
	trPath := filepath.Join(dir, "trusted_root.json")
	tr, err := bundle.TrustedRoot([]*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert})
	if err != nil {
		t.Fatal(err)
	}
	for p, d := range map[string][]byte{manifestPath: data, trPath: tr} {
		if err := os.WriteFile(p, d, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(file string) ([]byte, error) {
		cmd := exec.Command(cosign, "verify-blob-attestation",
			"--bundle", manifestPath, "--new-bundle-format", "--trusted-root", trPath,
			"--type", manifest.PredicateType,
			"--insecure-ignore-tlog", "--insecure-ignore-sct",
			"--certificate-identity-regexp", ".*", "--certificate-oidc-issuer-regexp", ".*",
			file)
		cmd.Env = append(os.Environ(), "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
		return cmd.CombinedOutput()
	}
	if out, err := run(filepath.Join(root, "bin", "app.exe")); err != nil {
		t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, out)
	}
	stray := filepath.Join(dir, "stray.exe")
	if err := os.WriteFile(stray, []byte("MZ not in the build"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(stray); err == nil {
		t.Fatalf("cosign accepts a file the manifest does not list:\n%s", out)
	}
}

// FuzzVerify feeds bundles to Verify, without and with TSA roots. Seeds: a
// manifest, statements with keys encoding/json folds together, and a
// timestamped one where openssl is installed (verified before and after
// its time). Invariants: no panic; a statement or an error, never both nor
// neither; a timestamped result has a time, not after the verification
// time, and a TSA.
func FuzzVerify(f *testing.F) {
	ca := testca.New(f)
	leaf := ca.Leaf(f, testca.LeafOptions{KeyType: testca.ECDSAP256})
	good, err := manifest.New([]manifest.Subject{manifest.SHA256Subject("a", make([]byte, 32))}, predicate(manifest.Passed), leaf.Key, []*x509.Certificate{leaf.Cert})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// Statements signed by the right key with keys encoding/json folds
	// together: a case-variant duplicate, a field in another case.
	var gb struct {
		DSSEEnvelope struct {
			Payload []byte `json:"payload"`
		} `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(good, &gb); err != nil {
		f.Fatal(err)
	}
	for _, edit := range [][2]string{
		{`"subject":`, `"subject":[],"SUBJECT":`},
		{`"subject":`, `"\u017fubject":`},
		{`"verificationResult":"PASSED"`, `"verificationResult":"FAILED","verificationRe\u017fult":"PASSED"`},
	} {
		p := bytes.Replace(gb.DSSEEnvelope.Payload, []byte(edit[0]), []byte(edit[1]), 1)
		seed, err := bundle.NewDSSE(manifest.PayloadType, p, leaf.Key, []*x509.Certificate{leaf.Cert}, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed)
	}
	// A timestamped manifest, where OpenSSL can play the TSA: with TSA
	// roots given, the fuzzer reaches the RFC 3161 parser and checks.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		tsa := ca.TSA(f)
		url := testca.OpenSSLTSA(f, openssl, tsa, tsa.Cert, ca.Intermediate.Cert)
		stamped, err := manifest.New([]manifest.Subject{manifest.SHA256Subject("a", make([]byte, 32))}, predicate(manifest.Passed), leaf.Key,
			[]*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, manifest.WithTimestamp(func(sig []byte) ([]byte, error) {
				resp, _, err := tsahttp.Request(f.Context(), url, nil, sig)
				return resp, err
			}))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(stamped)
	}
	roots := []*x509.Certificate{ca.Root.Cert}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, Now: testca.Epoch})
		if (st == nil) == (err == nil) {
			t.Fatalf("statement %v and error %v", st, err)
		}
		// At Epoch the timestamped seed's time (the day it was made) is in
		// the future, which is refused; five years later it is not.
		for _, now := range []time.Time{testca.Epoch, testca.Epoch.AddDate(5, 0, 0)} {
			st, err = manifest.Verify(data, manifest.VerifyOptions{Roots: roots, TSARoots: roots, Now: now})
			if (st == nil) == (err == nil) {
				t.Fatalf("with TSA roots: statement %v and error %v", st, err)
			}
			if st != nil && st.Signed.Timestamped && (st.Signed.At.IsZero() || st.Signed.TSA == nil || st.Signed.At.After(now)) {
				t.Fatalf("timestamped without a time or TSA, or in the future: %+v", st.Signed)
			}
		}
	})
}

// TestMatchSigner: a pinned identity matches the signer by common name,
// alternative name or fingerprint, and nothing else; the chain Verify
// returns starts with the signer.
func TestMatchSigner(t *testing.T) {
	u, _ := url.Parse("https://ci.example.com/release")
	leaf := &x509.Certificate{Raw: []byte("a certificate"), Subject: pkix.Name{CommonName: "Build Signing", Organization: []string{"Example"}},
		DNSNames: []string{"build.example.com"}, EmailAddresses: []string{"release@example.com"}, URIs: []*url.URL{u}}
	fp := sha256.Sum256(leaf.Raw)
	hexFP := strings.ToUpper(hex.EncodeToString(fp[:]))
	for _, ids := range [][]string{nil, {"cn:Build Signing"}, {"dns:build.example.com"}, {"email:release@example.com"},
		{"uri:https://ci.example.com/release"}, {"sha256:" + hexFP}, {"SHA256:" + strings.ToLower(hexFP)}, {"cn:nobody", "CN:Build Signing"}} {
		if err := manifest.MatchSigner(leaf, ids); err != nil {
			t.Errorf("%q: %v", ids, err)
		}
	}
	for _, ids := range [][]string{{"cn:build signing"}, {"cn:Example"}, {"cn:Build Signing "}, {"uri:https://ci.example.com"},
		// a name of the wrong type: the pin says which
		{"email:Build Signing"}, {"cn:release@example.com"}, {"dns:release@example.com"}, {"cn:build.example.com"},
		// not pins at all
		{"Build Signing"}, {""}, {"cn:"}, {"sha256:"}, {"sha256:" + hexFP[:62]}, {"sha256:" + hexFP + "00"}, {"spiffe:x"}} {
		if err := manifest.MatchSigner(leaf, ids); !errors.Is(err, manifest.ErrSigner) {
			t.Errorf("%q: %v, want ErrSigner", ids, err)
		}
	}
	// A certificate whose CN reads like a pin matches only as a CN.
	odd := &x509.Certificate{Raw: []byte("another"), Subject: pkix.Name{CommonName: "sha256:" + hexFP}}
	if err := manifest.MatchSigner(odd, []string{"sha256:" + hexFP}); !errors.Is(err, manifest.ErrSigner) {
		t.Errorf("CN spelled as a fingerprint matched the fingerprint pin: %v", err)
	}
	if err := manifest.MatchSigner(nil, []string{"x"}); !errors.Is(err, manifest.ErrSigner) {
		t.Errorf("no certificate: %v", err)
	}
	// A subject with two common names: crypto/x509 keeps the last as
	// CommonName, so "CN=Evil, CN=Build Signing" read as "Build Signing".
	// A cn: pin is ambiguous there, whichever name it gives; other pins
	// still match.
	{
		ca := testca.New(t)
		oidCN := asn1.ObjectIdentifier{2, 5, 4, 3}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(99),
			Subject: pkix.Name{Organization: []string{"csv tests"},
				ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidCN, Value: "Evil"}, {Type: oidCN, Value: "Build Signing"}}},
			NotBefore: testca.Epoch.AddDate(-1, 0, 0), NotAfter: testca.Epoch.AddDate(1, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
			DNSNames: []string{"build.example.com"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Intermediate.Cert, ca.Intermediate.Key.Public(), ca.Intermediate.Key)
		if err != nil {
			t.Fatal(err)
		}
		two, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if two.Subject.CommonName != "Build Signing" {
			t.Fatalf("CommonName %q: crypto/x509 no longer keeps the last CN", two.Subject.CommonName)
		}
		for _, ids := range [][]string{{"cn:Build Signing"}, {"cn:Evil"}} {
			if err := manifest.MatchSigner(two, ids); !errors.Is(err, manifest.ErrSigner) || !strings.Contains(err.Error(), "2 common names") {
				t.Errorf("two CNs, %q: %v, want ErrSigner naming both", ids, err)
			}
		}
		if err := manifest.MatchSigner(two, []string{"cn:Build Signing", "dns:build.example.com"}); err != nil {
			t.Errorf("two CNs, a DNS pin: %v", err)
		}
	}

	ca := testca.New(t)
	l := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	data, err := manifest.New([]manifest.Subject{manifest.SHA256Subject("a.exe", make([]byte, 32))}, predicate(manifest.Passed), l.Key, []*x509.Certificate{l.Cert, ca.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Chain) != 3 || !st.Chain[0].Equal(l.Cert) || !st.Chain[2].Equal(ca.Root.Cert) {
		t.Fatalf("chain %v", st.Chain)
	}
}

// TestTimestampedManifest: a manifest countersigned by an RFC 3161 TSA
// (OpenSSL's responder, stamping the current time) verifies after its
// signing certificate has expired, given the TSA's root, and says when it
// was signed and by which TSA; without TSA roots it is checked at the time
// given and fails then. A TSA root that is not the TSA's, or a timestamp
// over another signature, fails closed. openssl ts -verify accepts the
// timestamp as embedded, and sigstore-go verifies the bundle with a signed
// timestamp required.
func TestTimestampedManifest(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	ca, other := testca.New(t), testca.New(t)
	tsa := ca.TSA(t)
	tsaURL := testca.OpenSSLTSA(t, openssl, tsa, tsa.Cert, ca.Intermediate.Cert)
	key := ca.Leaf(t, testca.LeafOptions{}).Key
	leaf := ca.SANLeaf(t, key).Cert
	chain := []*x509.Certificate{leaf, ca.Intermediate.Cert}
	_, subjects := buildTree(t, tree)
	stamp := manifest.WithTimestamp(func(sig []byte) ([]byte, error) {
		resp, _, err := tsahttp.Request(t.Context(), tsaURL, nil, sig)
		return resp, err
	})
	before := time.Now().Add(-2 * time.Second)
	data, err := manifest.New(subjects, predicate(manifest.Passed), key, chain, stamp)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(2 * time.Second)
	roots := []*x509.Certificate{ca.Root.Cert}
	expired := leaf.NotAfter.AddDate(1, 0, 0)

	st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, TSARoots: roots, Now: expired})
	if err != nil {
		t.Fatalf("with the TSA's root, after the certificate expired: %v", err)
	}
	if s := st.Signed; !s.Timestamped || s.At.Before(before) || s.At.After(after) || s.TSA == nil || !s.TSA.Equal(tsa.Cert) || s.Timestamps != 1 {
		t.Errorf("signed %+v, want timestamped by the TSA between %v and %v", s, before, after)
	}
	if _, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, Now: expired}); !errors.Is(err, bundle.ErrUntrusted) {
		t.Errorf("without TSA roots, after the certificate expired: %v, want ErrUntrusted", err)
	}
	if st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, Now: time.Now()}); err != nil || st.Signed.Timestamped || st.Signed.Timestamps != 1 {
		t.Errorf("without TSA roots, now: %v, signed %+v (want checked now, one timestamp not read)", err, st.Signed)
	}
	if _, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, TSARoots: []*x509.Certificate{other.Root.Cert}, Now: time.Now()}); !errors.Is(err, signing.ErrTimestamp) || !strings.Contains(err.Error(), "Test TSA") {
		t.Errorf("with another TSA root: %v, want ErrTimestamp naming the TSA", err)
	}

	// A timestamp after the verifier's time (as from a TSA whose clock is
	// an hour ahead) proves nothing: refused, not used to check the chain.
	if _, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, TSARoots: roots, Now: before.Add(-time.Hour)}); !errors.Is(err, signing.ErrTimestamp) || !strings.Contains(err.Error(), "after the verification time") {
		t.Errorf("a timestamp an hour after the verification time: %v, want ErrTimestamp", err)
	}

	// A timestamp taken for another manifest's signature, spliced in.
	otherData, err := manifest.New(subjects[:1], predicate(manifest.Passed), key, chain, stamp)
	if err != nil {
		t.Fatal(err)
	}
	spliced := spliceTimestamps(t, data, otherData)
	if _, err := manifest.Verify(spliced, manifest.VerifyOptions{Roots: roots, TSARoots: roots, Now: time.Now()}); !errors.Is(err, signing.ErrTimestamp) || !strings.Contains(err.Error(), "imprint") {
		t.Errorf("a timestamp over another signature: %v, want ErrTimestamp (message imprint)", err)
	}

	// OpenSSL verifies the TimeStampResp as embedded, over the DSSE
	// signature.
	var raw struct {
		VerificationMaterial struct {
			TimestampVerificationData struct {
				Rfc3161Timestamps []struct{ SignedTimestamp []byte }
			}
		}
		DsseEnvelope struct{ Signatures []struct{ Sig []byte } }
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tsr := write("ts.tsr", raw.VerificationMaterial.TimestampVerificationData.Rfc3161Timestamps[0].SignedTimestamp)
	sig := write("sig.bin", raw.DsseEnvelope.Signatures[0].Sig)
	cmd := exec.Command(openssl, "ts", "-verify", "-in", tsr, "-data", sig,
		"-CAfile", write("root.pem", testca.PEM(ca.Root.Cert)), "-untrusted", write("inter.pem", testca.PEM(tsa.Cert, ca.Intermediate.Cert)))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Errorf("openssl ts -verify: %v\n%s", err, out)
	}

	// sigstore-go, with the TSA in its trusted root and one signed
	// timestamp required.
	trJSON, err := bundle.TrustedRoot([]*x509.Certificate{ca.Intermediate.Cert, ca.Root.Cert}, []*x509.Certificate{tsa.Cert, ca.Intermediate.Cert, ca.Root.Cert})
	if err != nil {
		t.Fatal(err)
	}
	appSum := sha256.Sum256([]byte("MZ app"))
	if _, err := sgtest.Verify(t, trJSON, data, verify.NewPolicy(verify.WithArtifactDigest("sha256", appSum[:]), verify.WithoutIdentitiesUnsafe()), verify.WithSignedTimestamps(1)); err != nil {
		t.Errorf("sigstore-go rejects the timestamped manifest: %v", err)
	}
}

// spliceTimestamps returns dst with the timestamps of src.
func spliceTimestamps(t *testing.T, dst, src []byte) []byte {
	t.Helper()
	var d, s map[string]any
	if err := json.Unmarshal(dst, &d); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(src, &s); err != nil {
		t.Fatal(err)
	}
	d["verificationMaterial"].(map[string]any)["timestampVerificationData"] = s["verificationMaterial"].(map[string]any)["timestampVerificationData"]
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVerifySigners: Verify checks the signer against the pinned
// identities after the signature, the chain and the statement: a manifest
// by another signer is ErrSigner, one that does not verify is refused for
// that first, whatever the pins.
func TestVerifySigners(t *testing.T) {
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{KeyType: testca.ECDSAP256, CommonName: "Build Signing"})
	chain := []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}
	_, subjects := buildTree(t, tree)
	data, err := manifest.New(subjects, predicate(manifest.Passed), leaf.Key, chain)
	if err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256(leaf.Cert.Raw)
	opts := func(signers ...string) manifest.VerifyOptions {
		return manifest.VerifyOptions{Roots: []*x509.Certificate{ca.Root.Cert}, Now: testca.Epoch, Signers: signers}
	}
	for _, ids := range [][]string{nil, {"cn:Build Signing"}, {"cn:nobody", "sha256:" + hex.EncodeToString(fp[:])}} {
		if st, err := manifest.Verify(data, opts(ids...)); err != nil || st == nil {
			t.Errorf("signers %q: %v", ids, err)
		}
	}
	for _, ids := range [][]string{{"cn:Other Signing"}, {"sha256:" + strings.Repeat("00", 32)}, {"Build Signing"}} {
		if st, err := manifest.Verify(data, opts(ids...)); !errors.Is(err, manifest.ErrSigner) || st != nil {
			t.Errorf("signers %q: %v, %v; want ErrSigner", ids, st, err)
		}
	}
	other := testca.New(t)
	if _, err := manifest.Verify(data, manifest.VerifyOptions{Roots: []*x509.Certificate{other.Root.Cert}, Now: testca.Epoch,
		Signers: []string{"cn:Other Signing"}}); !errors.Is(err, bundle.ErrUntrusted) {
		t.Errorf("another root, another signer pinned: %v, want ErrUntrusted first", err)
	}
}

// TestVerdict: files that do not match fail a manifest whatever it
// records; then a build that did not pass; else it passes.
func TestVerdict(t *testing.T) {
	st := func(r manifest.Result) *manifest.Statement {
		return &manifest.Statement{Subject: make([]manifest.Subject, 3), Predicate: manifest.Predicate{VerificationResult: r}}
	}
	bad := []manifest.Mismatch{{Name: "a", Kind: manifest.Missing}}
	for _, tt := range []struct {
		name string
		st   *manifest.Statement
		bad  []manifest.Mismatch
		want error
	}{
		{"passed, files match", st(manifest.Passed), nil, nil},
		{"passed, a file missing", st(manifest.Passed), bad, manifest.ErrMismatch},
		{"failed, files match", st(manifest.Failed), nil, manifest.ErrNotPassed},
		{"failed, a file missing", st(manifest.Failed), bad, manifest.ErrMismatch},
	} {
		err := manifest.Verdict(tt.st, tt.bad)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if errors.Is(tt.want, manifest.ErrMismatch) && !strings.Contains(err.Error(), "1 of 3 files") {
			t.Errorf("%s: %v does not say how many files", tt.name, err)
		}
	}
}
