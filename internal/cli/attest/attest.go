// Package attest implements "csv attest": verify a host's measured boot
// (TCG event log, TPM2 quote) against an attestation policy, and inspect an
// event log.
package attest

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/keys"
)

// File size caps of the command's inputs.
const (
	maxEventLogFile = 16 << 20 // an event log (real ones: tens of KB)
	maxQuoteFile    = 64 << 10 // a TPMS_ATTEST or TPMT_SIGNATURE
	maxAKFile       = 64 << 10
	maxPCRsFile     = 1 << 20
	maxPolicyFile   = 4 << 20
	maxDBXFile      = 4 << 20 // a dbx update (real ones: 15 KB)
)

// NewCmdAttest returns the attest command and its subcommands.
func NewCmdAttest(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest <command>",
		Short: "Verify a host's measured boot, serve attestations, or attest this host",
		Long: heredoc.Doc(`
			Verify a host's measured boot: replay its TCG event log, verify its TPM2 quote with
			its attestation key, and judge the boot state (Secure Boot, its keys, debugging, code
			integrity, the boot components) with an attestation policy whose boot components are
			judged by a code integrity policy, as validate judges a build.

			serve runs that verification as an HTTPS service that issues each trusted host a
			credential sealed to its TPM; request is the host side, attesting with the local TPM.
		`),
	}
	cmd.AddCommand(NewCmdVerify(f, nil), NewCmdInspect(f, nil), NewCmdServe(f, nil), NewCmdRequest(f, nil), NewCmdLabLog(f, nil))
	return cmd
}

// VerifyOptions are the flags of csv attest verify.
type VerifyOptions struct {
	IO      *cmdutil.IOStreams
	Version string

	EventLog         string
	Quotes           []string
	Signatures       []string
	AK               string
	AKRoots          []string
	AKIntermediates  []string
	Nonce            string
	PCRs             string
	Policy           string
	CIPolicies       []string
	CertFiles        []string
	Format           string
	EARKey           string
	AllowSHA1        bool
	AllowEmptyNonce  bool
	nonceGiven       bool
	ciPolicyRequired bool
}

// NewCmdVerify returns the verify command. runF, if not nil, replaces the
// run function (for tests of flag parsing).
func NewCmdVerify(f *cmdutil.Factory, runF func(*VerifyOptions) error) *cobra.Command {
	o := &VerifyOptions{IO: f.IO, Version: f.Version}
	cmd := &cobra.Command{
		Use:   "verify --eventlog FILE --quote FILE --signature FILE --ak FILE --nonce HEX --policy FILE [flags]",
		Short: "Verify a host's event log and TPM2 quote and judge its boot",
		Long: heredoc.Doc(`
			Replay the TCG event log, verify the TPM2 quote (TPMS_ATTEST, --quote) and its signature
			(TPMT_SIGNATURE, --signature) with the attestation key (--ak: a TPMT_PUBLIC, a PEM public
			key, or an AK certificate that must chain to --ak-roots), check that the quote carries
			the nonce and that the replayed log reproduces the quoted PCR digest, then judge the
			boot state with the attestation policy (--policy) and the boot components with the
			code integrity policy (--ci-policy).

			--format ear writes the result as an EAR (EAT Attestation Result, the IETF RATS format
			Veraison and Confidential Containers use): its JSON claims set, unsigned; with --ear-key,
			a JWT signed with that key (ES256, ES384 or ES512 for ECDSA P-256, P-384, P-521; PS256 for
			RSA; EdDSA for Ed25519), which a relying party can check. docs/attest.md ("EAR
			results") says which check sets which trustworthiness claim.

			Repeat --quote and --signature, in pairs, for quotes of several banks. --pcrs gives the
			PCR values read with the quote (YAML or JSON: bank, then PCR index, then hex): needed
			when the quote covers PCRs the log does not extend (PCR 10, measured by IMA).

			Exit status:
			  0  trusted: every check passed
			  1  not trusted: a check failed (the report says which and why)
			  2  unusable input: a file that cannot be read or parsed, a usage error
		`),
		Example: cmdutil.Example(heredoc.Doc(`
			$ csv attest verify --eventlog binary_bios_measurements --quote quote.bin \
			    --signature quote.sig --ak ak.pub --nonce 9c1f... --policy attest.yaml \
			    --ci-policy boot-ci.yaml
		`)),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.nonceGiven = cmd.Flags().Changed("nonce")
			if err := o.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return runVerify(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.EventLog, "eventlog", "", "the TCG event log `FILE` (binary_bios_measurements)")
	fl.StringArrayVar(&o.Quotes, "quote", nil, "a TPMS_ATTEST quote `FILE`; repeat with --signature for several")
	fl.StringArrayVar(&o.Signatures, "signature", nil, "the quote's TPMT_SIGNATURE `FILE`")
	fl.StringVar(&o.AK, "ak", "", "the attestation key `FILE`: TPMT_PUBLIC, PEM public key, or AK certificate")
	fl.StringArrayVar(&o.AKRoots, "ak-roots", nil, "trusted CA certificates `FILE` an AK certificate must chain to; repeatable")
	fl.StringArrayVar(&o.AKIntermediates, "ak-intermediates", nil, "intermediate CA certificates `FILE` for the AK certificate; repeatable")
	fl.StringVar(&o.Nonce, "nonce", "", "the nonce the quote must carry, in `HEX`")
	fl.StringVar(&o.PCRs, "pcrs", "", "PCR values read with the quote, `FILE` (YAML or JSON)")
	fl.StringVar(&o.Policy, "policy", "", "the attestation policy `FILE`")
	fl.StringArrayVar(&o.CIPolicies, "ci-policy", nil, "code integrity policy `FILE` (YAML or WDAC XML) judging the boot components; repeatable")
	fl.StringArrayVar(&o.CertFiles, "certs", nil, "root certificates `FILE` the code integrity policy's WDAC well-known root rules may match; repeatable")
	fl.StringVarP(&o.Format, "format", "f", "text", "report `FORMAT`: text, json or ear")
	fl.StringVar(&o.EARKey, "ear-key", "", "with --format ear, sign the EAR as a JWT with this private `KEY` (a PEM or PKCS#12 file, pkcs11: URI or KMS reference, as csv sign --key)")
	fl.BoolVar(&o.AllowSHA1, "allow-sha1-unsafe", false, "accept SHA-1 quotes and SHA1 PCR banks (TPMs and Windows that only have SHA1)")
	fl.BoolVar(&o.AllowEmptyNonce, "allow-empty-nonce-unsafe", false, "accept an empty --nonce (a replayable quote)")
	return cmd
}

func (o *VerifyOptions) check() error {
	for _, f := range []struct{ name, val string }{{"eventlog", o.EventLog}, {"ak", o.AK}, {"policy", o.Policy}} {
		if f.val == "" {
			return cmdutil.FlagErrorf("attest verify: --%s is required", f.name)
		}
	}
	switch {
	case len(o.Quotes) == 0:
		return cmdutil.FlagErrorf("attest verify: --quote is required")
	case len(o.Quotes) != len(o.Signatures):
		return cmdutil.FlagErrorf("attest verify: %d --quote and %d --signature: give them in pairs", len(o.Quotes), len(o.Signatures))
	case !o.nonceGiven:
		return cmdutil.FlagErrorf("attest verify: --nonce is required (the nonce the verifier asked the host to quote)")
	case o.Format != "text" && o.Format != "json" && o.Format != "ear":
		return cmdutil.FlagErrorf("attest verify: --format %q: want text, json or ear", o.Format)
	case o.EARKey != "" && o.Format != "ear":
		return cmdutil.FlagErrorf("attest verify: --ear-key signs an EAR: give --format ear")
	}
	if _, err := hex.DecodeString(o.Nonce); err != nil {
		return cmdutil.FlagErrorf("attest verify: --nonce %q is not hexadecimal", o.Nonce)
	}
	return nil
}

func readFile(what, path string, max int64) ([]byte, error) {
	b, err := cmdutil.ReadFileCapped(path, max)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s %s: %w", what, path, err)
	}
	return b, nil
}

func runVerify(ctx context.Context, o *VerifyOptions) error {
	ev := &attest.Evidence{}
	var err error
	var earKey crypto.Signer
	if o.EARKey != "" {
		var done func()
		if earKey, done, err = loadEARKey(ctx, o); err != nil {
			return err
		}
		defer done()
	}
	if ev.EventLog, err = readFile("event log", o.EventLog, maxEventLogFile); err != nil {
		return err
	}
	for i := range o.Quotes {
		q, err := readFile("quote", o.Quotes[i], maxQuoteFile)
		if err != nil {
			return err
		}
		s, err := readFile("signature", o.Signatures[i], maxQuoteFile)
		if err != nil {
			return err
		}
		ev.Quotes = append(ev.Quotes, attest.Quote{Attest: q, Signature: s})
	}
	if o.PCRs != "" {
		b, err := readFile("PCR values", o.PCRs, maxPCRsFile)
		if err != nil {
			return err
		}
		if ev.PCRs, err = attest.ParsePCRs(b); err != nil {
			return fmt.Errorf("PCR values %s: %w", o.PCRs, err)
		}
	}
	akData, err := readFile("attestation key", o.AK, maxAKFile)
	if err != nil {
		return err
	}
	ak, err := attest.ParseAK(akData)
	if err != nil {
		return fmt.Errorf("attestation key %s: %w", o.AK, err)
	}
	vopts := attest.VerifyOptions{AK: ak, AllowSHA1Unsafe: o.AllowSHA1, AllowEmptyNonceUnsafe: o.AllowEmptyNonce}
	vopts.Nonce, _ = hex.DecodeString(o.Nonce)
	if vopts.Roots, err = signing.LoadCertificateFiles(o.AKRoots); err != nil {
		return err
	}
	if vopts.Intermediates, err = signing.LoadCertificateFiles(o.AKIntermediates); err != nil {
		return err
	}
	pdata, err := readFile("attestation policy", o.Policy, maxPolicyFile)
	if err != nil {
		return err
	}
	dir := filepath.Dir(o.Policy)
	policy, err := attest.ParsePolicy(pdata, o.Policy, attest.PolicyOptions{ReadFile: func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, filepath.FromSlash(name))
		}
		return cmdutil.ReadFileCapped(name, maxDBXFile)
	}})
	if err != nil {
		return err
	}
	var set *cipolicy.Set
	switch {
	case len(o.CIPolicies) > 0:
		ps, err := cipolicy.LoadFiles(o.CIPolicies)
		if err != nil {
			return err
		}
		roots, err := signing.LoadCertificateFiles(o.CertFiles)
		if err != nil {
			return err
		}
		if set, err = cipolicy.NewSet(cipolicy.SetOptions{TrustedRoots: roots}, ps...); err != nil {
			return err
		}
	case policy.BootComponents == attest.JudgeCIPolicy:
		return cmdutil.FlagErrorf("attest verify: the attestation policy %s judges boot components (boot_components: %s, the default): give --ci-policy, or set boot_components: %s in the policy", o.Policy, attest.JudgeCIPolicy, attest.Ignore)
	}
	var res *attest.Result
	v, err := attest.Verify(ctx, ev, vopts)
	var ve *attest.VerificationError
	switch {
	case errors.As(err, &ve):
		res = attest.NotVerifiedResult(ve, policy)
	case err != nil:
		return err
	default:
		if res, err = attest.Evaluate(ctx, v, policy, set); err != nil {
			return err
		}
	}
	if o.Format == "ear" {
		err = renderEAR(o.IO.Out, res, o.Version, vopts.Nonce, earKey)
	} else {
		err = render(o.IO.Out, o.Format, res)
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if !res.Trusted {
		return cmdutil.ErrFailed
	}
	return nil
}

// loadEARKey loads --ear-key; done releases it (an HSM session). The
// password of an encrypted key file comes from $CSV_KEY_PASSWORD, or
// from the terminal.
func loadEARKey(ctx context.Context, o *VerifyOptions) (crypto.Signer, func(), error) {
	ref := keys.RedactKeyRef(o.EARKey)
	password := func() ([]byte, error) {
		if pw, ok := os.LookupEnv(keys.DefaultPasswordEnv); ok {
			return []byte(pw), nil
		}
		if o.IO.ReadPassword != nil {
			return o.IO.ReadPassword(fmt.Sprintf("csv: password for %s: ", textsafe.Escape(ref)))
		}
		return nil, fmt.Errorf("%w: %s is encrypted: give its password in $%s, or run csv on a terminal to be asked for it",
			keys.ErrNoPassword, ref, keys.DefaultPasswordEnv)
	}
	key, err := keys.LoadSigner(ctx, o.EARKey, keys.LoadOptions{Password: password})
	if err != nil {
		// Never the reference itself: a pkcs11: URI may carry the PIN.
		return nil, nil, fmt.Errorf("EAR signing key %s: %w", ref, err)
	}
	done := func() {}
	if c, ok := key.(interface{ Close() error }); ok {
		done = func() { c.Close() }
	}
	if _, err := attest.EARAlgorithm(key.Public()); err != nil {
		done()
		return nil, nil, fmt.Errorf("EAR signing key %s: %w", ref, err)
	}
	return key, done, nil
}

// renderEAR writes the result as an EAR: its JSON claims set, or, with a
// key, the JWT.
func renderEAR(w io.Writer, r *attest.Result, version string, nonce []byte, key crypto.Signer) error {
	build := "csv"
	if version != "" {
		build += " " + version
	}
	e, err := attest.NewEAR(r, attest.EAROptions{Build: build, Nonce: nonce})
	if err != nil {
		return err
	}
	if key != nil {
		tok, err := e.Sign(key, "")
		if err != nil {
			return err
		}
		_, err = w.Write(append(tok, '\n')) // base64url and dots only
		return err
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(textsafe.InertJSON(b), '\n'))
	return err
}

func render(w io.Writer, format string, r *attest.Result) error {
	if format == "json" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(textsafe.InertJSON(b), '\n'))
		return err
	}
	var b strings.Builder
	verdict := "TRUSTED"
	if !r.Trusted {
		verdict = "NOT TRUSTED"
	}
	textsafe.Linef(&b, "attestation: %s", verdict)
	if r.Policy != nil {
		textsafe.Linef(&b, "policy: %s (%s, sha256 %s)", r.Policy.Name, r.Policy.Source, r.Policy.SHA256)
	}
	for _, p := range r.CIPolicies {
		textsafe.Linef(&b, "code integrity policy: %s (%s, sha256 %s)", p.Name, p.Source, p.SHA256)
	}
	b.WriteString("checks:\n")
	for _, c := range r.Checks {
		textsafe.Linef(&b, "  %s", c)
	}
	if c := r.Claims; c != nil {
		b.WriteString("claims:\n")
		textsafe.Linef(&b, "  secureBootEnabled: %v", c.SecureBootEnabled)
		textsafe.Linef(&b, "  bootDebuggingDisabled: %v", c.BootDebuggingDisabled)
		for _, f := range []struct {
			name string
			v    *bool
		}{{"kernelDebuggingDisabled", c.KernelDebuggingDisabled}, {"codeIntegrityEnabled", c.CodeIntegrityEnabled}, {"testSigningDisabled", c.TestSigningDisabled}} {
			s := "n/a (no Windows boot)"
			if c.Boot != nil && c.Boot.WindowsProblem != "" {
				s = "unknown (the Windows boot configuration could not be read)"
			}
			if f.v != nil {
				s = strconv.FormatBool(*f.v)
			}
			textsafe.Linef(&b, "  %s: %s", f.name, s)
		}
		switch {
		case c.ActiveCIPolicies != nil:
			textsafe.Linef(&b, "  activeCiPolicies: %d", len(c.ActiveCIPolicies))
			for _, p := range c.ActiveCIPolicies {
				textsafe.Linef(&b, "    %q version %s %s %s", p.Name, p.Version, p.HashAlg, p.Digest)
			}
		case c.Boot != nil && c.Boot.WindowsProblem != "":
			textsafe.Linef(&b, "  activeCiPolicies: unknown (the Windows boot configuration could not be read)")
		default:
			textsafe.Linef(&b, "  activeCiPolicies: n/a (no Windows boot)")
		}
		for _, k := range c.KernelCmdlines {
			textsafe.Linef(&b, "  kernel command line: %s", k)
		}
		b.WriteString("  boot components:\n")
		for _, bc := range c.BootComponents {
			textsafe.Linef(&b, "    %-8s %s %q authenticode sha256 %s", bc.Verdict, bc.ID, bc.Name, orDash(bc.AuthenticodeSHA256))
			if bc.Reason != "" {
				textsafe.Linef(&b, "             %s", bc.Reason)
			}
		}
		for _, bank := range c.PCRs.Banks() {
			textsafe.Linef(&b, "  pcrs %s:", bank)
			for i := 0; i < eventlog.NumPCRs; i++ {
				if v := c.PCRs.Get(bank, i); v != nil {
					textsafe.Linef(&b, "    %2d: %x", i, v)
				}
			}
		}
		for _, u := range c.UnloggedPCRs {
			textsafe.Linef(&b, "  not in the log: %s", u)
		}
	}
	if len(r.Workarounds) > 0 {
		b.WriteString("workarounds:\n")
		for _, w := range r.Workarounds {
			where := ""
			if w.PCR != nil {
				where = fmt.Sprintf(" (%sPCR %d)", bankPrefix(w.Bank), *w.PCR)
			}
			textsafe.Linef(&b, "  %s%s: %s", w.Name, where, w.Description)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func bankPrefix(bank string) string {
	if bank == "" {
		return ""
	}
	return bank + " "
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
