// Package inspect implements "csv inspect".
package inspect

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/facts"
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
	Origin    string
	Version   string
	CertFiles []string
	Files     []string
}

// NewCmdInspect returns the inspect command.
func NewCmdInspect(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Version: f.Version}
	cmd := &cobra.Command{
		Use:   "inspect [--format text|json|facts] [flags] FILE...",
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
			With --format facts, the output is a facts file (docs/facts.md): the header, with
			--origin (default: the host name), then each file's facts as csv validate judges them,
			for csv validate --facts FILE; malformed files are named on standard error.

			Exit status: 0 all files inspected; 1 a file is malformed, or a container past a cap;
			2 a file could not be read, or a usage error.
		`),
		Args: cmdutil.ExactArgsAtLeast(1, "FILE to inspect"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if opts.Format != "text" && opts.Format != "json" && opts.Format != "facts" {
				return cmdutil.FlagErrorf("inspect: --format %q: want text, json or facts", opts.Format)
			}
			if opts.Origin != "" && opts.Format != "facts" {
				return cmdutil.FlagErrorf("inspect: --origin needs --format facts")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "text", "output `FORMAT`: text, json or facts (a facts file for csv validate --facts)")
	cmd.Flags().StringVar(&opts.Origin, "origin", "", "with --format facts: the `NAME` of where the facts are recorded (default: the host name)")
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
	var fw *facts.Writer
	if o.Format == "facts" {
		origin := o.Origin
		if origin == "" {
			if origin, err = os.Hostname(); err != nil {
				return fmt.Errorf("inspect: the host name, the default --origin: %w", err)
			}
		}
		out := bufio.NewWriter(o.IO.Out)
		defer out.Flush()
		if fw, err = facts.NewWriter(out, facts.NewHeader(origin, "csv "+o.Version, time.Now()), facts.WriterOptions{}); err != nil {
			return err
		}
	}
	var docs []FileDoc
	var sigs [][]*signing.Signature
	malformed, unreadable := false, false
	var werr error // writing the facts
	// The files that make inspect fail, for the log when the output is
	// JSON (the text output names them itself).
	var failing cilog.Findings
	for _, path := range o.Files {
		add := func(display string, in *csv.Inspection) {
			d := report.FileDocOf(display, in)
			if fw != nil {
				// One record per file, written as it comes: nothing is kept.
				rel := filepath.Base(path) + strings.TrimPrefix(display, filepath.ToSlash(path))
				if err := fw.Write(csv.InspectionRecord(path, rel, in)); err != nil && werr == nil {
					werr = err
				}
				d = FileDoc{}
			} else {
				sigs = append(sigs, in.Signatures)
			}
			path := display
			if in.Err != nil {
				var mb *csv.MalformedBinaryError
				if errors.As(in.Err, &mb) || errors.Is(in.Err, signing.ErrMalformed) || errors.Is(in.Err, container.ErrLimit) {
					malformed = true
					failing.Add(cilog.Finding{Path: path, Reason: strings.TrimPrefix(in.Err.Error(), path+": "), RuleID: report.RuleMalformed, Mark: "MALFORMED"})
				} else {
					unreadable = true
				}
			}
			if fw == nil {
				docs = append(docs, d)
			}
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
	if fw != nil {
		if err := errors.Join(werr, fw.Close()); err != nil {
			return fmt.Errorf("inspect: writing the facts: %w", err)
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
	if malformed && o.Format != "text" {
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
