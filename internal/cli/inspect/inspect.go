// Package inspect implements "csv inspect".
package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/internal/cli/cilog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// Options are the flags and arguments of csv inspect.
type Options struct {
	IO        *cmdutil.IOStreams
	Format    string
	CertFiles []string
	Files     []string
}

// NewCmdInspect returns the inspect command.
func NewCmdInspect(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "inspect [--format text|json] [flags] FILE...",
		Short: "Show what csv sees in a file: format, digests, signatures and their chains",
		Long: heredoc.Doc(`
			Print each file's format, size, SHA256 and, for PE files, the Authenticode SHA256 and SHA1
			image hashes, the entries of the certificate table and the version resource; then every
			signature (PE Authenticode, outer and nested; ELF appended signatures): its digest and
			signature algorithms, whether it verifies and why not, the signer, each chain with every
			certificate's TBS hash (as WDAC writes CertRoot values) and SHA256 fingerprint, and the
			timestamp. These are the facts policy rules match. A PowerShell script shows its
			encoding, its signature block and its SIP hash; a catalog its members; a container
			(an archive, package, image or compressed file) is followed by each of its members, under
			its path (app.zip!/lib/x.dll).

			With --format json, the malformed files are also named on standard error, for the CI log.

			Exit status: 0 all files inspected; 1 a file is malformed, or a container past a cap;
			2 a file could not be read, or a usage error.
		`),
		Args: cmdutil.ExactArgsAtLeast(1, "FILE to inspect"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if opts.Format != "text" && opts.Format != "json" {
				return cmdutil.FlagErrorf("inspect: --format %q: want text or json", opts.Format)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "text", "output `FORMAT`: text or json")
	cmd.Flags().StringArrayVar(&opts.CertFiles, "certs", nil, "certificates `FILE` (PEM or DER) completing chains and identifying ELF signers; repeatable")
	return cmd
}

// FileDoc is report.FileDoc, the JSON form of one inspected file.
type FileDoc = report.FileDoc

// Run inspects the files and prints what it found.
func Run(ctx context.Context, o *Options) error {
	buf := make([]byte, limits.ReadBuffer)
	certs, err := signing.LoadCertificateFiles(o.CertFiles)
	if err != nil {
		return err
	}
	var docs []FileDoc
	var sigs [][]*signing.Signature
	malformed, unreadable := false, false
	// The files that make inspect fail, for the log when the output is
	// JSON (the text output names them itself).
	var failing cilog.Findings
	for _, path := range o.Files {
		add := func(path string, in *csv.Inspection) {
			d := report.FileDocOf(path, in)
			sigs = append(sigs, in.Signatures)
			if in.Err != nil {
				var mb *csv.MalformedBinaryError
				if errors.As(in.Err, &mb) || errors.Is(in.Err, signing.ErrMalformed) || errors.Is(in.Err, container.ErrLimit) {
					malformed = true
					failing.Add(cilog.Finding{Path: path, Reason: strings.TrimPrefix(in.Err.Error(), path+": "), RuleID: report.RuleMalformed, Mark: "MALFORMED"})
				} else {
					unreadable = true
				}
			}
			docs = append(docs, d)
		}
		// A container is listed, then its members, each with its facts.
		var members []func()
		in, err := csv.InspectMembers(ctx, path, buf, csv.InspectOptions{Certificates: certs}, nil, func(rel string, in *csv.Inspection, problem error) error {
			if in == nil {
				in = &csv.Inspection{Format: csv.FormatOther, Err: problem}
			}
			members = append(members, func() { add(rel, in) })
			return nil
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		add(path, in)
		for _, m := range members {
			m()
		}
	}
	if o.Format == "json" {
		enc := json.NewEncoder(textsafe.JSONWriter(o.IO.Out))
		enc.SetIndent("", "  ")
		if err := enc.Encode(docs); err != nil {
			return err
		}
	} else {
		for i := range docs {
			writeText(o.IO.Out, &docs[i], sigs[i])
		}
	}
	if malformed && o.Format == "json" {
		w := cilog.Writer{ErrOut: o.IO.ErrOut, Lines: true}
		w.Write(&failing, cilog.Outcome{Command: "csv inspect", Failed: true}) // lines only: it cannot fail
	}
	switch {
	case unreadable:
		return errors.New("some files could not be read")
	case malformed:
		return cmdutil.ErrFailed
	}
	return nil
}

// writeText writes what inspect found for people. Every string the file
// holds (its name, version strings, signers, errors that quote it) is
// escaped (internal/textsafe): a name or a subject cannot end a line, drive
// the terminal or speak to the CI runner.
func writeText(w io.Writer, d *FileDoc, sigs []*signing.Signature) {
	fmt.Fprintf(w, "%s\n", textsafe.Escape(d.Path))
	row := func(k, v string) { fmt.Fprintf(w, "  %-21s %s\n", k+":", textsafe.Escape(v)) }
	format := string(d.Format)
	if d.Info != nil {
		format = d.Info.Describe()
	}
	if d.Container != "" {
		format = string(d.Container) + " container: its members follow"
	}
	row("format", format)
	row("size", fmt.Sprint(d.Size))
	d.Digests.Each(func(a cipolicy.HashAlgorithm, v string) { row(digestLabel(a), v) })
	if d.Info != nil {
		d.Info.WriteText(w, row)
	}
	if a := d.Attributes; a != nil {
		v := ""
		if a.FileVersion != nil {
			v = ", file version " + a.FileVersion.String()
		}
		row("version info", fmt.Sprintf("original file name %s, internal name %s, product %s%s",
			textsafe.Quote(a.OriginalFileName), textsafe.Quote(a.InternalName), textsafe.Quote(a.ProductName), v))
	}
	if d.Error != "" {
		row("error", strings.TrimPrefix(d.Error, d.Path+": "))
	}
	report.WriteSignatures(w, "  ", sigs)
}

// digestLabel names a digest in the text output: the algorithm's name with
// spaces ("authenticode sha256").
func digestLabel(a cipolicy.HashAlgorithm) string { return strings.ReplaceAll(string(a), "_", " ") }
