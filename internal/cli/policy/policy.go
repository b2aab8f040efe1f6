// Package policy implements "csv policy new", "csv policy lint" and "csv
// policy diff".
package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// NewCmdPolicy returns the policy command group.
func NewCmdPolicy(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy <command>",
		Short: "Write and check code integrity policies",
	}
	cmd.AddCommand(NewCmdNew(f, nil), NewCmdLint(f, nil), NewCmdDiff(f, nil))
	return cmd
}

// NewOptions are the flags and arguments of csv policy new.
type NewOptions struct {
	IO       *cmdutil.IOStreams
	Level    string
	Fallback []string
	Certs    []string
	Name     string
	ID       string
	Version  string
	Mode     string
	Output   string
	Jobs     int
	Include  []string
	Exclude  []string
	Follow   bool
	Paths    []string
	// Containers are the caps on containers whose members get rules.
	Containers cmdutil.ContainerFlags
	// Format is the policy's format: yaml, or ipe (a Linux IPE policy).
	Format string
}

// NewCmdNew returns "csv policy new".
func NewCmdNew(f *cmdutil.Factory, runF func(context.Context, *NewOptions) error) *cobra.Command {
	opts := &NewOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "new --level hash|leaf|pca|root|publisher [--fallback LEVEL]... [flags] PATH...",
		Short: "Write a policy that allows exactly the binaries of a known-good build",
		Long: heredoc.Doc(`
			Scan PATH like validate does and write a policy (YAML, to standard output or --output) that
			allows exactly the binaries and scripts found, like Windows' New-CIPolicy -ScanPath.

			--level says what rules trust, as New-CIPolicy's -Level:
			  hash       rules per distinct binary: for PE files the four New-CIPolicy writes
			             (Authenticode SHA256 and SHA1, which still match after the file is
			             signed, and the first-page SHA256 and SHA1), the SHA256 of ELF files
			  leaf       the signing certificate of each verified signature
			  pca        the highest certificate below the root of the chain (the top of the
			             chain if it does not reach a root): a signer rule, as WDAC's PcaCertificate
			  root       the root certificate of the chain (supply roots with --certs)
			  publisher  the PCA certificate and the signing certificate's common name
			Binaries the level cannot cover (unsigned, signatures that do not verify) get a rule of
			the first --fallback level that can, like -Fallback. Each rule is commented with the files
			it came from.

			Exit status: 0 the policy covers every binary found; 1 the policy was written but some
			binaries could not be covered (malformed, unreadable, or no level applies); 2 usage error.
		`),
		Example: "  $ csv policy new --level hash --name my-app --version 1.0.0 --output policy.yaml out/",
		Args:    cmdutil.ExactArgsAtLeast(1, "PATH to scan"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			for _, l := range append([]string{opts.Level}, opts.Fallback...) {
				if !slices.Contains(csv.Levels, csv.Level(l)) {
					return cmdutil.FlagErrorf("policy new: level %q: want hash, leaf, pca, root or publisher", l)
				}
			}
			switch cipolicy.Mode(opts.Mode) {
			case cipolicy.Enforce, cipolicy.Audit:
			default:
				return cmdutil.FlagErrorf("policy new: --mode %q: want enforce or audit", opts.Mode)
			}
			switch opts.Format {
			case "yaml":
			case "ipe":
				if opts.Level != string(csv.LevelHash) || len(opts.Fallback) > 0 {
					return cmdutil.FlagErrorf("policy new: --format ipe takes --level hash and no --fallback: IPE allows files by fs-verity digest and images by dm-verity root hash")
				}
				if opts.Mode != string(cipolicy.Enforce) {
					return cmdutil.FlagErrorf("policy new: --format ipe: an IPE policy has no audit mode (the host's ipe.enforce says)")
				}
			default:
				return cmdutil.FlagErrorf("policy new: --format %q: want yaml or ipe", opts.Format)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return RunNew(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Level, "level", "", "`LEVEL` of what rules trust: hash, leaf, pca, root or publisher")
	fl.StringSliceVar(&opts.Fallback, "fallback", nil, "`LEVEL`s for binaries --level cannot cover, in order (comma-separated or repeated)")
	fl.StringArrayVar(&opts.Certs, "certs", nil, "certificates `FILE` (PEM or DER) completing chains; repeatable")
	fl.StringVar(&opts.Name, "name", "generated", "policy `NAME`")
	fl.StringVar(&opts.ID, "id", "", "policy `ID` (default: the name)")
	fl.StringVar(&opts.Version, "version", "1.0.0", "policy `VERSION`")
	fl.StringVar(&opts.Mode, "mode", "enforce", "policy `MODE`: enforce or audit")
	fl.StringVarP(&opts.Output, "output", "o", "", "write the policy to `FILE` instead of standard output")
	fl.StringVarP(&opts.Format, "format", "f", "yaml", "policy `FORMAT`: yaml, or ipe (a Linux IPE policy: an fs-verity digest rule per file, a dm-verity root hash rule per image)")
	fl.IntVarP(&opts.Jobs, "jobs", "j", 0, "inspect `N` files at once (default: the number of CPUs)")
	opts.Containers.Register(fl)
	fl.StringArrayVar(&opts.Include, "include", nil, "cover only files matching this path `GLOB`; repeatable")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "skip files and directories matching this path `GLOB`; repeatable")
	fl.BoolVar(&opts.Follow, "follow-symlinks", false, "follow symbolic links (never out of the given paths)")
	_ = cmd.MarkFlagRequired("level")
	return cmd
}

// RunNew scans and writes the policy.
func RunNew(ctx context.Context, o *NewOptions) error {
	certs, err := signing.LoadCertificateFiles(o.Certs)
	if err != nil {
		return err
	}
	var fallback []csv.Level
	for _, l := range o.Fallback {
		fallback = append(fallback, csv.Level(l))
	}
	g, err := csv.GeneratePolicy(ctx, csv.GenerateOptions{
		Options: csv.Options{Jobs: o.Jobs, Include: o.Include, Exclude: o.Exclude, FollowSymlinks: o.Follow, ContainerLimits: o.Containers.Limits()},
		Level:   csv.Level(o.Level), Fallback: fallback, Name: o.Name, ID: o.ID, Version: o.Version,
		Mode: cipolicy.Mode(o.Mode), Certificates: certs, IPE: o.Format == "ipe",
	}, o.Paths...)
	if err != nil {
		return err
	}
	lv := o.Level
	if len(o.Fallback) > 0 {
		lv += " --fallback " + strings.Join(o.Fallback, ",")
	}
	if o.Format == "ipe" {
		lv = "hash --format ipe"
	}
	header := fmt.Sprintf("# Generated by csv policy new --level %s from %s.\n", lv, textsafe.Plural(g.Files, "binary", "binaries"))
	// The policy is written as it is encoded, a rule at a time (a policy
	// of a million files is not held twice over as text).
	write := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if _, err := bw.WriteString(header); err != nil {
			return err
		}
		if o.Format == "ipe" {
			data, err := cipolicy.MarshalIPE(g.Policy)
			if err != nil {
				return err
			}
			if _, err := bw.Write(data); err != nil {
				return err
			}
		} else if err := cipolicy.WriteYAML(bw, g.Policy); err != nil {
			return err
		}
		return bw.Flush()
	}
	if o.Output != "" {
		f, err := cmdutil.CreateAtomic(o.Output)
		if err != nil {
			return fmt.Errorf("writing the policy: %w", err)
		}
		defer f.Abort()
		if err := write(f); err != nil {
			return fmt.Errorf("writing the policy: %w", err)
		}
		if err := f.Commit(); err != nil {
			return fmt.Errorf("writing the policy: %w", err)
		}
		textsafe.Linef(o.IO.ErrOut, "csv: wrote %s: %s for %s", o.Output, textsafe.Plural(len(g.Policy.Rules), "rule", "rules"), textsafe.Plural(g.Files, "binary", "binaries"))
	} else if err := write(o.IO.Out); err != nil {
		return err
	}
	for i := range g.Problems {
		r := &g.Problems[i]
		// The path and the reason (which may quote a subject) come from the
		// tree: escaped, so a file name cannot forge a line or a CI command.
		textsafe.Linef(o.IO.ErrOut, "csv: warning: %s: no rule written: %s", r.DisplayPath(), csv.Message(r.Err))
	}
	if len(g.Problems) > 0 {
		fmt.Fprintf(o.IO.ErrOut, "csv: %s %s not covered by the policy and will be blocked\n", textsafe.Plural(len(g.Problems), "binary", "binaries"), map[bool]string{true: "is", false: "are"}[len(g.Problems) == 1])
		return cmdutil.ErrFailed
	}
	return nil
}

// LintOptions are the flags and arguments of csv policy lint.
type LintOptions struct {
	IO     *cmdutil.IOStreams
	Strict bool
	Format string
	Files  []string
	// SuppressionFiles are --suppressions, linted beside the policies.
	SuppressionFiles []string
	// Now is the time expiry dates are judged at (default time.Now).
	Now func() time.Time
}

// NewCmdLint returns "csv policy lint".
func NewCmdLint(f *cmdutil.Factory, runF func(*LintOptions) error) *cobra.Command {
	opts := &LintOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "lint [--strict] [--suppressions FILE]... [flags] FILE...",
		Short: "Report errors and likely mistakes in policies",
		Long: heredoc.Doc(`
			Load each policy and report every error (what validate would refuse) and every warning:
			rules that can never match, duplicate hashes, a policy that allows nothing, a
			supplemental policy whose base is not among the files given. With --suppressions, also
			lint suppressions files (csv validate --suppressions): syntax, a justification on every
			entry, rules csv reports, globs that can match, expired entries and duplicates are
			errors; entries expiring within 30 days and Guardian results csv cannot apply are
			warnings. Policy files may then be left out.

			Exit status: 0 no errors (warnings allowed unless --strict); 1 errors found (or warnings
			with --strict); 2 a file could not be read, or a usage error.
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(opts.SuppressionFiles) > 0 {
				return nil
			}
			return cmdutil.ExactArgsAtLeast(1, "policy FILE to lint")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if opts.Format != "text" && opts.Format != "json" {
				return cmdutil.FlagErrorf("policy lint: --format %q: want text or json", opts.Format)
			}
			if runF != nil {
				return runF(opts)
			}
			return RunLint(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Strict, "strict", false, "treat warnings as errors")
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "text", "output `FORMAT`: text or json")
	cmd.Flags().StringArrayVar(&opts.SuppressionFiles, "suppressions", nil, "also lint this suppressions `FILE` (csv's YAML or Guardian's .gdnsuppress); repeatable")
	return cmd
}

// RunLint lints the policies.
func RunLint(o *LintOptions) error {
	var findings []cipolicy.Finding
	var policies []*cipolicy.Policy
	for _, path := range o.Files {
		data, err := cmdutil.ReadFileCapped(path, limits.MaxPolicyFile)
		if err != nil {
			return fmt.Errorf("cannot read policy %s: %w", path, err)
		}
		// Read what validate reads: certificate_file relative to the
		// policy, opened the same way.
		p, err := cipolicy.ParseWith(data, path, cipolicy.ParseOptions{ReadFile: cipolicy.FileReader(path)})
		var le *cipolicy.LoadError
		switch {
		case errors.As(err, &le):
			findings = append(findings, cipolicy.FindingsFromError(le)...)
			continue
		case err != nil:
			return err
		}
		policies = append(policies, p)
	}
	if len(policies) > 0 {
		findings = append(findings, cipolicy.Lint(policies...)...)
	}
	sf, err := lintSuppressions(o)
	if err != nil {
		return err
	}
	findings = append(findings, sf...)
	errs, warns := 0, 0
	for _, f := range findings {
		if f.Severity == cipolicy.SeverityError {
			errs++
		} else {
			warns++
		}
	}
	if o.Format == "json" {
		enc := json.NewEncoder(textsafe.JSONWriter(o.IO.Out))
		enc.SetIndent("", "  ")
		if findings == nil {
			findings = []cipolicy.Finding{}
		}
		if err := enc.Encode(map[string]any{"errors": errs, "warnings": warns, "findings": findings}); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			textsafe.Linef(o.IO.Out, "%s", f)
		}
		fmt.Fprintf(o.IO.Out, "%s: %s, %s\n", textsafe.Plural(len(o.Files)+len(o.SuppressionFiles), "file", "files"), textsafe.Plural(errs, "error", "errors"), textsafe.Plural(warns, "warning", "warnings"))
	}
	if errs > 0 || (o.Strict && warns > 0) {
		return cmdutil.ErrFailed
	}
	return nil
}

// lintSuppressions lints --suppressions: a file that cannot be read is an
// error of the command (exit 2), what is wrong in one a finding.
func lintSuppressions(o *LintOptions) ([]cipolicy.Finding, error) {
	if len(o.SuppressionFiles) == 0 {
		return nil, nil
	}
	var files []*suppress.File
	var bad []*suppress.LoadError
	for _, path := range o.SuppressionFiles {
		data, err := cmdutil.ReadFileCapped(path, limits.MaxSuppressionFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read suppressions %s: %w", path, err)
		}
		f, err := suppress.Parse(data, path)
		var le *suppress.LoadError
		switch {
		case errors.As(err, &le):
			bad = append(bad, le)
			continue
		case err != nil:
			return nil, err
		}
		files = append(files, f)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	return suppress.Lint(files, bad, now()), nil
}
