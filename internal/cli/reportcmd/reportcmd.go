// Package reportcmd implements "csv report merge".
package reportcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
)

// maxReport caps a JSON report read for merging.
const maxReport = 1 << 30

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
	Files  []string
}

// NewCmdMerge returns "csv report merge".
func NewCmdMerge(f *cmdutil.Factory, runF func(context.Context, *MergeOptions) error) *cobra.Command {
	opts := &MergeOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "merge [--output FILE] REPORT.json...",
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

			Exit status: 0 the build passes; 1 a binary is blocked in enforce mode; 2 the reports
			cannot be read or combined.
		`),
		Example: "  $ csv report merge --output report.json shard-*.json",
		Args:    cmdutil.ExactArgsAtLeast(1, "REPORT.json to merge"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return RunMerge(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "write the merged report to `FILE` instead of standard output")
	return cmd
}

// RunMerge merges the reports.
func RunMerge(o *MergeOptions) error {
	var docs []*report.Document
	for _, p := range o.Files {
		data, err := cmdutil.ReadFileCapped(p, maxReport)
		if err != nil {
			return fmt.Errorf("cannot read report %s: %w", p, err)
		}
		var d report.Document
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return fmt.Errorf("report %s: not a csv JSON report: %w", p, err)
		}
		docs = append(docs, &d)
	}
	merged, err := report.Merge(docs)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(textsafe.JSONWriter(&buf))
	enc.SetIndent("", "  ")
	if err := enc.Encode(merged); err != nil {
		return err
	}
	if o.Output != "" {
		if err := cmdutil.WriteFileAtomic(o.Output, buf.Bytes()); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	} else if _, err := o.IO.Out.Write(buf.Bytes()); err != nil {
		return err
	}
	s := merged.Summary
	fmt.Fprintf(o.IO.ErrOut, "csv: %s of policy %s: %s judged: %d allowed, %d blocked; %s skipped, %d excluded\n",
		textsafe.Plural(len(merged.Shards), "shard", "shards"), textsafe.Quote(merged.Policy.Name), textsafe.Plural(s.Files, "binary", "binaries"), s.Allowed, s.Blocked, textsafe.Plural(s.Skipped, "file", "files"), s.Excluded)
	switch {
	case merged.NoTargets:
		fmt.Fprintln(o.IO.ErrOut, "result: FAILED: no binaries found (--fail-if-no-targets)")
		return cmdutil.ErrFailed
	case !merged.Passed:
		fmt.Fprintf(o.IO.ErrOut, "result: FAILED: %d of %s blocked\n", s.Blocked, textsafe.Plural(s.Files, "binary", "binaries"))
		return cmdutil.ErrFailed
	}
	fmt.Fprintln(o.IO.ErrOut, "result: PASSED")
	return nil
}
