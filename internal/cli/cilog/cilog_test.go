package cilog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// unescape undoes the runner's escapes (actions/runner ActionCommand:
// %25 last, so that %253A reads back as %3A).
func unescape(s string, property bool) string {
	pairs := []string{"%0D", "\r", "%0A", "\n"}
	if property {
		pairs = append(pairs, "%3A", ":", "%2C", ",")
	}
	for i := 0; i < len(pairs); i += 2 {
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return strings.ReplaceAll(s, "%25", "%")
}

// parse splits a workflow command line as the runner does: the command
// name up to a space or "::", properties split at "," and "=", the data
// after the first "::" that follows them.
func parse(t *testing.T, line string) (cmd string, props map[string]string, data string) {
	t.Helper()
	if !strings.HasPrefix(line, "::") {
		t.Fatalf("not a command: %q", line)
	}
	rest := line[2:]
	end := strings.Index(rest, "::")
	if end < 0 {
		t.Fatalf("no end of the command: %q", line)
	}
	head, data := rest[:end], rest[end+2:]
	cmd, propText, _ := strings.Cut(head, " ")
	props = map[string]string{}
	for _, kv := range strings.Split(propText, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("property %q of %q", kv, line)
		}
		props[k] = unescape(v, true)
	}
	return cmd, props, unescape(data, false)
}

func checkAnnotation(t *testing.T, file, title, msg string) {
	line := annotation("error", file, title, msg)
	if strings.ContainsAny(line, "\r\n") {
		t.Fatalf("the command spans lines: %q", line)
	}
	cmd, props, data := parse(t, line)
	if cmd != "error" {
		t.Fatalf("command %q of %q", cmd, line)
	}
	want := 1
	if file != "" {
		want = 2
		if props["file"] != file {
			t.Errorf("file= reads back as %q, want %q (%q)", props["file"], file, line)
		}
	}
	if len(props) != want || props["title"] == "" && title != "" {
		t.Errorf("properties %q of %q", props, line)
	}
	// The message and title read back as the log shows them: nothing a
	// terminal or a runner acts on.
	for _, s := range []string{data, props["title"]} {
		if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) {
			t.Errorf("%q reads back with a control character: %q", line, s)
		}
	}
}

func TestAnnotationEscapes(t *testing.T) {
	for _, tc := range []struct{ file, title, msg string }{
		{"build/a.exe", "csv validate: CodeSign.NoMatchingPolicy", "BLOCKED build/a.exe: no rule allows it"},
		{"build/50%\n::error::x:a,b.exe", "t,i:t=le", "100%25 done\r\n::warning::forged"},
		{"%3A%2C%25", "%0A", "%0A"},
		{"", "", ""},
	} {
		checkAnnotation(t, tc.file, tc.title, tc.msg)
	}
	// The documented escapes, exactly.
	if got := annotation("error", "a%b\r\n:,", "x", "m%\r\n:,"); got != "::error file=a%25b%0D%0A%3A%2C,title=x::m%25\\x0d\\x0a:," {
		t.Errorf("annotation: %q", got)
	}
}

func FuzzAnnotation(f *testing.F) {
	f.Add("build/app.exe", "csv validate: CSV.Denied", "BLOCKED build/app.exe: denied by rule \"x\"")
	f.Add("build/50%\n::error::x:a,b.exe", "t,i:t=le", "100%25 done\r\n::warning::forged")
	f.Add("a\u202eb", "\x1b]0;owned\x07", "##[add-mask]x ##vso[task.complete]")
	f.Add("%", "%%", "%%%0A")
	f.Fuzz(func(t *testing.T, file, title, msg string) {
		checkAnnotation(t, file, title, msg)
	})
}

// FuzzMarkdownCell: a cell is one line, shows no control character, and
// holds no character Markdown reads as markup unescaped.
func FuzzMarkdownCell(f *testing.F) {
	f.Add("build/a.exe")
	f.Add("x | y\n| forged | row |")
	f.Add("<img src=x onerror=alert(1)> [link](http://x) **b** `c` @team :smile: $x$")
	f.Add(strings.Repeat("é", 400))
	f.Fuzz(func(t *testing.T, s string) {
		cell := md(s)
		if strings.ContainsFunc(cell, func(r rune) bool { return !unicode.IsGraphic(r) && r != ' ' }) {
			t.Fatalf("md(%q) = %q holds a control character", s, cell)
		}
		escaped := false
		for _, r := range cell {
			if escaped {
				escaped = false
				continue
			}
			if r == '\\' {
				escaped = true
				continue
			}
			if strings.ContainsRune("`*_[]<>|&@$:", r) {
				t.Fatalf("md(%q) = %q: %q unescaped", s, cell, r)
			}
		}
		if escaped {
			t.Fatalf("md(%q) = %q ends with a lone backslash", s, cell)
		}
	})
}

func TestDocPath(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(dir)
	os.MkdirAll("build/x", 0o755)
	os.WriteFile("app.exe", nil, 0o644)
	for _, tc := range []struct{ root, rel, want string }{
		{"build", "a/b.exe", "build/a/b.exe"},
		{"build", "a.zip!/lib/x.dll", "build/a.zip!/lib/x.dll"},
		{"app.exe", "app.exe", "app.exe"},                                 // a file given as the root
		{"dist/app.zip", "app.zip!/lib/x.dll", "dist/app.zip!/lib/x.dll"}, // one not here: taken for a file
		{"build/x", "x", "build/x/x"},                                     // a directory holding its namesake
	} {
		if got := docPath(tc.root, tc.rel); got != tc.want {
			t.Errorf("docPath(%q, %q) = %q, want %q", tc.root, tc.rel, got, tc.want)
		}
	}
}

func TestRepoPath(t *testing.T) {
	ws := t.TempDir()
	g := &GitHub{Workspace: ws}
	for _, tc := range []struct{ p, want string }{
		{filepath.ToSlash(filepath.Join(ws, "build/a.exe")), "build/a.exe"},
		{filepath.ToSlash(filepath.Join(ws, "build/a.zip")) + "!/lib/x.dll", "build/a.zip"},
		{filepath.ToSlash(filepath.Join(ws, "build/a\nb.exe")), "build/a\nb.exe"},
		{filepath.ToSlash(filepath.Join(ws, "build/a\u202eb.exe")), ""}, // cannot be carried as it is
		{filepath.ToSlash(filepath.Dir(ws)) + "/other/a.exe", ""},
		{filepath.ToSlash(ws), ""},
	} {
		if got := g.repoPath(tc.p); got != tc.want {
			t.Errorf("repoPath(%q) = %q, want %q", tc.p, got, tc.want)
		}
	}
	if got := (&GitHub{}).repoPath("build/a.exe"); got != "" {
		t.Errorf("no workspace: %q", got)
	}
}
