// Package verifymanifest implements "csv verify-manifest".
package verifymanifest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/manifest"
)

// Options are the flags and arguments of csv verify-manifest.
type Options struct {
	IO        *cmdutil.IOStreams
	Manifest  string
	CertFiles []string
	TSAFiles  []string
	Signers   []string
	Extra     bool
	Dir       string
}

// NewCmdVerifyManifest returns the verify-manifest command.
func NewCmdVerifyManifest(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "verify-manifest --manifest FILE --certs ROOTS [--signer KIND:ID]... [--extra] [flags] [DIR]",
		Short: "Check a signed build manifest and every file it lists",
		Long: heredoc.Doc(`
			Verify the signed build manifest that csv sign --manifest wrote (a Sigstore bundle holding a
			DSSE-signed in-toto statement with a SLSA verification summary): its signature, with a
			certificate chain to one of the root certificates in --certs; the signer certificate is one of
			--signer's when given (cn:NAME its subject common name, dns:NAME, email:ADDRESS or uri:URI an
			alternative name, or sha256:FINGERPRINT: pin it, since a CA issues many certificates; without
			--signer any certificate under the roots is accepted, and csv warns); then the SHA-256 of
			every file it lists, relative to DIR (default: the current directory). The signer's name,
			issuer, serial number and fingerprint are printed. With
			--extra, binaries and scripts under DIR that the manifest does not list are reported too.

			The chain is checked at the current time, unless --tsa-certs gives the roots of trusted
			time-stamping authorities: then the RFC 3161 timestamp that csv sign --timestamp-url put in
			the manifest must verify, by a TSA chaining to one of them, and the chain is checked at the
			time it vouches for, so a manifest signed while its certificate was valid still verifies
			after the certificate expires.

			Exit status: 0 the manifest verifies and every file matches; 1 a file is missing, changed
			(or extra, with --extra); 2 the manifest does not verify, or a usage error.
		`),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if opts.Manifest == "" {
				return cmdutil.FlagErrorf("verify-manifest: --manifest is required")
			}
			for _, id := range opts.Signers {
				if err := manifest.CheckSignerID(id); err != nil {
					return cmdutil.FlagErrorf("verify-manifest: --%v", err)
				}
			}
			if len(opts.CertFiles) == 0 {
				return cmdutil.FlagErrorf("verify-manifest: --certs is required: the root certificates the signer must chain to")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Manifest, "manifest", "m", "", "the manifest `FILE`")
	cmd.Flags().StringArrayVar(&opts.CertFiles, "certs", nil, "root certificates `FILE` (PEM or DER) the signer must chain to; repeatable")
	cmd.Flags().StringArrayVar(&opts.TSAFiles, "tsa-certs", nil, "root certificates `FILE` (PEM or DER) of trusted time-stamping authorities: check the manifest's timestamp and the chain at its time; repeatable")
	cmd.Flags().StringArrayVar(&opts.Signers, "signer", nil, "the signer certificate must be `ID`: cn:NAME, dns:NAME, email:ADDRESS, uri:URI or sha256:FINGERPRINT; repeatable (any of them)")
	cmd.Flags().BoolVar(&opts.Extra, "extra", false, "also report binaries and scripts under DIR that the manifest does not list")
	return cmd
}

// Run verifies the manifest and the files.
func Run(ctx context.Context, o *Options) error {
	roots, err := signing.LoadX509CertificateFiles(o.CertFiles)
	if err != nil {
		return err
	}
	tsaRoots, err := signing.LoadX509CertificateFiles(o.TSAFiles)
	if err != nil {
		return err
	}
	data, err := cmdutil.ReadFileCapped(o.Manifest, bundle.MaxDSSESize)
	if err != nil {
		return fmt.Errorf("cannot read manifest %s: %w", o.Manifest, err)
	}
	st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, TSARoots: tsaRoots, Now: time.Now(), Signers: o.Signers})
	if err != nil {
		return fmt.Errorf("manifest %s: %w", o.Manifest, err)
	}
	// Every string below comes from the manifest or a certificate: each
	// line is escaped as a whole (textsafe.Linef), and names are quoted, so
	// that a subject named "x\nresult: PASSED" cannot forge a line.
	p := st.Predicate
	textsafe.Linef(o.IO.Out, "csv: manifest %s: %s, policy %s (sha256 %.12s), %s, verified %s by %s",
		o.Manifest, p.VerificationResult, textsafe.Quote(p.Policy.Name), p.Policy.Digest["sha256"], textsafe.Plural(len(st.Subject), "file", "files"),
		p.TimeVerified.UTC().Format(time.RFC3339), verifierOf(p))
	leaf := st.Chain[0]
	fp := sha256.Sum256(leaf.Raw)
	textsafe.Linef(o.IO.Out, "csv: signed by %s (serial %X, sha256:%x), issued by %s, chain to %s", textsafe.Quote(signing.NameString(leaf.Subject)), leaf.SerialNumber, fp,
		textsafe.Quote(signing.NameString(leaf.Issuer)), textsafe.Quote(st.Chain[len(st.Chain)-1].Subject.CommonName))
	if len(o.Signers) == 0 {
		fmt.Fprintf(o.IO.ErrOut, "csv: warning: no --signer pin: any certificate under the roots of --certs would be accepted; pin this signer with --signer sha256:%x\n", fp)
	}
	switch s := st.Signed; {
	case s.Timestamped:
		textsafe.Linef(o.IO.Out, "csv: signed at %s (RFC 3161 timestamp by %s); the chain was checked at that time", s.At.UTC().Format(time.RFC3339), textsafe.Quote(s.TSA.Subject.CommonName))
	case s.Timestamps > 0:
		fmt.Fprintf(o.IO.Out, "csv: the manifest carries a timestamp, not checked (give --tsa-certs); the chain was checked now\n")
	}
	bad := manifest.CheckFiles(ctx, st, o.Dir)
	if o.Extra {
		bins, err := csv.Binaries(ctx, csv.Options{}, o.Dir)
		if err != nil {
			return err
		}
		var present []string
		for _, b := range bins {
			present = append(present, b.Path)
		}
		bad = append(bad, manifest.ExtraFiles(st, present)...)
	}
	for _, m := range bad {
		textsafe.Linef(o.IO.Out, "%s", m)
	}
	switch err := manifest.Verdict(st, bad); {
	case errors.Is(err, manifest.ErrMismatch):
		verb := "do"
		if len(bad) == 1 {
			verb = "does"
		}
		fmt.Fprintf(o.IO.Out, "result: FAILED: %d of %s %s not match the manifest\n", len(bad), textsafe.Plural(len(st.Subject), "file", "files"), verb)
		return cmdutil.ErrFailed
	case errors.Is(err, manifest.ErrNotPassed):
		fmt.Fprintf(o.IO.Out, "result: FAILED: the manifest records a build that did not pass\n")
		return cmdutil.ErrFailed
	case err != nil:
		return err
	}
	if len(st.Subject) == 1 {
		fmt.Fprintf(o.IO.Out, "result: PASSED: the 1 file matches\n")
		return nil
	}
	fmt.Fprintf(o.IO.Out, "result: PASSED: all %d files match\n", len(st.Subject))
	return nil
}

func verifierOf(p manifest.Predicate) string {
	v := p.Verifier.ID
	if ver := p.Verifier.Version["csv"]; ver != "" {
		v += " " + ver
	}
	return v
}
