// Package reportcmd implements "csv report merge".
package reportcmd

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/cli/cilog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/internal/textsafe"
)

// openReport opens the report at p, a regular file (it is read twice;
// a named pipe is refused, as every file csv reads), and returns its size.
func openReport(p string) (*os.File, int64, error) {
	f, st, err := safefile.Open(p, safefile.Options{})
	if err != nil {
		return nil, 0, errors.Unwrap(err) // the path is named by the caller
	}
	return f, st.Size(), nil
}

// NewCmdReport returns the report command group.
func NewCmdReport(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "report <command>", Short: "Work with validation reports"}
	cmd.AddCommand(NewCmdMerge(f, nil))
	return cmd
}

// MergeOptions are the flags and arguments of csv report merge.
type MergeOptions struct {
	IO     *cmdutil.IOStreams
	Output string
	GitHub cilog.GitHubFlag
	Files  []string
}

// NewCmdMerge returns "csv report merge".
func NewCmdMerge(f *cmdutil.Factory, runF func(context.Context, *MergeOptions) error) *cobra.Command {
	opts := &MergeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "merge [--output FILE] [flags] REPORT.json...",
		Short: "Combine the JSON reports of the shards of one validation",
		Long: heredoc.Doc(`
			Combine the JSON reports of csv validate --shard i/n runs (one per CI job) into the JSON
			report of the whole build, and print its summary and verdict on standard error. The
			verdict and summary are recomputed from the results.

			The shards must be of one build, run alike: reports of another csv version, other
			policies, mode, --mode, scenario, roots (as the build sees them: build/, ./build and
			$PWD/build are one root), --include, --exclude, --follow-symlinks, --certs or
			--fail-if-no-targets are refused, and so is a set of shards with an index out of range,
			given twice or missing: a shard that never ran must not look like a pass.

			Each blocked file of the merged report is named on standard error with its reason and
			rule id, as csv validate names them, and under GitHub Actions annotated, with a job
			summary (--github).

			Exit status: 0 the build passes; 1 a binary is blocked in enforce mode, or no binaries
			were found with --fail-if-no-targets; 2 the reports cannot be read or combined.
		`),
		Example: "  $ csv report merge --output report.json shard-*.json",
		Args:    cmdutil.ExactArgsAtLeast(1, "REPORT.json to merge"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if err := opts.GitHub.Check("report merge"); err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return RunMerge(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "write the merged report to `FILE` instead of standard output")
	opts.GitHub.Register(cmd.Flags())
	return cmd
}

// RunMerge merges the reports, streaming: each is read twice, a file at a
// time (report.OpenShard, report.MergeTo).
func RunMerge(o *MergeOptions) (err error) {
	var shards []*report.ShardReport
	for _, p := range o.Files {
		f, size, err := openReport(p)
		if err != nil {
			return fmt.Errorf("cannot read report %s: %w", p, err)
		}
		defer f.Close()
		sh, err := report.OpenShard(p, f, size)
		if err != nil {
			return err
		}
		shards = append(shards, sh)
	}
	// The failures, named as csv validate names them (the report is
	// JSON: it does not list them for a reader of the log).
	var fs cilog.Findings
	each := func(r *report.ResultDoc) {
		if f, ok := cilog.OfDoc(r); ok {
			fs.Add(f)
		}
	}
	var merged *report.Document
	if o.Output != "" {
		out, err := cmdutil.CreateAtomic(o.Output)
		if err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
		// MergeTo writes JSON made inert (textsafe.InertJSON).
		w := bufio.NewWriterSize(out, 1<<16)
		if merged, err = report.MergeTo(w, shards, each); err != nil {
			out.Abort()
			return err
		}
		if err := errors.Join(w.Flush(), out.Commit()); err != nil {
			out.Abort()
			return fmt.Errorf("writing the report: %w", err)
		}
	} else {
		// Nothing is written unless the shards merge: MergeTo writes
		// only once it has read them all.
		w := bufio.NewWriterSize(o.IO.Out, 1<<16)
		if merged, err = report.MergeTo(w, shards, each); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	s := merged.Summary
	suppressed := ""
	if s.Suppressed > 0 {
		suppressed = fmt.Sprintf(" (%d suppressed)", s.Suppressed)
	}
	fmt.Fprintf(o.IO.ErrOut, "csv: %s of policy %s: %s judged: %d allowed, %d blocked%s; %s skipped, %d excluded\n",
		textsafe.Plural(len(merged.Shards), "shard", "shards"), textsafe.Quote(merged.Policy.Name), textsafe.Plural(s.Files, "binary", "binaries"), s.Allowed, s.Blocked, suppressed, textsafe.Plural(s.Skipped, "file", "files"), s.Excluded)
	expired := 0
	for i := range merged.Suppressions {
		switch d := &merged.Suppressions[i]; d.Status {
		case report.StatusExpired:
			expired++
			textsafe.Linef(o.IO.ErrOut, "csv: error: %s expired on %s", d, d.Expires)
		case report.StatusUnused:
			textsafe.Linef(o.IO.ErrOut, "csv: warning: %s matched no finding in any shard", d)
		}
	}
	var verdict string
	switch {
	case merged.NoTargets:
		verdict = "result: FAILED: no binaries found (--fail-if-no-targets)"
	case !merged.Passed && s.Blocked > s.Suppressed:
		verdict = fmt.Sprintf("result: FAILED: %d of %s blocked", s.Blocked-s.Suppressed, textsafe.Plural(s.Files, "binary", "binaries"))
	case !merged.Passed:
		verdict = fmt.Sprintf("result: FAILED: %d suppressions expired", expired)
	case s.Blocked > s.Suppressed:
		verdict = fmt.Sprintf("result: PASSED in audit mode: %d of %s would be blocked under enforcement", s.Blocked-s.Suppressed, textsafe.Plural(s.Files, "binary", "binaries"))
	case s.Suppressed > 0:
		verdict = fmt.Sprintf("result: PASSED with suppressions: %d of %s blocked, every one suppressed", s.Suppressed, textsafe.Plural(s.Files, "binary", "binaries"))
	default:
		verdict = "result: PASSED"
	}
	var policies []cilog.Policy
	for _, p := range merged.Policies {
		policies = append(policies, cilog.Policy{Name: cmp.Or(p.ID, p.Name), Version: p.Version, Mode: string(p.Mode), SHA256: p.SHA256})
	}
	w := cilog.Writer{ErrOut: o.IO.ErrOut, Lines: true, GitHub: o.GitHub.Resolve(os.Getenv)}
	failed := merged.NoTargets || !merged.Passed
	err = w.Write(&fs, cilog.Outcome{Command: "csv report merge", Failed: failed, Verdict: verdict,
		Files: s.Files, Allowed: s.Allowed, Blocked: s.Blocked, Skipped: s.Skipped, Policies: policies, Report: o.Output})
	fmt.Fprintln(o.IO.ErrOut, verdict)
	if err != nil {
		textsafe.Linef(o.IO.ErrOut, "csv: warning: %v", err)
	}
	if failed {
		return cmdutil.ErrFailed
	}
	return nil
}
