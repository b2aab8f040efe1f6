package quickstart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/codesignval/csv/internal/testenv"
)

// A block is one command block of the README's quick start: the lines of a
// ```sh fence that a marker comment precedes,
//
//	<!-- quickstart GROUP [exit=N] [needs=TOOL,...] -->
//
// and the output the README shows for it: the fence that follows (only
// blank lines between), or none, which says that it prints nothing. In the
// output, "…" stands for any text within a line (a date, a fingerprint).
type block struct {
	line   int // of the marker
	group  string
	exit   int
	needs  []string
	script string
	output []string
}

var marker = regexp.MustCompile(`^<!-- quickstart (\S+)((?: \S+=\S+)*) -->$`)

// parse returns the README's quick-start blocks, and an error for a marker
// without its block, or a ```sh block of the Quick start section without a
// marker (a command the test would not run).
func parse(readme []byte) ([]block, error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	var blocks []block
	section := ""
	fence := func(i int) ([]string, int, error) {
		var body []string
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "```" {
				return body, j, nil
			}
			body = append(body, lines[j])
		}
		return nil, 0, fmt.Errorf("README.md:%d: the block does not end", i+1)
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") {
			section = l
		}
		if l == "```sh" && section == "## Quick start" && (i == 0 || !marker.MatchString(lines[i-1])) {
			return nil, fmt.Errorf("README.md:%d: a command block of the quick start without a <!-- quickstart GROUP --> marker: the test would not run it", i+1)
		}
		m := marker.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		b := block{line: i + 1, group: m[1]}
		for _, kv := range strings.Fields(m[2]) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "exit":
				n, err := strconv.Atoi(v)
				if err != nil {
					return nil, fmt.Errorf("README.md:%d: exit=%q is not a number", i+1, v)
				}
				b.exit = n
			case "needs":
				b.needs = strings.Split(v, ",")
			default:
				return nil, fmt.Errorf("README.md:%d: unknown marker attribute %q", i+1, k)
			}
		}
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			return nil, fmt.Errorf("README.md:%d: the marker is not followed by a ```sh block", i+1)
		}
		body, end, err := fence(i + 1)
		if err != nil {
			return nil, err
		}
		b.script = strings.Join(body, "\n") + "\n"
		i = end
		j := i + 1
		for j < len(lines) && lines[j] == "" {
			j++
		}
		if j < len(lines) && lines[j] == "```" {
			out, end, err := fence(j)
			if err != nil {
				return nil, err
			}
			b.output = out
			i = end
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, errors.New("README.md has no <!-- quickstart GROUP --> blocks")
	}
	return blocks, nil
}

// TestREADMEQuickStart runs every quick-start block of the README, in
// order, with bash in one temporary copy of the repository (its tracked
// files), and checks its exit status and that it prints exactly the output
// the README shows (standard output and error as a terminal interleaves
// them).
//
// One substitution: the blocks of group "build" (go build -o bin/csv
// ./cmd/csv) run in the checkout itself, writing the binary into the copy.
// The copy's sources are the checkout's, so the binary is the same; in the
// copy, go build would compile every package of the module anew (another
// directory: other build cache keys), minutes on CI's machine.
func TestREADMEQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds csv and runs the quick start")
	}
	root := testenv.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parse(readme)
	if err != nil {
		t.Fatal(err)
	}
	bash := testenv.Tool(t, "bash")
	work := t.TempDir()
	if err := copyRepo(root, work); err != nil {
		t.Fatal(err)
	}

	var groups []string
	byGroup := map[string][]block{}
	for _, b := range blocks {
		if _, ok := byGroup[b.group]; !ok {
			groups = append(groups, b.group)
		}
		byGroup[b.group] = append(byGroup[b.group], b)
	}
	if groups[0] != "build" {
		t.Fatalf("the first quick-start block is of group %q: the README must build csv first", groups[0])
	}
	for _, g := range groups {
		ok := t.Run(g, func(t *testing.T) {
			for _, b := range byGroup[g] {
				for _, tool := range b.needs {
					testenv.Tool(t, tool)
				}
				script, dir := b.script, work
				if g == "build" {
					dir = root
					script = strings.ReplaceAll(script, " -o bin/", " -o "+filepath.Join(work, "bin")+"/")
					if script == b.script {
						t.Fatalf("README.md:%d: the build block writes no -o bin/...: %q", b.line, b.script)
					}
				}
				run(t, bash, dir, script, b)
			}
		})
		if !ok && g == "build" {
			t.Fatal("csv was not built: the other blocks cannot run")
		}
	}
}

// run runs one block and checks its exit status and output.
func run(t *testing.T, bash, dir, script string, b block) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		// What could change csv's behaviour or its output.
		if !strings.HasPrefix(kv, "CSV_") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("README.md:%d: %v", b.line, err)
	}
	if code != b.exit {
		t.Errorf("README.md:%d: exit status %d, the README says %d:\n%s\n%s", b.line, code, b.exit, b.script, out.String())
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if out.Len() == 0 {
		got = nil
	}
	if !matches(b.output, got) {
		t.Errorf("README.md:%d: the output is not what the README shows\n%s\nREADME shows:\n%s\ncsv printed:\n%s", b.line, b.script, strings.Join(b.output, "\n"), out.String())
	}
}

// matches says whether got is want, line for line, where "…" in a line of
// want stands for one or more characters.
func matches(want, got []string) bool {
	if len(want) != len(got) {
		return false
	}
	for i, w := range want {
		parts := strings.Split(w, "…")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		if !regexp.MustCompile("^" + strings.Join(parts, ".+") + "$").MatchString(got[i]) {
			return false
		}
	}
	return true
}

// copyRepo copies the repository's tracked files (every regular file but
// .git and bin/ where git is not available) to dst.
func copyRepo(root, dst string) error {
	var files []string
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output(); err == nil && len(out) > 0 {
		for _, f := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
			files = append(files, filepath.FromSlash(f))
		}
	} else {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() && (d.Name() == ".git" || rel == "bin") {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, f := range files {
		src := filepath.Join(root, f)
		st, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, not yet in git
		}
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// TestREADMESize: the README stays a front page (issue 17: under 15 KB);
// the reference is in docs/.
func TestREADMESize(t *testing.T) {
	st, err := os.Stat(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() >= 15000 {
		t.Errorf("README.md is %d bytes: keep it under 15,000 and move the reference to docs/", st.Size())
	}
}

// TestParse: the parser finds the blocks, their exit status and output,
// and refuses what would leave a command untested.
func TestParse(t *testing.T) {
	good := "# x\n\n## Quick start\n\n<!-- quickstart build -->\n```sh\ngo build -o bin/csv ./cmd/csv\n```\n\n" +
		"<!-- quickstart ci exit=1 needs=openssl,bash -->\n```sh\nbin/csv a \\\n  b\n```\n\n```\nline 1\n…\n```\n\n## Other\n\n```sh\nfree\n```\n"
	bs, err := parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].group != "build" || bs[0].output != nil || bs[1].exit != 1 ||
		strings.Join(bs[1].needs, ",") != "openssl,bash" || bs[1].script != "bin/csv a \\\n  b\n" ||
		strings.Join(bs[1].output, "|") != "line 1|…" {
		t.Errorf("parse: %+v", bs)
	}
	for name, bad := range map[string]string{
		"unmarked":      "## Quick start\n\n```sh\nrm -rf x\n```\n",
		"no block":      "<!-- quickstart ci -->\n\n```sh\nx\n```\n",
		"open block":    "<!-- quickstart ci -->\n```sh\nx\n",
		"bad exit":      "<!-- quickstart ci exit=one -->\n```sh\nx\n```\n",
		"unknown attr":  "<!-- quickstart ci skip=1 -->\n```sh\nx\n```\n",
		"none":          "# nothing\n",
		"open output":   "<!-- quickstart ci -->\n```sh\nx\n```\n\n```\nout\n",
		"marker spaced": "## Quick start\n<!-- quickstart ci -->\n\n```sh\nx\n```\n",
	} {
		if _, err := parse([]byte(bad)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	for _, tc := range []struct {
		want, got []string
		ok        bool
	}{
		{[]string{"a … b"}, []string{"a xyz b"}, true},
		{[]string{"a … b"}, []string{"a  b"}, false},
		{[]string{"a … b"}, []string{"a x b", "c"}, false},
		{[]string{"(sha256:…)"}, []string{"(sha256:0f)"}, true},
		{[]string{"a.b"}, []string{"axb"}, false},
		{nil, nil, true},
		{nil, []string{"x"}, false},
	} {
		if matches(tc.want, tc.got) != tc.ok {
			t.Errorf("matches(%q, %q) = %v", tc.want, tc.got, !tc.ok)
		}
	}
}

// pendingDocs are pages other changes of this release add: a link to one
// of them may point nowhere until they land, and is checked once it exists.
var pendingDocs = map[string]bool{
	"docs/attest-lab.md": true, // the attestation lab (w6/lab)
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile("^#{1,6} +(.+?) *#*$")
)

// TestDocLinks: every relative link of the README and the pages under docs/
// leads to a file of the repository, and every #fragment to a heading of
// the page it names, as GitHub makes anchors of headings.
func TestDocLinks(t *testing.T) {
	root := testenv.RepoRoot(t)
	pages := []string{"README.md"}
	for _, glob := range []string{"docs/*.md", "docs/cli/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(glob)))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			pages = append(pages, filepath.ToSlash(rel))
		}
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(page string) (map[string]bool, error) {
		if a, ok := anchors[page]; ok {
			return a, nil
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
		if err != nil {
			return nil, err
		}
		anchors[page] = headingAnchors(data)
		return anchors[page], nil
	}
	checked := 0
	for _, page := range pages {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
		if err != nil {
			t.Fatal(err)
		}
		inFence := false
		for n, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "```") {
				inFence = !inFence
			}
			if inFence {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, frag, _ := strings.Cut(target, "#")
				dest := page
				if file != "" {
					dest = filepath.ToSlash(filepath.Join(filepath.Dir(page), filepath.FromSlash(file)))
				}
				checked++
				st, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest)))
				if err != nil {
					if !pendingDocs[dest] {
						t.Errorf("%s:%d: link %s: no file %s", page, n+1, target, dest)
					}
					continue
				}
				if frag == "" || st.IsDir() || !strings.HasSuffix(dest, ".md") {
					continue
				}
				a, err := anchorsOf(dest)
				if err != nil {
					t.Fatal(err)
				}
				if !a[frag] {
					t.Errorf("%s:%d: link %s: %s has no heading #%s", page, n+1, target, dest, frag)
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d links checked in %d pages", checked, len(pages))
	}
}

// headingAnchors returns the anchors GitHub gives a page's headings: the
// text lowercased, without punctuation but hyphens and underscores, spaces
// made hyphens, and -1, -2 ... after a repeated one.
func headingAnchors(page []byte) map[string]bool {
	a := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(string(page), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		m := mdHeading.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-', r == '_', unicode.IsLetter(r), unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		slug := b.String()
		if k := seen[slug]; k > 0 {
			a[fmt.Sprintf("%s-%d", slug, k)] = true
		} else {
			a[slug] = true
		}
		seen[slug]++
	}
	return a
}
