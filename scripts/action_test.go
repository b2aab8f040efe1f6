package scripts_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// runAction runs scripts/action.sh STEP with env, and returns its exit
// status, its output and what it wrote to $GITHUB_OUTPUT.
func runAction(t *testing.T, step string, env ...string) (int, string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	ghOut := filepath.Join(dir, "github_output")
	ghPath := filepath.Join(dir, "github_path")
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(t), "scripts", "action.sh"), step)
	cmd.Dir = testenv.RepoRoot(t)
	cmd.Env = append(os.Environ(), "GITHUB_OUTPUT="+ghOut, "GITHUB_PATH="+ghPath, "RUNNER_TEMP="+dir,
		"CSV_VERSION=", "CSV_DOWNLOAD_URL=", "CSV_POLICY=", "CSV_PATHS=", "CSV_MODE=", "CSV_FORMAT=", "CSV_OUTPUT=",
		"CSV_SHARD=", "CSV_ARGS=", "CSV_CATEGORY=", "CSV_EXIT_CODE=", "CSV_INSTALL_DIR=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	outputs := map[string]string{}
	data, _ := os.ReadFile(ghOut)
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			outputs[k] = v
		}
	}
	if p, err := os.ReadFile(ghPath); err == nil {
		outputs["GITHUB_PATH"] = strings.TrimSpace(string(p))
	}
	return code, string(out), outputs
}

// release serves a copy of the snapshot's archive and SHA256SUMS, as
// changed by tamper, the way the GitHub release serves its files.
func release(t *testing.T, s *snapshot, version string, tamper func(files map[string][]byte)) string {
	t.Helper()
	name := "csv_" + strings.TrimPrefix(version, "v") + "_linux_amd64.tar.gz"
	archive := readFile(t, s.path(s.name+".tar.gz"))
	sum := sha256.Sum256(archive)
	files := map[string][]byte{
		name:         archive,
		"SHA256SUMS": fmt.Appendf(nil, "%x  %s\n%x  other.zip\n", sum, name, sha256.Sum256(nil)),
	}
	if tamper != nil {
		tamper(files)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/releases/"+version+"/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/releases/" + version
}

// TestActionInstall: the action installs a release, csv and csv-kms, only
// when its archive is the one SHA256SUMS lists, holds both binaries, and
// both are the version asked for.
func TestActionInstall(t *testing.T) {
	s := buildSnapshot(t)
	testenv.Tool(t, "curl")
	archiveName := s.name + ".tar.gz"
	tests := []struct {
		name    string
		version string
		serve   string // the version whose files are served
		tamper  func(map[string][]byte)
		want    string
	}{
		{name: "the release", version: s.version, want: ""},
		{name: "a changed byte in the archive", version: s.version, tamper: func(f map[string][]byte) {
			b := bytes.Clone(f[archiveName])
			b[len(b)/2] ^= 1
			f[archiveName] = b
		}, want: "refusing it"},
		{name: "an archive SHA256SUMS does not list", version: s.version, tamper: func(f map[string][]byte) {
			f["SHA256SUMS"] = bytes.ReplaceAll(f["SHA256SUMS"], []byte(archiveName), []byte("x"+archiveName))
		}, want: "does not list " + archiveName + " exactly once"},
		{name: "an archive SHA256SUMS lists twice", version: s.version, tamper: func(f map[string][]byte) {
			f["SHA256SUMS"] = append(f["SHA256SUMS"], fmt.Appendf(nil, "%064x  %s\n", 0, archiveName)...)
		}, want: "exactly once"},
		{name: "no SHA256SUMS", version: s.version, tamper: func(f map[string][]byte) { delete(f, "SHA256SUMS") }, want: "cannot download"},
		{name: "a digest that is not one", version: s.version, tamper: func(f map[string][]byte) {
			f["SHA256SUMS"] = []byte(strings.Repeat("g", 64) + "  " + archiveName + "\n")
		}, want: "is not a SHA-256"},
		{name: "a line that is a command", version: s.version, tamper: func(f map[string][]byte) {
			f["SHA256SUMS"] = []byte("$(touch pwned)  " + archiveName + "\n")
		}, want: "does not list"},
		{name: "another version's archive", version: "v9.9.9", want: "csv_9.9.9_linux_amd64.tar.gz holds no csv_9.9.9_linux_amd64/csv"},
		{name: "another version's binary", version: "v9.9.8", tamper: func(f map[string][]byte) {
			// The snapshot's binary, repacked under v9.9.8's names.
			name := "csv_9.9.8_linux_amd64.tar.gz"
			f[name] = repack(t, f[name], s.name, "csv_9.9.8_linux_amd64", nil, nil)
			f["SHA256SUMS"] = fmt.Appendf(nil, "%x  %s\n", sha256.Sum256(f[name]), name)
		}, want: `the csv in csv_9.9.8_linux_amd64.tar.gz reports version "` + s.version + `", not v9.9.8`},
		{name: "an archive without csv-kms", version: s.version, tamper: func(f map[string][]byte) {
			f[archiveName] = repack(t, f[archiveName], s.name, s.name, func(name string) bool { return name != s.name+"/csv-kms" }, nil)
			f["SHA256SUMS"] = fmt.Appendf(nil, "%x  %s\n", sha256.Sum256(f[archiveName]), archiveName)
		}, want: "holds no " + s.name + "/csv-kms"},
		{name: "another version's csv-kms", version: "v9.9.7", tamper: func(f map[string][]byte) {
			// v9.9.7's csv (a script answering as it would), the snapshot's
			// csv-kms.
			name := "csv_9.9.7_linux_amd64.tar.gz"
			fake := []byte("#!/bin/sh\necho '{\"version\": \"v9.9.7\"}'\n")
			f[name] = repack(t, f[name], s.name, "csv_9.9.7_linux_amd64", nil, map[string][]byte{"csv_9.9.7_linux_amd64/csv": fake})
			f["SHA256SUMS"] = fmt.Appendf(nil, "%x  %s\n", sha256.Sum256(f[name]), name)
		}, want: `the csv-kms in csv_9.9.7_linux_amd64.tar.gz reports version "` + s.version + `", not v9.9.7`},
		{name: "a version that is not one", version: "latest", want: `version "latest": want vMAJOR.MINOR.PATCH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := "http://127.0.0.1:1/unused"
			if tt.version != "latest" {
				url = release(t, s, tt.version, tt.tamper)
			}
			bin := t.TempDir()
			code, out, outputs := runAction(t, "install", "CSV_VERSION="+tt.version, "CSV_DOWNLOAD_URL="+url, "CSV_INSTALL_DIR="+bin)
			if tt.want != "" {
				if code != 2 || !strings.Contains(out, tt.want) {
					t.Fatalf("install: exit %d, want 2 and %q:\n%s", code, tt.want, out)
				}
				for _, b := range []string{"csv", "csv-kms"} {
					if _, err := os.Stat(filepath.Join(bin, b)); err == nil {
						t.Errorf("install refused but left %s/%s", bin, b)
					}
				}
				if _, err := os.Stat(filepath.Join(testenv.RepoRoot(t), "pwned")); err == nil {
					t.Error("a SHA256SUMS line ran a command")
				}
				return
			}
			if code != 0 {
				t.Fatalf("install: exit %d:\n%s", code, out)
			}
			if outputs["path"] != filepath.Join(bin, "csv") || outputs["GITHUB_PATH"] != bin {
				t.Errorf("install outputs %v, want path %s/csv and GITHUB_PATH %s", outputs, bin, bin)
			}
			for _, b := range []string{"csv", "csv-kms"} {
				v, err := exec.Command(filepath.Join(bin, b), "version").Output()
				if err != nil || !strings.HasPrefix(string(v), "csv "+s.version+" ") {
					t.Errorf("the installed %s reports %q (%v), want %s", b, v, err, s.version)
				}
			}
			// The installed copies are the archive's, byte for byte.
			for _, b := range []string{"csv", "csv-kms"} {
				if !bytes.Equal(readFile(t, filepath.Join(bin, b)), readFile(t, filepath.Join(s.dir, "stage", s.name, b))) {
					t.Errorf("the installed %s is not the release's", b)
				}
			}
		})
	}

	t.Run("from source", func(t *testing.T) {
		// The same packages as the snapshot's build (-trimpath): a link.
		bin := t.TempDir()
		code, out, outputs := runAction(t, "install", "CSV_VERSION=source", "CSV_INSTALL_DIR="+bin)
		if code != 0 || outputs["path"] != filepath.Join(bin, "csv") {
			t.Fatalf("install from source: exit %d, outputs %v:\n%s", code, outputs, out)
		}
		for _, b := range []string{"csv", "csv-kms"} {
			if v, err := exec.Command(filepath.Join(bin, b), "version").Output(); err != nil || !strings.HasPrefix(string(v), "csv ") {
				t.Errorf("the %s built from source: %q, %v", b, v, err)
			}
		}
		// csv-kms is the build with the KMS providers: only it links
		// the cloud SDKs.
		csvDeps := strings.Join(linkedModules(t, filepath.Join(bin, "csv")), " ")
		kmsDeps := strings.Join(linkedModules(t, filepath.Join(bin, "csv-kms")), " ")
		for _, sdk := range kmsSDKs {
			if strings.Contains(" "+csvDeps, " "+sdk+"@") || !strings.Contains(" "+kmsDeps, " "+sdk+"@") {
				t.Errorf("%s: linked into csv %v, into csv-kms %v; want csv-kms only", sdk, strings.Contains(" "+csvDeps, " "+sdk+"@"), strings.Contains(" "+kmsDeps, " "+sdk+"@"))
			}
		}
	})
}

// TestActionValidate runs the action's validate and finish steps on the
// examples, as action-test.yml does on a runner.
func TestActionValidate(t *testing.T) {
	s := buildSnapshot(t)
	csvBin := filepath.Join(s.dir, "stage", s.name, "csv")
	root := testenv.RepoRoot(t)
	spaced := filepath.Join(t.TempDir(), "my build")
	if err := os.CopyFS(spaced, os.DirFS(filepath.Join(root, "examples", "build"))); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	tests := []struct {
		name         string
		env          []string
		code         string // the exit-code output
		category     string
		report       string
		reportHas    string
		wantExit     int
		wantFinish   int
		wantMessage  string
		noReportFile bool
	}{
		{name: "the example build passes", env: []string{"CSV_POLICY=examples/policy.yaml", "CSV_PATHS=examples/build"},
			code: "0", category: "csv", report: "csv-report.sarif", reportHas: `"version": "2.1.0"`},
		{name: "the untrusted build is blocked", env: []string{"CSV_POLICY=examples/policy.yaml", "CSV_PATHS=examples/untrusted"},
			code: "1", category: "csv", report: "csv-report.sarif", reportHas: "unknown.exe", wantFinish: 1},
		{name: "a shard has its own category and report", env: []string{"CSV_POLICY=examples/policy.yaml", "CSV_PATHS=examples/build", "CSV_SHARD=2/3", "CSV_CATEGORY=release"},
			code: "0", category: "release-shard-2-of-3", report: "csv-report-2-of-3.sarif", reportHas: `"version": "2.1.0"`},
		{name: "json, audit mode, a path with a space and blank lines", env: []string{"CSV_POLICY=\n examples/policy.yaml\n\n", "CSV_PATHS=" + spaced + "\nexamples/untrusted\n", "CSV_FORMAT=json", "CSV_MODE=audit", "CSV_OUTPUT=" + filepath.Join(work, "r.json")},
			code: "0", category: "csv", report: filepath.Join(work, "r.json"), reportHas: `"mode": "audit"`},
		{name: "a policy that is not there", env: []string{"CSV_POLICY=missing.yaml", "CSV_PATHS=examples/build"},
			code: "2", category: "csv", report: "", wantFinish: 2, noReportFile: true},
		{name: "a policy named like a command", env: []string{"CSV_POLICY=$(touch pwned).yaml", "CSV_PATHS=examples/build"},
			code: "2", category: "csv", report: "", wantFinish: 2, noReportFile: true},
		{name: "no policy", env: []string{"CSV_PATHS=examples/build"}, wantExit: 2, wantMessage: "the policy input is required"},
		{name: "a format csv does not write", env: []string{"CSV_POLICY=examples/policy.yaml", "CSV_FORMAT=html"}, wantExit: 2, wantMessage: `format "html"`},
		{name: "a shard that is not i/n", env: []string{"CSV_POLICY=examples/policy.yaml", "CSV_SHARD=1/2;id"}, wantExit: 2, wantMessage: `shard "1/2;id": want i/n`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []string{"csv-report.sarif", "csv-report-2-of-3.sarif"} {
				os.Remove(filepath.Join(root, f))
			}
			t.Cleanup(func() {
				for _, f := range []string{"csv-report.sarif", "csv-report-2-of-3.sarif"} {
					os.Remove(filepath.Join(root, f))
				}
			})
			code, out, outputs := runAction(t, "validate", append([]string{"CSV_BIN=" + csvBin}, tt.env...)...)
			if code != tt.wantExit || !strings.Contains(out, tt.wantMessage) {
				t.Fatalf("validate: exit %d, want %d and %q:\n%s", code, tt.wantExit, tt.wantMessage, out)
			}
			if _, err := os.Stat(filepath.Join(root, "pwned")); err == nil {
				os.Remove(filepath.Join(root, "pwned"))
				t.Fatal("an input ran a command")
			}
			if tt.wantExit != 0 {
				return
			}
			if outputs["exit-code"] != tt.code || outputs["category"] != tt.category || outputs["report"] != tt.report {
				t.Errorf("validate outputs %v, want exit-code %s, category %s, report %q\n%s", outputs, tt.code, tt.category, tt.report, out)
			}
			if !tt.noReportFile {
				p := tt.report
				if !filepath.IsAbs(p) {
					p = filepath.Join(root, p)
				}
				if data, err := os.ReadFile(p); err != nil || !strings.Contains(string(data), tt.reportHas) {
					t.Errorf("report %s: %v; want it to hold %q", p, err, tt.reportHas)
				}
			}
			fcode, fout, _ := runAction(t, "finish", "CSV_EXIT_CODE="+outputs["exit-code"])
			if fcode != tt.wantFinish {
				t.Errorf("finish with exit code %s: exit %d, want %d:\n%s", outputs["exit-code"], fcode, tt.wantFinish, fout)
			}
		})
	}
	t.Run("finish without an exit code", func(t *testing.T) {
		for _, c := range []string{"", "1;id", "-1"} {
			if code, out, _ := runAction(t, "finish", "CSV_EXIT_CODE="+c); code != 2 {
				t.Errorf("finish with exit code %q: exit %d, want 2:\n%s", c, code, out)
			}
		}
	})
}

// repack renames an archive's top directory, keeps the members keep
// accepts (all if nil; names before the renaming), and gives the members
// replace names (after it) new contents.
func repack(t *testing.T, archive []byte, from, to string, keep func(name string) bool, replace map[string][]byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if keep != nil && !keep(strings.TrimSuffix(h.Name, "/")) {
			continue
		}
		h.Name = to + strings.TrimPrefix(h.Name, from)
		data, replaced := replace[h.Name]
		if replaced {
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if replaced {
			_, err = tw.Write(data)
		} else {
			_, err = io.Copy(tw, tr)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
