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
			report of the whole build, and print its summary and verdict on standard error.
			Reports of different policies, modes or scenarios are refused, and so is an incomplete
			set of shards: a missing shard must not look like a pass.

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
	enc := json.NewEncoder(&buf)
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
	fmt.Fprintf(o.IO.ErrOut, "csv: %d shards of policy %s: %d binaries judged: %d allowed, %d blocked; %d files skipped, %d excluded\n",
		len(merged.Shards), textsafe.Quote(merged.Policy.Name), s.Files, s.Allowed, s.Blocked, s.Skipped, s.Excluded)
	if !merged.Passed {
		fmt.Fprintln(o.IO.ErrOut, "result: FAILED")
		return cmdutil.ErrFailed
	}
	fmt.Fprintln(o.IO.ErrOut, "result: PASSED")
	return nil
}
