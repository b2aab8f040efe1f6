// Package cli is the csv command tree. Main runs it and turns its outcome
// into the exit code, in this one place.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/internal/cli/attest"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/cli/inspect"
	"github.com/codesignval/csv/internal/cli/policy"
	"github.com/codesignval/csv/internal/cli/reportcmd"
	"github.com/codesignval/csv/internal/cli/sign"
	"github.com/codesignval/csv/internal/cli/validate"
	"github.com/codesignval/csv/internal/cli/verifymanifest"
	"github.com/codesignval/csv/internal/cli/version"
)

// NewCmdRoot returns the root command.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "csv <command> [flags]",
		Short: "Code signing validation for build pipelines",
		Long: heredoc.Doc(`
			csv checks that every PE and ELF binary of a build satisfies a code integrity policy
			(signer and hash rules, in csv's YAML format or WDAC SiPolicy XML), fails the CI job
			when anything would be blocked on a host, and signs builds that pass.

			Exit status: 0 nothing blocked; 1 something blocked (or another finding the command
			documents); 2 usage, policy or configuration error.
		`),
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       f.Version,
	}
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &cmdutil.FlagError{Err: err}
	})
	cmd.AddCommand(
		validate.NewCmdValidate(f, nil),
		attest.NewCmdAttest(f),
		inspect.NewCmdInspect(f, nil),
		policy.NewCmdPolicy(f),
		reportcmd.NewCmdReport(f),
		sign.NewCmdSign(f, nil),
		verifymanifest.NewCmdVerifyManifest(f, nil),
		version.NewCmdVersion(f),
	)
	return cmd
}

// Main runs csv with the process's arguments and streams and returns the
// exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cmdutil.System(), os.Args[1:])
}

// Run runs csv with the given streams and arguments and returns the exit
// code. Errors are printed to io.ErrOut with the "csv: " prefix.
func Run(ctx context.Context, io *cmdutil.IOStreams, args []string) int {
	f := &cmdutil.Factory{IO: io, Version: version.String()}
	root := NewCmdRoot(f)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := cmdutil.ExitCode(err)
	switch {
	case err == nil, errors.Is(err, cmdutil.ErrFailed):
	case ctx.Err() != nil:
		fmt.Fprintf(io.ErrOut, "csv: %v\n", err)
	default:
		msg := err.Error()
		// Several errors (every problem of a policy file) print one per line.
		for _, line := range strings.Split(msg, "\n") {
			fmt.Fprintf(io.ErrOut, "csv: %s\n", line)
		}
		var fe *cmdutil.FlagError
		if errors.As(err, &fe) || strings.HasPrefix(msg, "unknown command") {
			fmt.Fprintln(io.ErrOut, "csv: run 'csv --help' or 'csv <command> --help' for usage")
		}
	}
	return code
}
