package cilog

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/internal/textsafe"
)

// GitHub is what GitHub Actions gives a step: where the repository is
// checked out and the file the job summary is appended to.
type GitHub struct {
	// Workspace is $GITHUB_WORKSPACE: an annotation names a file inside
	// it by its path there (file=), and no file outside it.
	Workspace string
	// SummaryFile is $GITHUB_STEP_SUMMARY; "" writes no summary.
	SummaryFile string
}

// GitHubFlag is --github: auto (the default) writes annotations and the
// job summary when GITHUB_ACTIONS is "true", as GitHub Actions sets it;
// off never does; on always writes the annotations (and the summary where
// GITHUB_STEP_SUMMARY names a file), for runners that read GitHub's
// workflow commands without setting GITHUB_ACTIONS.
type GitHubFlag struct{ Mode string }

// Register adds --github to fl.
func (g *GitHubFlag) Register(fl *pflag.FlagSet) {
	fl.StringVar(&g.Mode, "github", "auto", "GitHub Actions error annotations and job summary for blocked files: `auto` (when GITHUB_ACTIONS=true), on or off")
}

// Check checks the flag's value; cmd names the command in the error.
func (g *GitHubFlag) Check(cmd string) error {
	switch g.Mode {
	case "auto", "on", "off":
		return nil
	}
	return fmt.Errorf("%s: --github %q: want auto, on or off", cmd, g.Mode)
}

// Resolve returns the GitHub the flag and the environment (getenv) say,
// or nil for none.
func (g *GitHubFlag) Resolve(getenv func(string) string) *GitHub {
	switch {
	case g.Mode == "off", g.Mode != "on" && getenv("GITHUB_ACTIONS") != "true":
		return nil
	}
	return &GitHub{Workspace: getenv("GITHUB_WORKSPACE"), SummaryFile: getenv("GITHUB_STEP_SUMMARY")}
}

// EscapeData escapes a workflow command's message as the runner unescapes
// it (actions/toolkit command.ts escapeData): %, CR and LF.
func EscapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// EscapeProperty escapes a workflow command's property value
// (escapeProperty): EscapeData's, and : and , that end a property.
func EscapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// annotation is one workflow command: ::level file=F,title=T::message.
// The message is escaped for the log first (textsafe: a name's control
// characters and bidirectional overrides are shown, not obeyed), then for
// the runner; file= is the path itself, escaped for the runner only, so
// that GitHub finds the file.
func annotation(level, file, title, msg string) string {
	var props []string
	if file != "" {
		props = append(props, "file="+EscapeProperty(file))
	}
	props = append(props, "title="+EscapeProperty(textsafe.Escape(title)))
	return "::" + level + " " + strings.Join(props, ",") + "::" + EscapeData(textsafe.Escape(msg))
}

// repoPath is the path of a finding's file (a member's container) relative
// to the workspace, slash-separated, or "" when it lies outside, or its
// name holds what an annotation's file= cannot carry as it is (a
// character textsafe escapes, other than CR and LF, which the runner
// unescapes).
func (g *GitHub) repoPath(p string) string {
	if g.Workspace == "" {
		return ""
	}
	file, _, _ := strings.Cut(p, container.Separator)
	if textsafe.Escape(strings.NewReplacer("\r", "", "\n", "").Replace(file)) != strings.NewReplacer("\r", "", "\n", "").Replace(file) {
		return ""
	}
	abs, err := filepath.Abs(filepath.FromSlash(file))
	if err != nil {
		return ""
	}
	ws, err := filepath.Abs(g.Workspace)
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(ws, abs)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return ""
	}
	return filepath.ToSlash(rel)
}

// annotate writes an annotation per finding, errors for the files that
// fail, warnings for those that would be blocked, MaxAnnotations of each
// at most: the last one says how many more there are. A command that
// failed with no file to name (no binaries found) gets one error saying
// so.
func (g *GitHub) annotate(w io.Writer, fs *Findings, o Outcome) {
	for _, level := range []struct {
		name  string
		audit bool
		n     int
	}{{"error", false, fs.Blocked}, {"warning", true, fs.Audit}} {
		var list []Finding
		for _, f := range fs.kept {
			if f.Audit == level.audit {
				list = append(list, f)
			}
		}
		room := MaxAnnotations
		if level.n > MaxAnnotations {
			room-- // the last one counts the rest
		}
		written := min(len(list), room)
		for _, f := range list[:written] {
			fmt.Fprintln(w, annotation(level.name, g.repoPath(f.Path), o.Command+": "+f.RuleID, f.Label()+" "+f.Path+": "+f.Reason))
		}
		if more := level.n - written; more > 0 {
			verb := "blocked"
			if level.audit {
				verb = "would be blocked"
			}
			files := "files"
			if more == 1 {
				files = "file"
			}
			fmt.Fprintln(w, annotation(level.name, "", o.Command, fmt.Sprintf("%d more %s %s (GitHub shows %d annotations a step): see the job's log or %s", more, files, verb, MaxAnnotations, o.where())))
		}
	}
	if o.Failed && fs.Blocked == 0 {
		fmt.Fprintln(w, annotation("error", "", o.Command, o.Verdict))
	}
}

// maxCell caps a summary cell, in characters.
const maxCell = 300

// md escapes s for a Markdown table cell: its control and invisible
// characters shown (textsafe), every character Markdown or HTML could
// read as markup backslash-escaped (CommonMark escapes any ASCII
// punctuation this way), | included; cut to maxCell characters.
func md(s string) string {
	s = textsafe.Escape(s)
	if utf8.RuneCountInString(s) > maxCell {
		s = string([]rune(s)[:maxCell]) + "…"
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]<>()#+-!|~&@\"'=:$^", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// summarize appends the job summary to SummaryFile: the verdict, the
// counts, a table of the first MaxRows findings, and the policies.
func (g *GitHub) summarize(fs *Findings, o Outcome) error {
	if g.SummaryFile == "" {
		return nil
	}
	var b strings.Builder
	state := "passed"
	if o.Failed {
		state = "failed"
	}
	fmt.Fprintf(&b, "### %s: %s\n\n%s\n\n", md(o.Command), state, md(o.Verdict))
	fmt.Fprintf(&b, "| binaries judged | allowed | blocked | skipped |\n| ---: | ---: | ---: | ---: |\n| %d | %d | %d | %d |\n\n",
		o.Files, o.Allowed, o.Blocked, o.Skipped)
	if fs.Len() > 0 {
		b.WriteString("| | file | rule | reason |\n| --- | --- | --- | --- |\n")
		n := min(len(fs.kept), MaxRows)
		for _, f := range fs.kept[:n] {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Label(), md(f.Path), md(f.RuleID), md(f.Reason))
		}
		if more := fs.Len() - n; more > 0 {
			fmt.Fprintf(&b, "\n%d more: see the job's log or %s\n", more, md(o.where()))
		}
		b.WriteString("\n")
	}
	for _, p := range o.Policies {
		v := ""
		if p.Version != "" {
			v = " version " + md(p.Version)
		}
		fmt.Fprintf(&b, "Policy %s%s (%s), SHA\\-256 %s\n\n", md(p.Name), v, md(p.Mode), md(p.SHA256))
	}
	f, err := os.OpenFile(g.SummaryFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
