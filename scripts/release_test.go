// Package scripts_test runs the release script (release.sh) and the GitHub
// Action's shell logic (action.sh) as CI runs them, and checks what they
// write: a snapshot release signed with a throwaway CA, verified with csv
// itself, openssl and the library's bundle verifier; the action's install
// from that release served over HTTP, with every tampering refused.
package scripts_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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
		want = append(want, s.name+".sbom.cdx.json")
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

	// The archive: the binary and the documents under one directory,
	// owned by no one, dated at the commit.
	x := t.TempDir()
	members := untar(t, s.path(s.name+".tar.gz"), x)
	for _, m := range []string{"csv", "LICENSE", "README.md", "CHANGELOG.md", "SECURITY.md", "THIRD_PARTY_LICENSES"} {
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

	// Every module linked into the binary has its licence in the archive.
	thirdParty := string(readFile(t, filepath.Join(x, s.name, "THIRD_PARTY_LICENSES")))
	gv, err := exec.Command("go", "version", "-m", csvBin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	linked := 0
	for line := range strings.SplitSeq(string(gv), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "dep" {
			linked++
			if !strings.Contains(thirdParty, "\n## "+f[1]+"@"+f[2]+"\n") {
				t.Errorf("THIRD_PARTY_LICENSES lacks %s@%s", f[1], f[2])
			}
		}
	}
	if linked == 0 || !strings.Contains(thirdParty, "Apache License") || !strings.Contains(thirdParty, "Mozilla Public License") {
		t.Errorf("THIRD_PARTY_LICENSES: %d linked modules, Apache and MPL texts missing?", linked)
	}

	// csv version reports what release.sh set with -ldflags.
	out, err := exec.Command(csvBin, "version", "--format", "json").Output()
	if err != nil {
		t.Fatalf("csv version --format json: %v", err)
	}
	var info struct {
		Version, Commit, Date, Platform string
		CGO                             bool
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("csv version --format json wrote %q: %v", out, err)
	}
	if info.Version != s.version || info.Commit != git(t, "rev-parse", "HEAD") || info.Platform != "linux/amd64" || info.CGO {
		t.Errorf("csv version: %+v, want version %s, commit HEAD, linux/amd64 without cgo", info, s.version)
	}
	if d, err := time.Parse(time.RFC3339, info.Date); err != nil || !d.Equal(commitTime) {
		t.Errorf("csv version: date %q, want the commit's %v", info.Date, commitTime)
	}

	// The signed manifest: csv verifies its own release, with the root and
	// the signer pinned, and refuses a changed binary.
	manifest := s.path(s.name + ".manifest.sigstore.json")
	verify := func() (int, string) {
		cmd := exec.Command(csvBin, "verify-manifest", "--manifest", manifest, "--certs", root,
			"--signer", "cn:csv snapshot release signing", "--extra", filepath.Join(x, s.name))
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
	if code, out := verify(); code != 0 || !strings.Contains(out, "result: PASSED: the 1 file matches") {
		t.Errorf("csv verify-manifest of the release: exit %d\n%s", code, out)
	}
	// The binary in the archive carries csv's appended signature, which
	// verifies with the signer's certificate (a module signature carries
	// none).
	if out, err := exec.Command(csvBin, "inspect", "--certs", s.path("snapshot-pki/release.pem"), "--certs", root, csvBin).CombinedOutput(); err != nil ||
		!regexp.MustCompile(`(?m)^\s+signature 0: modsig, ECDSA SHA-256: verified`).Match(out) {
		t.Errorf("csv inspect of the released binary: %v\n%s", err, out)
	}
	data := readFile(t, csvBin)
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(csvBin+".changed", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(csvBin+".changed", csvBin); err != nil {
		t.Fatal(err)
	}
	// The changed binary may not run: verify with the snapshot's stage copy.
	csvBin = filepath.Join(s.dir, "stage", s.name, "csv")
	if code, out := verify(); code != 1 {
		t.Errorf("csv verify-manifest of a changed binary: exit %d, want 1\n%s", code, out)
	}

	// The SBOM lists every module Go linked into the binary, at its version.
	if !s.sbom {
		t.Logf("cyclonedx-gomod (%s) is not in the module cache: the snapshot has no SBOM to check (the release workflow makes one)", cyclonedx)
		return
	}
	checkSBOM(t, s.path(s.name+".sbom.cdx.json"), csvBin)
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
