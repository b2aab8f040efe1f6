// Package sign implements "csv sign" and the signing step of
// "csv validate --sign", which share their flags and their run.
package sign

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/cli/cilog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/keys"
	"github.com/codesignval/csv/signing/manifest"
	"github.com/codesignval/csv/signing/timestamp"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

// Flags are the signing flags.
type Flags struct {
	Key          string
	Cert         string
	Out          string
	Bundle       bool
	Manifest     string
	Append       bool
	TimestampURL string
	Description  string
	URL          string
	PageHashes   bool
	ResourceURI  string
	// IMA and IMASidecar give every signed binary an IMA signature, in
	// its security.ima attribute or its sidecar FILE.sig.
	IMA, IMASidecar bool
	// FSVerity gives every signed ELF file an fs-verity built-in
	// signature in its sidecar FILE.fsv.sig.
	FSVerity bool
	// Catalog, if set, writes a signed security catalog of the files to
	// this path instead of signing them (csv sign --catalog).
	Catalog string

	// Installers (MSI): MSIExtended signs with \x05MsiDigitalSignatureEx;
	// SignContents asks for what csv refuses (the binaries inside
	// installers and containers signed first).
	MSIExtended  bool
	SignContents bool
	// The traps of issue 17, in one block: AllowPartialChain signs with a
	// chain that does not reach a root (a warning, not a refusal); Force
	// lets --out name a directory that is not empty (its content is then
	// replaced); PasswordStdin reads the key's password from the first
	// line of standard input.
	AllowPartialChain bool
	Force             bool
	PasswordStdin     bool

	// warned holds the warnings printed about earlier runs' journals and
	// leftovers: Recover and Sign both look, and say each once (a pointer:
	// Flags compare).
	warned *map[string]bool
}

// Register adds the signing flags to fs. prefix is prepended to the
// description of --key, for validate's "with --sign" wording.
func (f *Flags) Register(fs *pflag.FlagSet, when string) {
	fs.StringVar(&f.Key, "key", "", "signing key `REF`"+when+": a PEM or PKCS#12 (.pfx, .p12) file (password: --password-stdin, $CSV_KEY_PASSWORD or a prompt on a terminal), awskms://, gcpkms://, azurekms://, hashivault:// or a pkcs11: URI")
	fs.StringVar(&f.Cert, "cert", "", "build certificate chain `FILE` (PEM, leaf first)"+when)
	fs.StringVar(&f.Out, "out", "", "write the signed tree to `DIR` (DIR/<path under PATH>) instead of signing in place")
	fs.BoolVar(&f.Bundle, "bundle", false, "also write a Sigstore bundle FILE.sigstore.json for every signed file, and for every other file under PATH")
	fs.StringVar(&f.Manifest, "manifest", "", "write the signed build manifest (in-toto statement, SLSA verification summary, in a Sigstore bundle) to `FILE`")
	fs.BoolVar(&f.Append, "append", false, "PE and PowerShell scripts: keep existing signatures and add ours nested, instead of replacing them")
	fs.StringVar(&f.TimestampURL, "timestamp-url", "", "countersign the PE signatures, the Sigstore bundles and the manifest with this RFC 3161 time-stamp authority `URL`")
	fs.StringVar(&f.Description, "description", "", "PE: program description `TEXT` in the signature (SpcSpOpusInfo)")
	fs.StringVar(&f.URL, "url", "", "PE: more-information `URL` in the signature (SpcSpOpusInfo)")
	fs.BoolVar(&f.PageHashes, "page-hashes", false, "PE: put the file's page-hash table (SHA256, one hash per 4 KiB page) in the signature, as signtool /ph and osslsigncode -ph do")
	fs.BoolVar(&f.IMA, "ima", false, "also give every signed binary an IMA signature (digital signature v2, SHA-256, as evmctl ima_sign) in its security.ima attribute, or in a sidecar FILE.sig where the file system or the user cannot set it")
	fs.BoolVar(&f.IMASidecar, "ima-sidecar", false, "with --ima: write the IMA signatures to sidecar FILE.sig files (as evmctl ima_sign --sigfile), never to security.ima")
	fs.BoolVar(&f.FSVerity, "fsverity", false, "also give every signed ELF file an fs-verity built-in signature (PKCS#7 over its fs-verity SHA-256 digest, as fsverity sign) in a sidecar FILE.fsv.sig")
	fs.StringVar(&f.ResourceURI, "resource-uri", "", "manifest: the `URI` of the build it speaks of (a CI run URL; default: the paths signed)")

	// Installers.
	fs.BoolVar(&f.MSIExtended, "msi-extended", false, "MSI: sign with the extended signature (\\x05MsiDigitalSignatureEx, the metadata's pre-hash), as signtool and osslsigncode -add-msi-dse do; a package signed with it is signed with it again anyway")
	fs.BoolVar(&f.SignContents, "sign-contents", false, "not supported, refused: csv does not sign the binaries inside installers and containers; sign them before the installer or archive is built")
	fs.BoolVar(&f.AllowPartialChain, "allow-partial-chain", false, "sign even though --cert's chain does not reach a self-signed root or one in the system's trust store (a warning; verifiers must have the missing CA certificates)")
	fs.BoolVar(&f.Force, "force", false, "with --out: write into DIR even if it is not empty (files there that the run does not write stay, and are named)")
	fs.BoolVar(&f.PasswordStdin, "password-stdin", false, "read the password of an encrypted --key (PEM or PKCS#12) from the first line of standard input")
}

// Check validates the flags.
func (f *Flags) Check(cmd string) error {
	switch {
	case f.Key == "":
		return cmdutil.FlagErrorf("%s: --key is required to sign", cmd)
	case f.Cert == "" && !isPKCS12Name(f.Key):
		return cmdutil.FlagErrorf("%s: --cert is required to sign (unless --key is a PKCS#12 file, .pfx or .p12, which carries its chain)", cmd)
	}
	if f.SignContents {
		return cmdutil.FlagErrorf("%s: --sign-contents is not supported: csv does not sign the binaries inside installers and containers (MSI, CAB, zip, tar, ...): that means rebuilding their cabinets or archives and, for an MSI, the File and MsiFileHash tables that record each file's size, version and hash, which csv does not write; sign the binaries first (csv sign DIR), build the installer or archive from the signed files, then sign the installer", cmd)
	}
	if f.MSIExtended && f.Catalog != "" {
		return cmdutil.FlagErrorf("%s: --catalog signs no file, so it takes no --msi-extended", cmd)
	}
	if f.IMASidecar && !f.IMA {
		return cmdutil.FlagErrorf("%s: --ima-sidecar needs --ima", cmd)
	}
	if f.TimestampURL != "" {
		if _, err := tsahttp.New(f.TimestampURL, nil); err != nil {
			return cmdutil.FlagErrorf("%s: --timestamp-url: %v", cmd, err)
		}
	}
	return nil
}

// Options are the flags and arguments of csv sign.
type Options struct {
	IO      *cmdutil.IOStreams
	Version string
	Flags
	PolicyFiles []string
	CertFiles   []string
	Jobs        int
	Include     []string
	Exclude     []string
	Follow      bool
	Quiet       bool
	// GitHub is --github: annotations and a job summary for the files
	// that keep the build from being signed (--policy).
	GitHub cilog.GitHubFlag
	Paths  []string
}

// NewCmdSign returns the sign command.
func NewCmdSign(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Version: f.Version}
	cmd := &cobra.Command{
		Use:   "sign --key REF --cert CHAIN [--out DIR] [--bundle] [--manifest FILE --policy FILE...] [flags] PATH...",
		Short: "Sign every binary and script under PATH with the build certificate",
		Long: heredoc.Doc(`
			Sign every PE binary with an embedded Authenticode signature (SHA-256, the chain embedded,
			the checksum updated), every PowerShell script, MSI installer and cabinet with its
			Authenticode signature, and every ELF binary with an appended signature in the Linux kernel
			module format; with --bundle also write a detached Sigstore bundle for every file; with
			--manifest write one signed statement for the whole build.

			Signing is all or nothing: every file is signed to a temporary file beside its destination
			and renamed into place only when all are signed; on any error, or Ctrl-C, nothing changes.
			A run that is killed (kill -9, a machine that stops) leaves a journal: run the same
			csv sign again, and it first puts the files back as they were before the killed run (or,
			where that cannot be, finishes it) and removes what the journal proves is csv's.

			The chain (--cert, or a .pfx key's own) must reach a self-signed root or one in the system's
			trust store: a verifier that lacks an intermediate CA cannot build it, so csv refuses and
			names the missing certificate (--allow-partial-chain signs anyway, with a warning). An --out
			directory that is not empty is refused (--force writes into it and names the stale files it
			left). An encrypted key's password comes from --password-stdin, $CSV_KEY_PASSWORD, or a
			prompt on a terminal.

			With --policy the build is validated first, and nothing is signed unless every binary
			passes; --manifest needs --policy, since the manifest states that verification. The
			files that do not pass are named on standard error with the reason and rule id, and
			under GitHub Actions annotated (--github, as csv validate).

			With --catalog FILE, csv signs no file: it writes a security catalog (.cat, v2) listing
			every file under PATH, PE files by their Authenticode SHA256, PowerShell scripts by their
			SIP hash and their SHA256, other files by their SHA256 (catalogs under PATH are not listed), signed with the build key like a PE file, for
			release engineers who catalog-sign driver packages and script bundles; it takes no --out,
			--bundle, --manifest or --append.

			Exit status: 0 signed; 1 not signed because the build does not pass the policy; 2 any
			other error (nothing was signed).
		`),
		Example: cmdutil.Example(heredoc.Doc(`
			$ CSV_KEY_PASSWORD=... csv sign --key build.key --cert build-chain.pem out/
			$ printf '%s\n' "$KEY_PASSWORD" | csv sign --password-stdin --key build.pfx out/
			$ csv sign --key awskms:///alias/build --cert chain.pem --policy policy.yaml \
			    --manifest out.manifest.sigstore.json --bundle out/
			$ csv sign --key build.key --cert build-chain.pem --catalog driver.cat driver/
		`)),
		Args: cmdutil.ExactArgsAtLeast(1, "PATH to sign"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if err := opts.Flags.Check("sign"); err != nil {
				return err
			}
			if opts.Catalog != "" {
				for name, set := range map[string]bool{"--out": opts.Out != "", "--bundle": opts.Bundle, "--manifest": opts.Manifest != "", "--append": opts.Append, "--ima": opts.IMA, "--fsverity": opts.FSVerity} {
					if set {
						return cmdutil.FlagErrorf("sign: --catalog signs no file, so it takes no %s", name)
					}
				}
			}
			if err := opts.GitHub.Check("sign"); err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			if opts.Manifest != "" && len(opts.PolicyFiles) == 0 {
				return cmdutil.FlagErrorf("sign: --manifest needs --policy: the manifest states that the build passed it")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	opts.Flags.Register(fl, "")
	fl.StringArrayVarP(&opts.PolicyFiles, "policy", "p", nil, "validate against this policy `FILE` first; repeatable")
	fl.StringArrayVar(&opts.CertFiles, "certs", nil, "certificates `FILE` completing chains for --policy; repeatable")
	fl.IntVarP(&opts.Jobs, "jobs", "j", 0, "sign `N` files at once (default: twice the number of CPUs, as signing waits on disk syncs)")
	fl.StringArrayVar(&opts.Include, "include", nil, "sign only files matching this path `GLOB`; repeatable")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "skip files and directories matching this path `GLOB`; repeatable")
	fl.BoolVar(&opts.Follow, "follow-symlinks", false, "follow symbolic links (never out of the given paths)")
	fl.BoolVarP(&opts.Quiet, "quiet", "q", false, "no summary on standard error")
	opts.GitHub.Register(fl)
	fl.StringVar(&opts.Catalog, "catalog", "", "write a signed security catalog `FILE` (.cat) of the files under PATH instead of signing them: PE files by their Authenticode hash, PowerShell scripts by their SIP hash and SHA256, other files by their SHA256")
	return cmd
}

// Run signs (after validating, with --policy).
func Run(ctx context.Context, o *Options) error {
	// A non-empty --out is refused before the build is validated.
	if err := o.Flags.CheckOut("sign"); err != nil {
		return err
	}
	// What an earlier run that was killed left is finished or undone
	// first, so that the tree validated is the tree signed.
	if err := o.Flags.Recover(ctx, o.IO, o.Paths); err != nil {
		return err
	}
	var rep *csv.Report
	if len(o.PolicyFiles) > 0 {
		policies, err := cipolicy.LoadFiles(o.PolicyFiles)
		if err != nil {
			return err
		}
		certs, err := signing.LoadCertificateFiles(o.CertFiles)
		if err != nil {
			return err
		}
		set, err := cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: certs}, policies...)
		if err != nil {
			return err
		}
		v, err := csv.NewValidator(set, csv.Options{Jobs: o.Jobs, Include: o.Include, Exclude: o.Exclude,
			FollowSymlinks: o.Follow, Certificates: certs, SignCheck: true})
		if err != nil {
			return cmdutil.FlagErrorf("sign: %v", err)
		}
		if rep, err = v.Validate(ctx, o.Paths...); err != nil {
			return err
		}
		if rep.Summary.Blocked > 0 {
			// Named here, as csv validate names them: a job's log says
			// which files kept the build from being signed.
			verdict := fmt.Sprintf("csv: not signing: %d of %s %s not pass the policy", rep.Summary.Blocked, textsafe.Plural(rep.Summary.Files, "binary", "binaries"), verb(rep.Summary.Blocked, "does", "do"))
			var fs cilog.Findings
			for i := range rep.Results {
				if f, ok := cilog.Of(&rep.Results[i]); ok {
					f.Audit = false // signing refuses what an audit would let through
					fs.Add(f)
				}
			}
			fmt.Fprintln(o.IO.ErrOut, verdict)
			w := cilog.Writer{ErrOut: o.IO.ErrOut, Lines: true, GitHub: o.GitHub.Resolve(os.Getenv)}
			if err := w.Write(&fs, cilog.Outcome{Command: "csv sign", Failed: true, Verdict: verdict,
				Files: rep.Summary.Files, Allowed: rep.Summary.Allowed, Blocked: rep.Summary.Blocked, Skipped: rep.Summary.Skipped,
				Policies: cilog.PoliciesOf(rep.Policies)}); err != nil {
				textsafe.Linef(o.IO.ErrOut, "csv: warning: %v", err)
			}
			return cmdutil.ErrFailed
		}
	}
	sel := csv.Options{Jobs: o.Jobs, Include: o.Include, Exclude: o.Exclude, FollowSymlinks: o.Follow}
	if o.Catalog != "" {
		return o.Flags.signCatalog(ctx, o.IO, rep, sel, o.Quiet, o.Paths)
	}
	return o.Flags.Sign(ctx, o.IO, o.Version, rep, sel, o.Quiet, o.Paths)
}

// signer loads the signing key (--key) and its chain (--cert) and checks
// that they sign together; done releases the key (an HSM session).
func (f *Flags) signer(ctx context.Context, ios *cmdutil.IOStreams) (key crypto.Signer, chain []*x509.Certificate, done func(), err error) {
	key, err = keys.LoadSigner(ctx, f.Key, keys.LoadOptions{Password: f.password(ios)})
	if err != nil {
		// Never the reference itself: a pkcs11: URI may carry the PIN.
		return nil, nil, nil, fmt.Errorf("signing key %s: %w", keys.RedactKeyRef(f.Key), err)
	}
	done = func() {}
	if c, ok := key.(interface{ Close() error }); ok {
		done = func() { c.Close() }
	}
	chainFile := f.Cert
	switch cs, ok := key.(keys.ChainSigner); {
	case f.Cert != "":
		if chain, err = signing.LoadChain(f.Cert); err != nil {
			done()
			return nil, nil, nil, fmt.Errorf("certificate chain %s: %w", f.Cert, err)
		}
	case ok:
		// A PKCS#12 key's own chain, when --cert does not give one.
		chain, chainFile = cs.Chain(), f.Key
	default:
		done()
		return nil, nil, nil, cmdutil.FlagErrorf("--cert is required: the key %s carries no certificate chain", keys.RedactKeyRef(f.Key))
	}
	if err := signing.CheckSigningChain(key, chain, time.Now()); err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("cannot sign with %s and %s: %w", keys.RedactKeyRef(f.Key), chainFile, err)
	}
	if err := signing.CheckChainComplete(chain, signing.CompleteOptions{System: true, Now: time.Now()}); err != nil {
		var ce *signing.ChainError
		if !errors.As(err, &ce) || !errors.Is(err, signing.ErrPartialChain) {
			done()
			return nil, nil, nil, fmt.Errorf("cannot sign with %s: %w", chainFile, err)
		}
		missing := signing.NameString(ce.Cert.Issuer)
		if !f.AllowPartialChain {
			done()
			how := fmt.Sprintf("append that certificate (and the CAs above it, up to the self-signed root) to %s", chainFile)
			if chainFile != f.Cert {
				how = "give the whole chain, up to the self-signed root, with --cert FILE (PEM, leaf first)"
			}
			return nil, nil, nil, fmt.Errorf("cannot sign with %s: %w: no verifier that lacks %q can build the chain, and it would reject every file signed: %s, or give --allow-partial-chain if every verifier has it already", chainFile, err, missing, how)
		}
		f.warn(ios, fmt.Sprintf("%s does not reach a root: it ends at %q, issued by %q, which is not in it (--allow-partial-chain): verifiers must have %q to build the chain", chainFile, signing.NameString(ce.Cert.Subject), missing, missing))
	}
	return key, chain, done, nil
}

// signCatalog writes the signed catalog of the roots' files to --catalog.
// rep, if not nil, is the validation that passed: a file that changed
// since is not listed, and nothing is written.
func (f *Flags) signCatalog(ctx context.Context, ios *cmdutil.IOStreams, rep *csv.Report, sel csv.Options, quiet bool, roots []string) error {
	tsa, err := f.tsa()
	if err != nil {
		return err
	}
	key, chain, done, err := f.signer(ctx, ios)
	if err != nil {
		return err
	}
	defer done()
	opts := csv.CatalogOptions{Jobs: sel.Jobs, Include: sel.Include, Exclude: sel.Exclude, FollowSymlinks: sel.FollowSymlinks,
		Key: key, Chain: chain, Authenticode: authenticode.SignOptions{TSA: tsa, Description: f.Description, URL: f.URL}}
	if rep != nil {
		opts.Expect = rep.Digests()
	}
	res, err := csv.MakeCatalog(ctx, opts, roots...)
	if err != nil {
		return err
	}
	if err := csv.WriteCatalog(f.Catalog, res.DER); err != nil {
		return fmt.Errorf("writing the catalog: %w", err)
	}
	for _, w := range res.Warnings {
		f.warn(ios, w)
	}
	if !quiet {
		pe := 0
		for _, m := range res.Members {
			if m.Format == csv.FormatPE {
				pe++
			}
		}
		textsafe.Linef(ios.ErrOut, "csv: wrote catalog %s of %s (%d PE) signed by %s", textsafe.Quote(f.Catalog), textsafe.Plural(len(res.Members), "file", "files"), pe, textsafe.Quote(chain[0].Subject.CommonName))
		for _, s := range res.Skipped {
			textsafe.Linef(ios.ErrOut, "csv: not listed: %s", s)
		}
	}
	return nil
}

// Sign signs the roots. rep, if not nil, is the validation that passed:
// signing then refuses files that changed since, and the manifest states
// the policy.
func (f *Flags) Sign(ctx context.Context, ios *cmdutil.IOStreams, version string, rep *csv.Report, sel csv.Options, quiet bool, roots []string) error {
	tsa, err := f.tsa()
	if err != nil {
		return err
	}
	if err := f.CheckOut("sign"); err != nil {
		return err
	}
	var before map[string]os.FileInfo
	if f.Force {
		before = f.outSnapshot()
	}
	key, chain, done, err := f.signer(ctx, ios)
	if err != nil {
		return err
	}
	defer done()
	opts := csv.SignOptions{Jobs: sel.Jobs, Include: sel.Include, Exclude: sel.Exclude, FollowSymlinks: sel.FollowSymlinks,
		Key: key, Chain: chain, Out: f.Out, FSVerity: f.FSVerity,
		PE: authenticode.SignOptions{Append: f.Append, TSA: tsa, Description: f.Description, URL: f.URL}, PageHashes: f.PageHashes}
	opts.MSIExtended = f.MSIExtended
	switch {
	case f.IMASidecar:
		opts.IMA = csv.IMASidecar
	case f.IMA:
		opts.IMA = csv.IMAXattr
	}
	if f.Bundle {
		ts := f.timestamper(ctx)
		opts.Bundle = func(sum []byte) ([]byte, error) { return bundle.New(sum, key, chain, ts) }
	}
	if rep != nil {
		opts.Expect = rep.Digests()
	}
	if f.Manifest != "" {
		if rep == nil {
			return cmdutil.FlagErrorf("--manifest needs a validation (--policy)")
		}
		opts.Manifest = f.Manifest
		opts.MakeManifest = func(signed []csv.Signed) ([]byte, error) {
			return f.manifest(ctx, signed, rep, version, key, chain, roots)
		}
	}
	res, err := csv.Sign(ctx, opts, roots...)
	if res != nil && res.Recovery != nil {
		f.printRecovery(ios, res.Recovery)
	}
	if err != nil {
		return err
	}
	f.warnStale(ios, before)
	for _, l := range res.Leftovers {
		f.warn(ios, fmt.Sprintf("%q is named like the temporary files, backups and journals of csv sign, and no journal accounts for it: left alone, and validate blocks it; if no csv sign is running, remove it by hand", l))
	}
	warned := map[string]bool{}
	pe, elf, scripts := 0, 0, 0
	msis, cabs := 0, 0
	for _, s := range res.Signed {
		switch s.Format {
		case csv.FormatPE:
			pe++
		case csv.FormatELF:
			elf++
		case csv.FormatPowerShell:
			scripts++
		case cipolicy.FormatMSI:
			msis++
		case cipolicy.FormatCab:
			cabs++
		}
		for _, w := range s.Warnings {
			if !warned[w] {
				warned[w] = true
				textsafe.Linef(ios.ErrOut, "csv: warning: %s", w)
			}
		}
	}
	if !quiet {
		where := "in place"
		if f.Out != "" {
			where = "into " + f.Out
		}
		what := fmt.Sprintf("%s (%d PE, %d ELF)", textsafe.Plural(pe+elf, "binary", "binaries"), pe, elf)
		if scripts > 0 {
			what += " and " + textsafe.Plural(scripts, "PowerShell script", "PowerShell scripts")
		}
		if msis > 0 {
			what += " and " + textsafe.Plural(msis, "MSI package", "MSI packages")
		}
		if cabs > 0 {
			what += " and " + textsafe.Plural(cabs, "cabinet", "cabinets")
		}
		line := fmt.Sprintf("csv: signed %s %s with %s", what, where, textsafe.Quote(chain[0].Subject.CommonName))
		if f.Bundle {
			line += "; " + textsafe.Plural(len(res.Signed), "Sigstore bundle", "Sigstore bundles")
		}
		if f.FSVerity {
			n := 0
			for i := range res.Signed {
				if res.Signed[i].FSVeritySidecar != "" {
					n++
				}
			}
			line += "; " + textsafe.Plural(n, "fs-verity signature", "fs-verity signatures") + " (FILE.fsv.sig)"
		}
		if f.Manifest != "" {
			line += "; manifest " + f.Manifest
		}
		textsafe.Linef(ios.ErrOut, "%s", line)
	}
	return nil
}

// Recover finishes or undoes what an earlier csv sign of roots (into the
// same --out) left when it was killed (csv.RecoverSign), and says what it
// did: call it before validating the tree to sign.
func (f *Flags) Recover(ctx context.Context, ios *cmdutil.IOStreams, roots []string) error {
	rec, err := csv.RecoverSign(ctx, csv.SignOptions{Out: f.Out, Manifest: f.Manifest}, roots...)
	if rec != nil {
		f.printRecovery(ios, rec)
	}
	return err
}

// printRecovery says what a recovery did, one line per earlier run, and
// warns of the journals it left alone. Journal names, paths and the errors
// of a journal csv did not write are the tree's: every line is escaped.
func (f *Flags) printRecovery(ios *cmdutil.IOStreams, rec *csv.Recovery) {
	for _, r := range rec.Runs {
		run := fmt.Sprintf("csv: an earlier csv sign (process %d, started %s) did not finish", r.PID, r.Started.Local().Format(time.DateTime))
		switch r.Outcome {
		case csv.Cleaned:
			textsafe.Linef(ios.ErrOut, "%s: it was stopped while signing, before it replaced any file; removed its %d temporary files", run, r.Removed)
		case csv.Restored:
			textsafe.Linef(ios.ErrOut, "%s: it was stopped while putting the signed files in place; put back the %d files it had replaced and removed its %d temporary files and backups: the files are as before that run", run, r.Moved, r.Removed)
		case csv.Finished:
			textsafe.Linef(ios.ErrOut, "%s: finished it: put its %d remaining signed files in place and removed its %d backups: the files are as that run would have left them", run, r.Moved, r.Removed)
		}
	}
	for _, j := range rec.Running {
		f.warn(ios, fmt.Sprintf("another csv sign is running here (its journal %q is locked): its files are left alone", j))
	}
	for _, why := range rec.Ignored {
		f.warn(ios, why+": left alone, and validate blocks it; if no csv sign is running, remove it by hand")
	}
}

// warn prints a warning, escaped, unless it was printed already.
func (f *Flags) warn(ios *cmdutil.IOStreams, msg string) {
	if f.warned == nil {
		f.warned = &map[string]bool{}
	}
	if (*f.warned)[msg] {
		return
	}
	(*f.warned)[msg] = true
	textsafe.Linef(ios.ErrOut, "csv: warning: %s", msg)
}

// manifest makes the signed statement of the build: every signed binary by
// its path relative to the signed tree (csv.ManifestNames), and the SLSA
// verification summary of the policy that passed.
func (f *Flags) manifest(ctx context.Context, signed []csv.Signed, rep *csv.Report, version string, key crypto.Signer, chain []*x509.Certificate, roots []string) ([]byte, error) {
	names, err := csv.ManifestNames(signed, roots, f.Out)
	if err != nil {
		return nil, err
	}
	subjects := make([]manifest.Subject, len(signed))
	for i, s := range signed {
		subjects[i] = manifest.SHA256Subject(names[i], s.SHA256)
	}
	resource := f.ResourceURI
	if resource == "" {
		resource = strings.Join(roots, " ")
	}
	pred, err := manifest.PassedSummary(manifest.Validation{Version: version, Started: rep.Started, ResourceURI: resource, Policies: rep.Policies})
	if err != nil {
		return nil, err
	}
	var opts []manifest.Option
	if ts := f.timestamper(ctx); ts != nil {
		opts = append(opts, manifest.WithTimestamp(ts))
	}
	return manifest.New(subjects, pred, key, chain, opts...)
}

// timestamper countersigns bundle and manifest signatures through
// --timestamp-url (nil without it).
func (f *Flags) timestamper(ctx context.Context) bundle.Timestamper {
	tsa, err := f.tsa()
	if tsa == nil || err != nil { // Check refused a bad URL
		return nil
	}
	return func(sig []byte) ([]byte, error) {
		resp, _, err := timestamp.Stamp(ctx, tsa, sig)
		return resp, err
	}
}

// tsa is the time-stamping authority at --timestamp-url (nil without it).
func (f *Flags) tsa() (timestamp.TSA, error) {
	if f.TimestampURL == "" {
		return nil, nil
	}
	c, err := tsahttp.New(f.TimestampURL, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}
