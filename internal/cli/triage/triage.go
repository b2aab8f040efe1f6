// Package triage implements "csv triage".
package triage

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/triage"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/bundle"
	"github.com/codesignval/csv/signing/manifest"
)

// MediaType identifies the JSON report's schema (docs/triage.md).
const MediaType = "application/vnd.codesignval.csv.triage.v1+json"

// Options are the flags and arguments of csv triage.
type Options struct {
	IO        *cmdutil.IOStreams
	Events    []string
	Manifests []string
	CertFiles []string
	TSAFiles  []string
	Signers   []string
	Policies  []string
	Format    string
	Output    string
	// Now is the time manifests' chains are checked at (default
	// time.Now).
	Now func() time.Time
}

// NewCmdTriage returns the triage command.
func NewCmdTriage(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "triage [--manifest FILE --certs ROOTS [--signer ID]...]... [--policy FILE]... [flags] EVENTS...",
		Short: "Explain Code Integrity block events from Windows hosts",
		Long: heredoc.Doc(`
			Read the App Control (WDAC) block and audit events of Windows hosts (Code Integrity events
			3076 and 3077, with their 3089 signature events), exported with Get-WinEvent | ConvertTo-Json
			-Depth 4 or wevtutil qe /f:xml, and say what each blocked file is:

			  built       a build manifest (csv sign --manifest), verified as verify-manifest does, lists
			              the file's SHA-256: a false positive; the policy the event names is wrong or stale
			  old-policy  a current policy (--policy) allows the file: the host runs an older policy
			  unknown     neither: investigate it as a possible attack
			  error       the event cannot be read (reported, never dropped)

			A manifest must verify with a chain to --certs (and its signer be one of --signer's when
			given) and record a build that PASSED, or csv stops. The event's policy (name, id, GUID, hash)
			is compared with each --policy file. An allow by a signer rule rests on the signer the event
			reports, which csv cannot verify, and the report says so. See docs/triage.md.

			Exit status: 0 every event is explained (built or old-policy); 1 at least one event is
			unknown; 2 an event or export cannot be read (and none is unknown), or a usage, manifest or
			policy error.
		`),
		Example: cmdutil.Example(`
			# On the host (PowerShell): export the last day's events
			$ Get-WinEvent -FilterHashtable @{LogName='Microsoft-Windows-CodeIntegrity/Operational'; Id=3076,3077,3089; StartTime=(Get-Date).AddDays(-1)} | ConvertTo-Json -Depth 4 | Out-File events.json
			$ wevtutil qe Microsoft-Windows-CodeIntegrity/Operational /q:"*[System[(EventID=3076 or EventID=3077 or EventID=3089)]]" /f:xml > events.xml

			# Triage them against the build's manifest and the current policy
			$ csv triage --manifest build-manifest.json --certs roots.pem --signer cn:"Build Signing" --policy policy.xml events.json
		`),
		Args: cmdutil.ExactArgsAtLeast(1, "EVENTS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Events = args
			switch opts.Format {
			case "text", "json":
			default:
				return cmdutil.FlagErrorf("triage: --format %q: want text or json", opts.Format)
			}
			if len(opts.Manifests) == 0 && len(opts.Policies) == 0 {
				return cmdutil.FlagErrorf("triage: give --manifest or --policy (or both): without them every event is unknown")
			}
			if len(opts.Manifests) > 0 && len(opts.CertFiles) == 0 {
				return cmdutil.FlagErrorf("triage: --certs is required with --manifest: the root certificates the manifest signer must chain to")
			}
			for _, id := range opts.Signers {
				if err := manifest.CheckSignerID(id); err != nil {
					return cmdutil.FlagErrorf("triage: --%v", err)
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&opts.Manifests, "manifest", "m", nil, "a signed build manifest `FILE` (csv sign --manifest); repeatable")
	fl.StringArrayVar(&opts.CertFiles, "certs", nil, "root certificates `FILE` (PEM or DER) manifest signers must chain to; repeatable")
	fl.StringArrayVar(&opts.TSAFiles, "tsa-certs", nil, "root certificates `FILE` of trusted time-stamping authorities: check manifests' timestamps and their chains at that time; repeatable")
	fl.StringArrayVar(&opts.Signers, "signer", nil, "the manifest signer must be `ID`: cn:NAME, dns:NAME, email:ADDRESS, uri:URI or sha256:FINGERPRINT; repeatable (any of them)")
	fl.StringArrayVarP(&opts.Policies, "policy", "p", nil, "a current policy `FILE` (YAML or SiPolicy XML); repeatable")
	fl.StringVarP(&opts.Format, "format", "f", "text", "report `FORMAT`: text or json")
	fl.StringVarP(&opts.Output, "output", "o", "", "write the report to `FILE` instead of standard output")
	return cmd
}

// Run triages the events.
func Run(ctx context.Context, o *Options) error {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	manifests, err := loadManifests(o, now())
	if err != nil {
		return err
	}
	policies, err := loadPolicies(o.Policies)
	if err != nil {
		return err
	}
	t, err := triage.New(triage.Options{Manifests: manifests, Policies: policies, Now: now})
	if err != nil {
		return err
	}
	var logs []*triage.Log
	for _, path := range o.Events {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := safefile.ReadFile(path, limits.MaxEventFile)
		if err != nil {
			// An export that cannot be read is reported with the rest.
			logs = append(logs, &triage.Log{Errors: []*triage.EventError{{Source: path, Err: err}}})
			continue
		}
		l, err := triage.Parse(data, path)
		if err != nil {
			logs = append(logs, &triage.Log{Errors: []*triage.EventError{{Source: path, Err: unwrapMalformed(err, path)}}})
			continue
		}
		logs = append(logs, l)
	}
	all := triage.Merge(logs...)
	findings := t.TriageLog(all)

	var buf bytes.Buffer
	switch o.Format {
	case "json":
		err = writeJSON(&buf, all, findings, manifests, policies)
	default:
		writeText(&buf, all, findings)
	}
	if err != nil {
		return err
	}
	if o.Output != "" {
		if err := cmdutil.WriteFileAtomic(o.Output, buf.Bytes()); err != nil {
			return fmt.Errorf("cannot write %s: %w", o.Output, err)
		}
	} else if _, err := o.IO.Out.Write(buf.Bytes()); err != nil {
		return err
	}
	s := summarize(all, findings)
	switch {
	case s.Unknown > 0:
		return cmdutil.ErrFailed
	case s.Errors > 0:
		return fmt.Errorf("triage: %s could not be read: see the report", textsafe.Plural(s.Errors, "event or export", "events or exports"))
	}
	return nil
}

// unwrapMalformed drops the "triage: malformed event: SOURCE: " prefix of
// a whole-export error, which the report's error line (the EventError,
// itself ErrMalformed, naming the export) replaces.
func unwrapMalformed(err error, source string) error {
	msg := strings.TrimPrefix(err.Error(), triage.ErrMalformed.Error()+": ")
	msg = strings.TrimPrefix(msg, source+": ")
	return errors.New(msg)
}

func loadManifests(o *Options, now time.Time) ([]triage.Manifest, error) {
	if len(o.Manifests) == 0 {
		return nil, nil
	}
	roots, err := signing.LoadX509CertificateFiles(o.CertFiles)
	if err != nil {
		return nil, err
	}
	tsaRoots, err := signing.LoadX509CertificateFiles(o.TSAFiles)
	if err != nil {
		return nil, err
	}
	var out []triage.Manifest
	for _, path := range o.Manifests {
		data, err := cmdutil.ReadFileCapped(path, bundle.MaxDSSESize)
		if err != nil {
			return nil, fmt.Errorf("cannot read manifest %s: %w", path, err)
		}
		st, err := manifest.Verify(data, manifest.VerifyOptions{Roots: roots, TSARoots: tsaRoots, Now: now, Signers: o.Signers})
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", path, err)
		}
		if len(o.Signers) == 0 {
			fmt.Fprintf(o.IO.ErrOut, "csv: warning: no --signer pin: any certificate under the roots of --certs would be accepted for %s\n", path)
		}
		out = append(out, triage.Manifest{Source: path, Statement: st})
	}
	return out, nil
}

func loadPolicies(paths []string) ([]triage.PolicyFile, error) {
	var out []triage.PolicyFile
	var errs []error
	for _, path := range paths {
		data, err := safefile.ReadFile(path, limits.MaxPolicyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot read policy %s: %w", path, err))
			continue
		}
		p, err := cipolicy.ParseWith(data, path, cipolicy.ParseOptions{ReadFile: cipolicy.FileReader(path)})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, triage.PolicyFile{Policy: p, InfoID: triage.PolicyInfoID(data)})
	}
	return out, errors.Join(errs...)
}

// Summary counts the findings.
type Summary struct {
	Events           int `json:"events"`
	Unknown          int `json:"unknown"`
	OldPolicy        int `json:"old_policy"`
	Built            int `json:"built"`
	Errors           int `json:"errors"`
	OrphanSignatures int `json:"orphan_signatures"`
	Skipped          int `json:"skipped"`
}

func summarize(l *triage.Log, fs []triage.Finding) Summary {
	s := Summary{Events: len(l.Events), OrphanSignatures: l.Orphans, Skipped: l.Other}
	for _, f := range fs {
		switch f.Class {
		case triage.ClassUnknown:
			s.Unknown++
		case triage.ClassOldPolicy:
			s.OldPolicy++
		case triage.ClassBuilt:
			s.Built++
		case triage.ClassError:
			s.Errors++
		}
	}
	return s
}

// jsonFinding is one finding in the JSON report.
type jsonFinding struct {
	triage.Finding
	Event *triage.Event `json:"event,omitempty"`
	Error *jsonError    `json:"error,omitempty"`
}

type jsonError struct {
	Source  string `json:"source"`
	Index   int    `json:"index"`
	ID      int    `json:"id,omitempty"`
	Message string `json:"message"`
}

type jsonManifest struct {
	Source string `json:"source"`
	Signer string `json:"signer"`
	Build  string `json:"build"`
	Files  int    `json:"files"`
}

type jsonPolicy struct {
	Source  string `json:"source"`
	Name    string `json:"name"`
	ID      string `json:"id"`
	InfoID  string `json:"info_id,omitempty"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256"`
}

func writeJSON(w io.Writer, l *triage.Log, fs []triage.Finding, ms []triage.Manifest, ps []triage.PolicyFile) error {
	doc := struct {
		MediaType string         `json:"media_type"`
		Summary   Summary        `json:"summary"`
		Manifests []jsonManifest `json:"manifests"`
		Policies  []jsonPolicy   `json:"policies"`
		Findings  []jsonFinding  `json:"findings"`
	}{MediaType: MediaType, Summary: summarize(l, fs), Manifests: []jsonManifest{}, Policies: []jsonPolicy{}, Findings: []jsonFinding{}}
	for _, m := range ms {
		doc.Manifests = append(doc.Manifests, jsonManifest{Source: m.Source, Signer: signing.NameString(m.Statement.Chain[0].Subject),
			Build: m.Statement.Predicate.ResourceURI, Files: len(m.Statement.Subject)})
	}
	for _, p := range ps {
		doc.Policies = append(doc.Policies, jsonPolicy{Source: p.Policy.Source, Name: p.Policy.Name, ID: p.Policy.ID, InfoID: p.InfoID,
			Version: p.Policy.Version, SHA256: hex.EncodeToString(p.Policy.SHA256[:])})
	}
	for _, f := range fs {
		jf := jsonFinding{Finding: f, Event: f.Event}
		if f.Error != nil {
			jf.Error = &jsonError{Source: f.Error.Source, Index: f.Error.Index, ID: f.Error.ID, Message: f.Error.Err.Error()}
		}
		doc.Findings = append(doc.Findings, jf)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(textsafe.InertJSON(b), '\n'))
	return err
}

var classLabel = map[triage.Class]string{
	triage.ClassError:     "ERROR",
	triage.ClassUnknown:   "UNKNOWN",
	triage.ClassOldPolicy: "OLD POLICY",
	triage.ClassBuilt:     "BUILT",
}

// writeText writes one block per finding, most severe first, for a
// person on call. Every string from an event is escaped (textsafe): an
// export is untrusted.
func writeText(w io.Writer, l *triage.Log, fs []triage.Finding) {
	for _, f := range fs {
		if f.Error != nil {
			textsafe.Linef(w, "ERROR  %s", f.Error.Error())
			textsafe.Linef(w, "  reason: %s", f.Reason)
			fmt.Fprintln(w)
			continue
		}
		e := f.Event
		kind := "audit (3076)"
		if e.Enforced() {
			kind = "block (3077)"
		}
		head := fmt.Sprintf("%s  %s", classLabel[f.Class], kind)
		if !e.Time.IsZero() {
			head += "  " + e.Time.Format(time.RFC3339)
		}
		if e.Computer != "" {
			head += "  host " + e.Computer
		}
		textsafe.Linef(w, "%s", head)
		textsafe.Linef(w, "  file: %s", textsafe.Quote(e.Path))
		if e.ProcessName != "" {
			textsafe.Linef(w, "  process: %s", textsafe.Quote(triage.ReadablePath(e.ProcessName)))
		}
		if e.SHA256FlatHash != nil {
			textsafe.Linef(w, "  sha256 (file): %X", e.SHA256FlatHash)
		}
		if e.SHA256Hash != nil {
			textsafe.Linef(w, "  sha256 (authenticode): %X", e.SHA256Hash)
		}
		if e.OriginalFileName != "" || e.ProductName != "" || e.FileVersion != "" {
			textsafe.Linef(w, "  version resource (reported): %s, product %s, version %s", textsafe.Quote(e.OriginalFileName), textsafe.Quote(e.ProductName), textsafe.Quote(e.FileVersion))
		}
		for _, s := range e.Signatures {
			textsafe.Linef(w, "  signature #%d of %d (reported): publisher %s, issuer %s", s.Number, s.TotalSignatureCount, textsafe.Quote(s.PublisherName), textsafe.Quote(s.IssuerName))
		}
		pol := []string{}
		if e.PolicyName != "" {
			pol = append(pol, textsafe.Quote(e.PolicyName))
		}
		if e.PolicyID != "" {
			pol = append(pol, "id "+textsafe.Quote(e.PolicyID))
		}
		if e.PolicyGUID != "" {
			pol = append(pol, "guid {"+e.PolicyGUID+"}")
		}
		if e.PolicyHash != nil {
			pol = append(pol, fmt.Sprintf("hash %X", e.PolicyHash))
		}
		if len(pol) > 0 {
			textsafe.Linef(w, "  host policy: %s", strings.Join(pol, ", "))
		}
		for _, m := range f.Policies {
			if m.Match == "none" {
				continue
			}
			line := fmt.Sprintf("  given policy %s (%s", m.Source, textsafe.Quote(m.Name))
			if m.Version != "" {
				line += ", version " + m.Version
			}
			if m.InfoID != "" {
				line += ", id " + textsafe.Quote(m.InfoID)
			}
			textsafe.Linef(w, "%s): %s", line, matchText(m.Match))
		}
		textsafe.Linef(w, "  reason: %s", f.Reason)
		fmt.Fprintln(w)
	}
	s := summarize(l, fs)
	line := fmt.Sprintf("triage: %s: %d unknown, %d old policy, %d built, %d unreadable", textsafe.Plural(s.Events, "event", "events"), s.Unknown, s.OldPolicy, s.Built, s.Errors)
	if s.OrphanSignatures > 0 {
		line += fmt.Sprintf("; %s without its 3076/3077 event", textsafe.Plural(s.OrphanSignatures, "3089 event", "3089 events"))
	}
	fmt.Fprintln(w, line)
}

func matchText(m string) string {
	switch m {
	case "same-guid-same-id":
		return "the policy the event names (same GUID and PolicyInfo Id; its hash, over the binary policy, cannot be compared)"
	case "same-guid-other-id":
		return "the same policy GUID with another PolicyInfo Id: the host runs another version of it"
	case "same-guid":
		return "the same policy GUID (it sets no PolicyInfo Id to compare versions by)"
	case "same-name":
		return "the same name only, another GUID"
	}
	return m
}
