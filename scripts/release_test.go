// Package scripts_test runs the release script (release.sh) and the GitHub
// Action's shell logic (action.sh) as CI runs them, and checks what they
// write: a snapshot release (csv and csv-kms) signed with a throwaway CA,
// verified with csv itself, openssl and the library's bundle verifier; the
// action's install from that release served over HTTP, with every tampering
// refused.
package scripts_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/kmstest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/bundle"
)

const cyclonedx = "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0"

// snapshot is one snapshot release, built once for every test that needs it.
type snapshot struct {
	dir     string // the release directory (--out)
	version string
	name    string // csv_VERSION_linux_amd64
	sbom    bool
	log     string
	err     error
}

var (
	snapOnce sync.Once
	snap     snapshot
	snapDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if snapDir != "" {
		os.RemoveAll(snapDir)
	}
	os.Exit(code)
}

func bashOrSkip(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the release and action scripts run under bash on Linux and macOS runners")
	}
	testenv.Tool(t, "bash")
}

func git(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", testenv.RepoRoot(t)}, args...)...).Output()
	if err != nil {
		t.Skipf("git %s: %v (the release script needs a git checkout)", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// buildSnapshot runs scripts/release.sh --snapshot for linux/amd64.
func buildSnapshot(t *testing.T) *snapshot {
	t.Helper()
	if os.Getenv("CSV_RELEASE_TEST") != "1" {
		// A -trimpath build of every package: minutes on a cold cache.
		// .ci/run runs these tests on their own, with a longer timeout.
		t.Skip("builds a release: set CSV_RELEASE_TEST=1 (.ci/run does)")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the snapshot is linux/amd64, which runs only there")
	}
	bashOrSkip(t)
	testenv.Tool(t, "openssl")
	commit := git(t, "rev-parse", "HEAD")
	snapOnce.Do(func() {
		dir, err := os.MkdirTemp("", "csv-release-test-")
		if err != nil {
			snap.err = err
			return
		}
		snapDir = dir
		snap.dir = filepath.Join(dir, "dist")
		snap.version = "v0.0.0-snapshot-" + commit[:12]
		snap.name = "csv_" + strings.TrimPrefix(snap.version, "v") + "_linux_amd64"
		// The SBOM generator is a pinned go run: offline it works only
		// when the module cache has it (the release workflow fetches it).
		// The module cache serves as the proxy (GOPROXY=off refuses go
		// run's deprecation lookup); its modules were checked against the
		// checksum database when they were fetched.
		modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			snap.err = err
			return
		}
		offline := []string{"GOPROXY=file://" + filepath.ToSlash(filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download")), "GOSUMDB=off"}
		probe := exec.Command("go", "run", cyclonedx, "version")
		probe.Env = append(append(os.Environ(), "GOFLAGS="), offline...)
		snap.sbom = probe.Run() == nil
		cmd := exec.Command(filepath.Join(testenv.RepoRoot(t), "scripts", "release.sh"), "--snapshot", "--out", snap.dir)
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(append(os.Environ(), offline...), "VERSION=", "CSV_RELEASE_KEY=", "CSV_RELEASE_CERT=", "CSV_RELEASE_ROOT=")
		if !snap.sbom {
			cmd.Env = append(cmd.Env, "CSV_SBOM=none")
		}
		out, err := cmd.CombinedOutput()
		snap.log = string(out)
		snap.err = err
	})
	if snap.err != nil {
		t.Fatalf("release.sh --snapshot: %v\n%s", snap.err, snap.log)
	}
	return &snap
}

func (s *snapshot) path(name string) string { return filepath.Join(s.dir, name) }

// TestReleaseSnapshot checks every file of a snapshot release.
func TestReleaseSnapshot(t *testing.T) {
	s := buildSnapshot(t)
	root := s.path("snapshot-pki/root.pem")

	// SHA256SUMS lists every release file once, with its digest.
	sums := readSums(t, s.path("SHA256SUMS"))
	want := []string{s.name + ".tar.gz", s.name + ".manifest.sigstore.json"}
	if s.sbom {
		want = append(want, s.name+".sbom.cdx.json", s.name+".csv-kms.sbom.cdx.json")
	}
	for _, f := range want {
		if _, ok := sums[f]; !ok {
			t.Errorf("SHA256SUMS does not list %s", f)
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), "csv_") {
			continue
		}
		sum := sha256.Sum256(readFile(t, s.path(e.Name())))
		if got := sums[e.Name()]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("SHA256SUMS lists %q for %s, whose SHA-256 is %x", got, e.Name(), sum)
		}
	}
	if len(sums) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d: %v", len(sums), len(want), sums)
	}

	// The checksums' bundle verifies with csv's verifier against the
	// snapshot root, and not over a changed SHA256SUMS or another root.
	roots, err := signing.LoadX509CertificateFiles([]string{root})
	if err != nil {
		t.Fatal(err)
	}
	bundleJSON := readFile(t, s.path("SHA256SUMS.sigstore.json"))
	sumsData := readFile(t, s.path("SHA256SUMS"))
	digest := sha256.Sum256(sumsData)
	if err := bundle.Verify(bundleJSON, digest[:], bundle.VerifyOptions{Roots: roots, Now: time.Now()}); err != nil {
		t.Errorf("the SHA256SUMS bundle does not verify: %v", err)
	}
	changed := bytes.Clone(sumsData)
	changed[0] ^= 1
	digest2 := sha256.Sum256(changed)
	if err := bundle.Verify(bundleJSON, digest2[:], bundle.VerifyOptions{Roots: roots, Now: time.Now()}); err == nil {
		t.Error("the SHA256SUMS bundle verifies over a changed SHA256SUMS")
	}
	if err := bundle.Verify(bundleJSON, digest[:], bundle.VerifyOptions{Roots: nil, Now: time.Now()}); err == nil {
		t.Error("the SHA256SUMS bundle verifies with no trusted root")
	}
	// The peer: openssl checks the bundle's signature over SHA256SUMS with
	// the certificate the bundle carries, and refuses a changed byte.
	opensslVerifiesBundle(t, bundleJSON, s.path("SHA256SUMS"), changed)

	// The archive: both binaries and the documents under one directory,
	// owned by no one, dated at the commit.
	x := t.TempDir()
	members := untar(t, s.path(s.name+".tar.gz"), x)
	for _, m := range []string{"csv", "csv-kms", "LICENSE", "README.md", "CHANGELOG.md", "SECURITY.md", "THIRD_PARTY_LICENSES"} {
		if _, ok := members[s.name+"/"+m]; !ok {
			t.Errorf("%s.tar.gz lacks %s/%s (has %v)", s.name, s.name, m, members)
		}
	}
	commitTime, err := time.Parse(time.RFC3339, git(t, "log", "-1", "--format=%cI", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range members {
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || !h.ModTime.Equal(commitTime) {
			t.Errorf("member %s: uid %d gid %d uname %q mtime %v, want 0, 0, none, %v", name, h.Uid, h.Gid, h.Uname, h.ModTime, commitTime)
		}
	}
	csvBin := filepath.Join(x, s.name, "csv")
	kmsBin := filepath.Join(x, s.name, "csv-kms")

	// csv links no cloud SDK; csv-kms links the four providers' SDKs.
	// Every module linked into either has its licence in the archive.
	thirdParty := string(readFile(t, filepath.Join(x, s.name, "THIRD_PARTY_LICENSES")))
	csvDeps, kmsDeps := linkedModules(t, csvBin), linkedModules(t, kmsBin)
	for _, sdk := range kmsSDKs {
		if slices.ContainsFunc(csvDeps, func(m string) bool { return strings.HasPrefix(m, sdk+"@") }) {
			t.Errorf("csv links %s: the cloud SDKs belong in csv-kms only", sdk)
		}
		if !slices.ContainsFunc(kmsDeps, func(m string) bool { return strings.HasPrefix(m, sdk+"@") }) {
			t.Errorf("csv-kms does not link %s", sdk)
		}
	}
	for _, m := range csvDeps {
		if !slices.Contains(kmsDeps, m) {
			t.Errorf("csv links %s, csv-kms does not: csv-kms is csv with the KMS providers, built from the same module graph", m)
		}
	}
	for _, m := range kmsDeps {
		if !strings.Contains(thirdParty, "\n## "+m+"\n") {
			t.Errorf("THIRD_PARTY_LICENSES lacks %s", m)
		}
	}
	if len(csvDeps) == 0 || len(kmsDeps) <= len(csvDeps) || !strings.Contains(thirdParty, "Apache License") || !strings.Contains(thirdParty, "Mozilla Public License") {
		t.Errorf("THIRD_PARTY_LICENSES: %d modules linked into csv, %d into csv-kms; Apache and MPL texts missing?", len(csvDeps), len(kmsDeps))
	}
	t.Logf("linked modules: csv %d, csv-kms %d", len(csvDeps), len(kmsDeps))

	// csv version reports what release.sh set with -ldflags, and csv-kms
	// the same.
	for _, bin := range []string{csvBin, kmsBin} {
		out, err := exec.Command(bin, "version", "--format", "json").Output()
		if err != nil {
			t.Fatalf("%s version --format json: %v", filepath.Base(bin), err)
		}
		var info struct {
			Version, Commit, Date, Platform string
			CGO                             bool
		}
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("%s version --format json wrote %q: %v", filepath.Base(bin), out, err)
		}
		if info.Version != s.version || info.Commit != git(t, "rev-parse", "HEAD") || info.Platform != "linux/amd64" || info.CGO {
			t.Errorf("%s version: %+v, want version %s, commit HEAD, linux/amd64 without cgo", filepath.Base(bin), info, s.version)
		}
		if d, err := time.Parse(time.RFC3339, info.Date); err != nil || !d.Equal(commitTime) {
			t.Errorf("%s version: date %q, want the commit's %v", filepath.Base(bin), info.Date, commitTime)
		}
	}

	// The archive's csv hands a KMS-keyed command to the csv-kms beside it:
	// a fake Vault sees csv-kms ask for the key.
	kmsHandOff(t, csvBin, s.path("snapshot-pki/chain.pem"))

	// The signed manifest: csv verifies its own release, with the root and
	// the signer pinned, and refuses a changed binary.
	manifest := s.path(s.name + ".manifest.sigstore.json")
	verify := func() (int, string) {
		return exitAndOutput(t, exec.Command(csvBin, "verify-manifest", "--manifest", manifest, "--certs", root,
			"--signer", "cn:csv snapshot release signing", "--extra", filepath.Join(x, s.name)))
	}
	if code, out := verify(); code != 0 || !strings.Contains(out, "result: PASSED: all 2 files match") {
		t.Errorf("csv verify-manifest of the release (csv and csv-kms): exit %d\n%s", code, out)
	}
	// Both binaries in the archive carry csv's appended signature, which
	// verifies with the signer's certificate (a module signature carries
	// none).
	for _, bin := range []string{csvBin, kmsBin} {
		if out, err := exec.Command(csvBin, "inspect", "--certs", s.path("snapshot-pki/release.pem"), "--certs", root, bin).CombinedOutput(); err != nil ||
			!regexp.MustCompile(`(?m)^\s+signature 0: modsig, ECDSA SHA-256: verified`).Match(out) {
			t.Errorf("csv inspect of the released %s: %v\n%s", filepath.Base(bin), err, out)
		}
	}
	// A changed byte in either binary fails the manifest. The changed
	// binary may not run: verify with the snapshot's stage copy.
	runBin := csvBin
	csvBin = filepath.Join(s.dir, "stage", s.name, "csv")
	for _, bin := range []string{kmsBin, runBin} {
		orig := readFile(t, bin)
		data := bytes.Clone(orig)
		data[len(data)/2] ^= 0x40
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if code, out := verify(); code != 1 {
			t.Errorf("csv verify-manifest with a changed %s: exit %d, want 1\n%s", filepath.Base(bin), code, out)
		}
		if err := os.WriteFile(bin, orig, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A release without csv-kms fails it too: the manifest lists both.
	if err := os.Remove(kmsBin); err != nil {
		t.Fatal(err)
	}
	if code, out := verify(); code != 1 {
		t.Errorf("csv verify-manifest without csv-kms: exit %d, want 1\n%s", code, out)
	}

	// Each SBOM lists every module Go linked into its binary, at its version.
	if !s.sbom {
		t.Logf("cyclonedx-gomod (%s) is not in the module cache: the snapshot has no SBOM to check (the release workflow makes one)", cyclonedx)
		return
	}
	checkSBOM(t, s.path(s.name+".sbom.cdx.json"), csvBin)
	checkSBOM(t, s.path(s.name+".csv-kms.sbom.cdx.json"), filepath.Join(s.dir, "stage", s.name, "csv-kms"))
}

// kmsSDKs are the modules of the cloud SDKs under sigstore's KMS providers
// (signing/keys/kmsproviders), which only csv-kms links.
var kmsSDKs = []string{
	"github.com/aws/aws-sdk-go-v2/service/kms",
	"cloud.google.com/go/kms",
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys",
	"github.com/hashicorp/vault/api",
}

// linkedModules returns the modules go version -m lists as linked into
// binary, as PATH@VERSION.
func linkedModules(t *testing.T, binary string) []string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", binary, err)
	}
	var mods []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "dep" {
			mods = append(mods, f[1]+"@"+f[2])
		}
	}
	return mods
}

// kmsHandOff checks that csvBin, given a KMS key, runs the csv-kms in its
// own directory: csv-kms asks a fake Vault (VAULT_ADDR) for the key's
// public key, which csv alone cannot do. Copied alone into another
// directory, csv refuses the key (exit status 2, naming csv-kms) and
// reaches no server.
func kmsHandOff(t *testing.T, csvBin, chain string) {
	t.Helper()
	var mu sync.Mutex
	var asked []string
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		mu.Unlock()
		http.Error(w, `{"errors":["no such key"]}`, http.StatusNotFound)
	}))
	defer vault.Close()
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, []byte("a file to sign"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(bin string) (int, string) {
		cmd := exec.Command(bin, "sign", "--key", "hashivault://release", "--cert", chain, file)
		cmd.Env = append(os.Environ(), "VAULT_ADDR="+vault.URL, "VAULT_TOKEN=test-token", "VAULT_NAMESPACE=")
		return exitAndOutput(t, cmd)
	}
	code, out := run(csvBin)
	mu.Lock()
	got := slices.Clone(asked)
	asked = nil
	mu.Unlock()
	if code != 2 || !slices.Contains(got, "GET /v1/transit/keys/release") {
		t.Errorf("csv sign --key hashivault://release beside csv-kms: exit %d, the fake Vault saw %q; want exit status 2 after csv-kms asked for the key\n%s", code, got, out)
	}
	alone := filepath.Join(t.TempDir(), "csv")
	if err := os.WriteFile(alone, readFile(t, csvBin), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out = run(alone)
	mu.Lock()
	got = slices.Clone(asked)
	mu.Unlock()
	if code != 2 || !strings.Contains(out, "csv-kms") || len(got) != 0 {
		t.Errorf("csv sign --key hashivault://release without csv-kms: exit %d, the fake Vault saw %q; want exit status 2, a message naming csv-kms and no request\n%s", code, got, out)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readSums parses a sha256sum file strictly.
func readSums(t *testing.T, name string) map[string]string {
	t.Helper()
	line := regexp.MustCompile(`^([0-9a-f]{64})  (csv_[A-Za-z0-9._-]+)$`)
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("SHA256SUMS line %q is not DIGEST  FILE", sc.Text())
		}
		if _, dup := sums[m[2]]; dup {
			t.Fatalf("SHA256SUMS lists %s twice", m[2])
		}
		sums[m[2]] = m[1]
	}
	return sums
}

func untar(t *testing.T, archive, dir string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	members := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) {
			t.Fatalf("%s: member %q is not a local path", archive, h.Name)
		}
		members[name] = h
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, os.FileMode(h.Mode)&0o755); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("%s: member %q has type %q: want files and directories only", archive, h.Name, h.Typeflag)
		}
	}
	return members
}

// opensslVerifiesBundle checks a message-signature bundle with openssl dgst.
func opensslVerifiesBundle(t *testing.T, bundleJSON []byte, file string, changed []byte) {
	t.Helper()
	openssl := testenv.Tool(t, "openssl")
	var b struct {
		VerificationMaterial struct {
			X509CertificateChain struct {
				Certificates []struct {
					RawBytes []byte `json:"rawBytes"`
				} `json:"certificates"`
			} `json:"x509CertificateChain"`
			Certificate struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"certificate"`
		} `json:"verificationMaterial"`
		MessageSignature struct {
			Signature []byte `json:"signature"`
		} `json:"messageSignature"`
	}
	if err := json.Unmarshal(bundleJSON, &b); err != nil {
		t.Fatalf("the bundle is not JSON: %v", err)
	}
	leaf := b.VerificationMaterial.Certificate.RawBytes
	if certs := b.VerificationMaterial.X509CertificateChain.Certificates; len(certs) > 0 {
		leaf = certs[0].RawBytes
	}
	if len(leaf) == 0 || len(b.MessageSignature.Signature) == 0 {
		t.Fatalf("the bundle has no certificate or no message signature: %s", bundleJSON)
	}
	dir := t.TempDir()
	cert := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}), 0o644); err != nil {
		t.Fatal(err)
	}
	pub, err := exec.Command(openssl, "x509", "-in", cert, "-noout", "-pubkey").Output()
	if err != nil {
		t.Fatalf("openssl x509 -pubkey: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pub.pem"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sig"), b.MessageSignature.Signature, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "changed"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(f string) error {
		return exec.Command(openssl, "dgst", "-sha256", "-verify", filepath.Join(dir, "pub.pem"), "-signature", filepath.Join(dir, "sig"), f).Run()
	}
	if err := run(file); err != nil {
		t.Errorf("openssl dgst -verify refuses the bundle's signature over SHA256SUMS: %v (signature %s)", err, base64.StdEncoding.EncodeToString(b.MessageSignature.Signature))
	}
	if err := run(filepath.Join(dir, "changed")); err == nil {
		t.Error("openssl dgst -verify accepts the bundle's signature over a changed SHA256SUMS")
	}
}

// checkSBOM compares the CycloneDX SBOM with go version -m of the binary.
func checkSBOM(t *testing.T, sbomFile, binary string) {
	t.Helper()
	var doc struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		} `json:"components"`
	}
	if err := json.Unmarshal(readFile(t, sbomFile), &doc); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	if doc.BOMFormat != "CycloneDX" {
		t.Errorf("SBOM bomFormat %q, want CycloneDX", doc.BOMFormat)
	}
	have := map[string]bool{}
	for _, c := range doc.Components {
		have[c.Name+"@"+c.Version] = true
	}
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	deps := 0
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "dep" {
			deps++
			if !have[f[1]+"@"+f[2]] {
				t.Errorf("the SBOM lacks %s@%s, which the binary links", f[1], f[2])
			}
		}
	}
	if deps == 0 {
		t.Fatalf("go version -m lists no dependencies:\n%s", out)
	}
	t.Logf("SBOM: %d components for %d linked modules", len(doc.Components), deps)
}

// TestReleaseRefuses: release.sh refuses a release it cannot make properly,
// before it builds anything.
func TestReleaseRefuses(t *testing.T) {
	bashOrSkip(t)
	git(t, "rev-parse", "HEAD")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"a release without a tag", []string{"build"}, []string{"VERSION="}, "no vX.Y.Z tag"},
		{"a version that is not semver", []string{"--snapshot", "build"}, []string{"VERSION=1.2"}, "is not vMAJOR.MINOR.PATCH"},
		{"a version with a shell word", []string{"--snapshot", "build"}, []string{"VERSION=v1.2.3;rm"}, "is not vMAJOR.MINOR.PATCH"},
		{"an unknown target", []string{"--snapshot", "--targets", "plan9/386", "build"}, nil, "target plan9/386 is not one of"},
		{"an unknown step", []string{"publish"}, nil, "unknown argument publish"},
		{"a release without a key", []string{"--targets", "linux/amd64", "package"}, []string{"VERSION=v9.9.9", "CSV_RELEASE_KEY="}, "CSV_RELEASE_KEY and CSV_RELEASE_CERT are required"},
	}
	tagged := exec.Command("git", "-C", testenv.RepoRoot(t), "describe", "--tags", "--exact-match", "--match", "v[0-9]*", "HEAD").Run() == nil
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tagged && tt.name == "a release without a tag" {
				t.Skip("HEAD is tagged")
			}
			out := t.TempDir()
			cmd := exec.Command(filepath.Join(testenv.RepoRoot(t), "scripts", "release.sh"), append([]string{"--out", out}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env...)
			got, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("release.sh %v: %v, want exit status 2\n%s", tt.args, err, got)
			}
			if !strings.Contains(string(got), tt.want) {
				t.Errorf("release.sh %v said %q, want %q", tt.args, got, tt.want)
			}
			if entries, _ := os.ReadDir(filepath.Join(out, "stage")); len(entries) != 0 {
				t.Errorf("release.sh %v built something before refusing: %v", tt.args, entries)
			}
		})
	}
}

// TestReleaseKMSKey packages a windows/amd64 release with a KMS key, as the
// release workflow does with its cloud KMS key: no linux/amd64 stage, so
// release.sh builds the packaging csv and the csv-kms it hands the key to.
// Both Windows binaries carry an Authenticode signature that osslsigncode
// verifies, and the manifest lists both.
func TestReleaseKMSKey(t *testing.T) {
	s := buildSnapshot(t) // the same gates, and a warm build cache
	ossl := testenv.Tool(t, "osslsigncode")
	testenv.Tool(t, "unzip")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "csv release signing (KMS)", KeyType: testca.ECDSAP256})
	pki := t.TempDir()
	chain, rootPEM := filepath.Join(pki, "chain.pem"), filepath.Join(pki, "root.pem")
	if err := os.WriteFile(chain, testca.PEM(leaf.Cert, ca.Intermediate.Cert, ca.Root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootPEM, testca.PEM(ca.Root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	vault, signed := kmstest.FakeVault(t, "csv-release", "csv-release-token", leaf.Key.(*ecdsa.PrivateKey))

	out := filepath.Join(filepath.Dir(s.dir), "dist-kms")
	run := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(testenv.RepoRoot(t), "scripts", "release.sh"), append([]string{"--snapshot", "--out", out, "--targets", "windows/amd64"}, args...)...)
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(append(os.Environ(), "VERSION=", "CSV_SBOM=none", "CSV_RELEASE_KEY=", "CSV_RELEASE_CERT=", "CSV_RELEASE_ROOT="), env...)
		log, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("release.sh %v: %v\n%s", args, err, log)
		}
		return string(log)
	}
	run(nil, "build")
	log := run([]string{"CSV_RELEASE_KEY=hashivault://csv-release", "CSV_RELEASE_CERT=" + chain, "CSV_RELEASE_ROOT=" + rootPEM,
		"VAULT_ADDR=" + vault.URL, "VAULT_TOKEN=csv-release-token", "VAULT_NAMESPACE="}, "package")
	// Two Authenticode signatures, the manifest and the SHA256SUMS bundle.
	if n := signed.Load(); n < 4 {
		t.Errorf("the fake Vault made %d signatures, want at least 4 (two binaries, the manifest, SHA256SUMS)\n%s", n, log)
	}

	name := strings.Replace(s.name, "linux_amd64", "windows_amd64", 1)
	x := t.TempDir()
	if err := exec.Command("unzip", "-q", filepath.Join(out, name+".zip"), "-d", x).Run(); err != nil {
		t.Fatalf("unzip %s.zip: %v", name, err)
	}
	for _, exe := range []string{"csv.exe", "csv-kms.exe"} {
		p := filepath.Join(x, name, exe)
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s.zip lacks %s: %v", name, exe, err)
			continue
		}
		// The peer: osslsigncode checks the signature, its digest of the
		// file and the chain to the test root.
		if o, err := exec.Command(ossl, "verify", "-CAfile", rootPEM, "-in", p).CombinedOutput(); err != nil {
			t.Errorf("osslsigncode verify %s: %v\n%s", exe, err, o)
		}
	}
	if o, err := exec.Command(filepath.Join(s.dir, "stage", s.name, "csv"), "verify-manifest", "--manifest", filepath.Join(out, name+".manifest.sigstore.json"),
		"--certs", rootPEM, "--signer", "cn:csv release signing (KMS)", "--extra", filepath.Join(x, name)).CombinedOutput(); err != nil ||
		!strings.Contains(string(o), "result: PASSED: all 2 files match") {
		t.Errorf("csv verify-manifest of the KMS-signed windows release: %v\n%s", err, o)
	}
	if _, err := os.Stat(filepath.Join(out, "SHA256SUMS.sigstore.json")); err != nil {
		t.Errorf("no SHA256SUMS bundle: %v", err)
	}
}

// exitAndOutput runs cmd and returns its exit status and combined output;
// a command that could not run fails the test.
func exitAndOutput(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}
