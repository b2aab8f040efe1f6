package scripts_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/internal/cli/version"
	"github.com/codesignval/csv/internal/testenv"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

func parseDockerfile(t *testing.T, name string) [][]instruction {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]instruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before the first FROM", name, in.line, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// TestDockerfile lints the image definition for what matters here, offline:
// static binaries (CGO_ENABLED=0, -trimpath, the version stamped into
// variables that exist) of csv and of csv-kms, installed beside csv (csv
// runs it from its own directory for a KMS key), on distroless/static or
// scratch, run as a non-root user with no shell, by an exec-form entry
// point.
func TestDockerfile(t *testing.T) {
	name := filepath.Join(testenv.RepoRoot(t), "Dockerfile")
	stages := parseDockerfile(t, name)
	if len(stages) < 2 {
		t.Fatalf("%s has %d stages: want a build stage and a runtime stage", name, len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	// Images are named with a tag (or digest), never latest or bare.
	for _, st := range stages {
		from := strings.Fields(st[0].args)
		image := from[0]
		if strings.HasPrefix(image, "--platform") {
			image = from[1]
		}
		if !strings.Contains(image, ":") || strings.HasSuffix(image, ":latest") {
			t.Errorf("line %d: FROM %s: pin a tag or digest", st[0].line, image)
		}
	}
	base := strings.Fields(final[0].args)[0]
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("the runtime stage is FROM %s: want gcr.io/distroless/static or scratch (no shell, no package manager)", base)
	}
	var buildCmd string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildCmd = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/csv", "./cmd/csv-kms"} {
		if !slices.Contains(strings.Fields(buildCmd), want) && !slices.ContainsFunc(strings.Fields(buildCmd), func(f string) bool { return strings.HasPrefix(f, want+"=") }) {
			t.Errorf("the build stage's go build lacks %s: %q", want, buildCmd)
		}
	}
	// The -X flags set variables that exist (a misspelt one is ignored by
	// the linker, silently).
	_ = []*string{&version.Version, &version.Commit, &version.Date}
	for _, v := range []string{"Version", "Commit", "Date"} {
		if !strings.Contains(buildCmd, "-X github.com/codesignval/csv/internal/cli/version."+v+"=") {
			t.Errorf("the build stage does not set version.%s", v)
		}
	}
	user, entry := "", ""
	installed := map[string]bool{} // the runtime stage's files COPY writes
	for _, in := range final[1:] {
		switch in.cmd {
		case "RUN", "ADD":
			t.Errorf("line %d: %s in the runtime stage (it has no shell; COPY --from the build stage)", in.line, in.cmd)
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "COPY":
			var paths []string
			for _, f := range strings.Fields(in.args) {
				if !strings.HasPrefix(f, "--") {
					paths = append(paths, f)
				}
			}
			if len(paths) < 2 {
				continue
			}
			srcs, dest := paths[:len(paths)-1], paths[len(paths)-1]
			for _, src := range srcs {
				if strings.HasSuffix(dest, "/") {
					installed[dest+path.Base(src)] = true
				} else if len(srcs) == 1 {
					installed[dest] = true
				}
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("the runtime stage runs as %q: want a non-root USER", user)
	}
	var argv []string
	if err := json.Unmarshal([]byte(entry), &argv); err != nil || len(argv) == 0 || !strings.HasSuffix(argv[0], "/csv") {
		t.Errorf("ENTRYPOINT %s: want the exec form [\"/usr/local/bin/csv\"] (no shell to run the other)", entry)
	} else {
		for _, bin := range []string{argv[0], path.Join(path.Dir(argv[0]), "csv-kms")} {
			if !installed[bin] {
				t.Errorf("the runtime stage does not COPY %s (csv runs the csv-kms in its own directory); it copies %v", bin, installed)
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), ".dockerignore")); err != nil || !strings.Contains(string(data), ".git") {
		t.Errorf(".dockerignore: %v; want .git left out of the build context", err)
	}
}

var pinned = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)

// TestWorkflows lints the workflows and the action: every action used is
// pinned to a commit, every workflow and job that can write says so, the
// action is tested with uses: ./ on the examples, and each SARIF upload
// has a category.
func TestWorkflows(t *testing.T) {
	root := testenv.RepoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows: %v", err)
	}
	files = append(files, filepath.Join(root, "action.yml"))
	usesLocal := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		rel, _ := filepath.Rel(root, f)
		var steps []map[string]any
		if runs, ok := doc["runs"].(map[string]any); ok {
			steps = stepsOf(runs["steps"])
		} else {
			if _, ok := doc["permissions"]; !ok {
				t.Errorf("%s: no top-level permissions (the default token can write)", rel)
			}
			jobs, _ := doc["jobs"].(map[string]any)
			for _, j := range jobs {
				job, _ := j.(map[string]any)
				steps = append(steps, stepsOf(job["steps"])...)
			}
		}
		for _, st := range steps {
			uses, _ := st["uses"].(string)
			switch {
			case uses == "":
			case strings.HasPrefix(uses, "./"):
				usesLocal[rel] = true
			case !pinned.MatchString(uses):
				t.Errorf("%s: uses %s: pin actions to a full commit SHA", rel, uses)
			}
			if strings.Contains(uses, "codeql-action/upload-sarif") {
				with, _ := st["with"].(map[string]any)
				if c, _ := with["category"].(string); c == "" {
					t.Errorf("%s: a SARIF upload without a category (shards replace each other's results)", rel)
				}
			}
			if run, _ := st["run"].(string); strings.Contains(run, "${{ inputs.") || strings.Contains(run, "${{ github.event") {
				t.Errorf("%s: a run script interpolates %q: pass inputs in env", rel, run)
			}
			if with, ok := st["with"].(map[string]any); ok && strings.HasPrefix(uses, "actions/checkout@") {
				if with["persist-credentials"] != false {
					t.Errorf("%s: actions/checkout without persist-credentials: false", rel)
				}
			}
		}
	}
	if !usesLocal[filepath.Join(".github", "workflows", "action-test.yml")] {
		t.Error("action-test.yml does not use the action (uses: ./)")
	}
	data, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "action-test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"examples/build", "examples/untrusted", "security-events: write"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("action-test.yml lacks %q", want)
		}
	}
	var action struct {
		Inputs map[string]any `yaml:"inputs"`
	}
	if err := yaml.Unmarshal(mustRead(t, filepath.Join(root, "action.yml")), &action); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"version", "policy", "paths", "mode", "format", "shard", "category"} {
		if _, ok := action.Inputs[in]; !ok {
			t.Errorf("action.yml has no input %q", in)
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range action.Inputs {
			if !yield(k) {
				return
			}
		}
	})
	t.Logf("action inputs: %v", keys)
}

func stepsOf(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, s := range list {
		if m, ok := s.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
