package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
)

// The committed pages, from this package's directory.
var (
	mdDir  = filepath.Join("..", "..", "..", "docs", "cli")
	manDir = filepath.Join("..", "..", "..", "docs", "man")
)

const update = "run go run ./internal/cmd/gendocs from the module root to update them"

// TestPagesCurrent regenerates every page into a temporary directory and
// fails when a committed page differs, is missing or is left over from a
// command that no longer exists.
func TestPagesCurrent(t *testing.T) {
	tmp := t.TempDir()
	md, man := filepath.Join(tmp, "cli"), filepath.Join(tmp, "man")
	if err := write(md, man); err != nil {
		t.Fatal(err)
	}
	for _, d := range [][2]string{{md, mdDir}, {man, manDir}} {
		want, got := list(t, d[0]), list(t, d[1])
		for _, name := range want {
			if !slices.Contains(got, name) {
				t.Errorf("%s is missing: %s", filepath.Join(d[1], name), update)
				continue
			}
			w, err := os.ReadFile(filepath.Join(d[0], name))
			if err != nil {
				t.Fatal(err)
			}
			g, err := os.ReadFile(filepath.Join(d[1], name))
			if err != nil {
				t.Fatal(err)
			}
			// A checkout on Windows may have made the line ends CRLF.
			g = bytes.ReplaceAll(g, []byte("\r\n"), []byte("\n"))
			if !bytes.Equal(w, g) {
				t.Errorf("%s is not what the command tree gives (first difference at line %d): %s", filepath.Join(d[1], name), firstDiff(w, g), update)
			}
		}
		for _, name := range got {
			if !slices.Contains(want, name) {
				t.Errorf("%s is of no command: %s", filepath.Join(d[1], name), update)
			}
		}
	}
}

// TestPagesDeterministic: two runs give the same bytes, and no page carries
// a date.
func TestPagesDeterministic(t *testing.T) {
	a, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d pages, then %d", len(a), len(b))
	}
	for name, page := range a {
		if !bytes.Equal(page, b[name]) {
			t.Errorf("%s differs between two runs", name)
		}
		for _, stamp := range []string{"Auto generated", "1970", "Jan 19"} {
			if bytes.Contains(page, []byte(stamp)) {
				t.Errorf("%s carries %q", name, stamp)
			}
		}
	}
	if _, ok := a["csv_validate.md"]; !ok {
		t.Errorf("no page for csv validate among %d", len(a))
	}
	if _, ok := a["csv-policy-new.1"]; !ok {
		t.Errorf("no man page for csv policy new among %d", len(a))
	}
}

// TestPagesAgreeWithHelp runs csv COMMAND --help for every page's command
// and checks that every line it prints (but the headings and the list of
// subcommands, which the pages link instead) is on the page: the
// description, the usage line, the examples and every flag.
func TestPagesAgreeWithHelp(t *testing.T) {
	pages, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, page := range pages {
		if !strings.HasSuffix(name, ".md") {
			continue
		}
		args := strings.Split(strings.TrimSuffix(name, ".md"), "_")[1:]
		var out, errOut bytes.Buffer
		io := &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
		if code := cli.Run(context.Background(), io, append(args, "--help")); code != 0 {
			t.Fatalf("csv %s --help: exit %d: %s", strings.Join(args, " "), code, errOut.String())
		}
		section := ""
		for _, line := range strings.Split(out.String(), "\n") {
			line = strings.TrimRight(line, " ")
			switch {
			case line == "":
				continue
			case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " ") && !strings.Contains(line, " "):
				// A heading: Usage:, Flags:, Examples:, Aliases:.
				section = line
				continue
			case line == "Available Commands:", line == "Global Flags:":
				section = line
				continue
			case section == "Available Commands:", strings.HasPrefix(line, "Use \"csv"):
				continue
			case section == "Usage:" && strings.HasSuffix(line, " [command]"):
				// A command of subcommands only: its page lists them.
				continue
			}
			n++
			if !bytes.Contains(page, []byte(strings.TrimSpace(line))) {
				t.Errorf("%s: csv %s --help prints %q, which the page lacks: %s", name, strings.Join(args, " "), line, update)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d lines of help checked", n)
	}
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%v: %s", err, update)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func firstDiff(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}
