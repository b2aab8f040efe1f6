// Package cli is the csv command tree. Main runs it and turns its outcome
// into the exit code, in this one place.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"

	"github.com/codesignval/csv/internal/cli/attest"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/cli/inspect"
	"github.com/codesignval/csv/internal/cli/policy"
	"github.com/codesignval/csv/internal/cli/reportcmd"
	"github.com/codesignval/csv/internal/cli/sign"
	"github.com/codesignval/csv/internal/cli/triage"
	"github.com/codesignval/csv/internal/cli/validate"
	"github.com/codesignval/csv/internal/cli/verifymanifest"
	"github.com/codesignval/csv/internal/cli/version"
	"github.com/codesignval/csv/internal/textsafe"
)

// NewCmdRoot returns the root command.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "csv <command> [flags]",
		Short: "Code signing validation for build pipelines",
		Long: heredoc.Doc(`
			csv checks that every binary and script of a build (PE, ELF, PowerShell, installers,
			catalogs, and those inside archives, packages and images) satisfies a code integrity
			policy (signer and hash rules, in csv's YAML format, WDAC SiPolicy XML or Linux IPE),
			fails the CI job when anything would be blocked on a host, signs builds that pass, and
			verifies hosts' measured boot with the same policies.

			Exit status: 0 nothing blocked; 1 something blocked (or another finding the command
			documents); 2 usage, policy or configuration error.
		`),
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       f.Version,
	}
	// --version has no short form: -v is --verbose wherever a command has
	// one (validate), and one letter should mean one thing throughout
	// (cobra would give the root -v for --version).
	cmd.Flags().Bool("version", false, "print csv's version")
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
		triage.NewCmdTriage(f, nil),
		verifymanifest.NewCmdVerifyManifest(f, nil),
		version.NewCmdVersion(f),
	)
	return cmd
}

// Main runs csv with the process's arguments and streams and returns the
// exit code.
//
// The first Ctrl-C or SIGTERM cancels the command's context: every wait
// csv can end (network calls, the walk of a tree, signing) ends, and the
// command cleans up and returns. The signal then gets its default action
// back, so that a second one ends csv at once; and if the command has not
// returned cmdutil.InterruptGrace after the first, csv says so and exits
// with status 2, so that a wait nothing can interrupt (a TPM that does not
// answer, a file system that hangs) does not outlive the signal.
func Main() int {
	if !checkHandedOff(os.Stderr) {
		return cmdutil.ExitError
	}
	ctx, grace := cmdutil.WithInterruptGrace(context.Background())
	ctx, stop := notifyContext(ctx, grace, os.Stderr, os.Exit)
	defer stop()
	return run(ctx, cmdutil.System(), os.Args[1:], true)
}

// notifyContext returns a context cancelled by the first SIGINT or SIGTERM
// (see Main), and the function that releases it. grace is read when the
// signal comes: nanoseconds, negative for no limit; exit ends the process.
func notifyContext(parent context.Context, grace *atomic.Int64, errOut io.Writer, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-done:
			return
		}
		// A second signal takes its default action: the process ends.
		signal.Stop(sigs)
		cancel()
		g := time.Duration(grace.Load())
		if g < 0 {
			return
		}
		t := time.NewTimer(g)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(errOut, "csv: %v: still waiting %v after the signal (on a device or file system that does not answer?): exiting\n", sig, g)
			exit(cmdutil.ExitError)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// Run runs csv with the given streams and arguments and returns the exit
// code. Errors are printed to io.ErrOut with the "csv: " prefix, once: the
// csv package's own errors already begin with it (csv: cannot validate
// path ...).
func Run(ctx context.Context, io *cmdutil.IOStreams, args []string) int {
	return run(ctx, io, args, false)
}

// run is Run; with handOff (the process's own command, from Main), a
// command whose key is a KMS reference is handed to csv-kms (kms.go).
func run(ctx context.Context, io *cmdutil.IOStreams, args []string, handOff bool) int {
	f := &cmdutil.Factory{IO: io, Version: version.String()}
	root := NewCmdRoot(f)
	root.SetArgs(args)
	if handOff {
		installHandOff(root, args, io.ErrOut, os.Exit)
	}
	err := root.ExecuteContext(ctx)
	code := cmdutil.ExitCode(err)
	switch {
	case err == nil, errors.Is(err, cmdutil.ErrFailed):
	case ctx.Err() != nil:
		textsafe.Linef(io.ErrOut, "csv: %s", strings.TrimPrefix(err.Error(), "csv: "))
	default:
		writeError(io.ErrOut, err)
		var fe *cmdutil.FlagError
		if errors.As(err, &fe) || strings.HasPrefix(err.Error(), "unknown command") {
			fmt.Fprintln(io.ErrOut, "csv: run 'csv --help' or 'csv <command> --help' for usage")
		}
	}
	return code
}

// writeError prints err's lines (errorLines), each with the "csv: " prefix,
// once: a line that already begins with it (the csv package's errors:
// "csv: cannot validate path ...") does not get a second.
func writeError(w io.Writer, err error) {
	for _, line := range errorLines(err) {
		fmt.Fprintf(w, "csv: %s\n", strings.TrimPrefix(line, "csv: "))
	}
}

// errorLines splits an error into the lines csv prints: the errors an
// errors.Join holds one per line, the problems of a policy file
// (cipolicy.LoadError, however wrapped) one per line, and any other error
// on one line. Each line is escaped whole (internal/textsafe): errors quote
// file names, subjects and policy text, and a newline that an untrusted
// string brought into a message (a file in the tree named
// "x\nsigned 3 binaries ...", a path a journal names) is written \x0a
// instead of starting a line of its own, as splitting every message at
// its newlines did.
func errorLines(err error) []string {
	msg := err.Error()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		// Not every Unwrap() []error is an errors.Join: some hold nil
		// entries, or print otherwise.
		errs := slices.DeleteFunc(slices.Clone(j.Unwrap()), func(e error) bool { return e == nil })
		parts := make([]string, len(errs))
		for i, e := range errs {
			parts[i] = e.Error()
		}
		if len(errs) > 0 && strings.Join(parts, "\n") == msg {
			var lines []string
			for _, e := range errs {
				lines = append(lines, errorLines(e)...)
			}
			return lines
		}
	}
	var le *cipolicy.LoadError
	if errors.As(err, &le) && len(le.Problems) > 1 {
		if prefix, ok := strings.CutSuffix(msg, le.Error()); ok {
			lines := make([]string, len(le.Problems))
			for i, p := range le.Problems {
				l := le.Source
				if p.Line > 0 {
					l += fmt.Sprintf(":%d", p.Line)
				}
				lines[i] = l + ": " + p.Message
			}
			lines[0] = prefix + lines[0]
			for i := range lines {
				lines[i] = textsafe.Escape(lines[i])
			}
			return lines
		}
	}
	return []string{textsafe.Escape(msg)}
}
