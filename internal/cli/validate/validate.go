// Package validate implements "csv validate".
package validate

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/codesignval/csv/signing/dmverity"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/csv/report"
	"github.com/codesignval/csv/csv/suppress"
	"github.com/codesignval/csv/internal/cli/cilog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/cli/sign"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
)

// Options are the flags and arguments of csv validate.
type Options struct {
	IO      *cmdutil.IOStreams
	Version string

	PolicyFiles     []string
	Mode            string
	Scenario        string
	Format          string
	Output          string
	Jobs            int
	Include         []string
	Exclude         []string
	FollowSymlinks  bool
	FailIfNoTargets bool
	Verbose         bool
	SARIFPasses     bool
	AllDigests      bool
	Containers      cmdutil.ContainerFlags
	Memory          cmdutil.MemoryLimit
	Quiet           bool
	CertFiles       []string
	Catalogs        []string
	Shard           string
	// SuppressionFiles are --suppressions; FailOnUnusedSuppressions is
	// --fail-on-unused-suppressions.
	SuppressionFiles         []string
	FailOnUnusedSuppressions bool
	// IPEBootVerified ("true", "false" or "") and IPEOp are what IPE
	// policies need to know of the host (cipolicy.IPEOptions).
	IPEBootVerified string
	IPEOp           string
	// VeritySalt ("" none given, "-" an empty salt) and the block sizes
	// are the dm-verity parameters images without a hash device are
	// hashed with.
	VeritySalt                       string
	VerityDataBlock, VerityHashBlock int
	Sign                             bool
	SignFlags                        sign.Flags
	// GitHub is --github (annotations and the job summary), SARIFRoot
	// --sarif-root.
	GitHub    cilog.GitHubFlag
	SARIFRoot string
	// FactsFiles are --facts (judged instead of PATHs); Record is
	// --record, Origin --origin (docs/facts.md).
	FactsFiles []string
	Record     string
	Origin     string
	Paths      []string
}

// NewCmdValidate returns the validate command. runF, if not nil, replaces
// the run function (for tests of flag parsing).
func NewCmdValidate(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Version: f.Version}
	cmd := &cobra.Command{
		Use:   "validate --policy FILE... [flags] (PATH... | --facts FILE...)",
		Short: "Check every binary and script under PATH against a code integrity policy",
		Long: heredoc.Doc(`
			Walk each PATH (files or directories, recursively, in a deterministic order) and judge
			every binary (PE, ELF, installers, catalogs, filesystem images: recognised by content),
			every script (PowerShell, Windows Script Host: by extension) and every member of the
			archives, packages and images among them, with the code integrity policy: a deny rule
			that matches blocks it; otherwise a matching allow rule admits it; a binary that
			matches nothing, or cannot be read or parsed, is blocked (docs/formats.md).

			Several --policy files combine as Windows does: every base policy must allow a binary,
			and supplemental policies add allow rules to their base. A Linux IPE policy is judged
			as the kernel judges it, first matching rule wins (docs/linux.md): say whether the
			files come from the verified initramfs with --ipe-boot-verified if it reads boot_verified.

			With --sign, a build where every binary passes is then signed (see csv sign --help);
			a build with any blocked file is not signed at all.

			Each blocked file is named on standard error with its reason and rule id
			(BLOCKED path: reason (rule id); WOULD BLOCK in audit mode), the first 50, whatever
			--format and --output say; a text report on standard output lists them itself. Under
			GitHub Actions (GITHUB_ACTIONS=true) csv also writes an error annotation per blocked
			file and a job summary (GITHUB_STEP_SUMMARY); --github off turns them off
			(docs/reports.md).

			With --record FILE, the facts of every file (every digest, every signature as it
			verified, with its chain) are written to FILE as the files are judged, in the same read
			(FILE.gz: compressed): csv validate --facts FILE then judges them with any policy,
			without the files, to the verdicts judging the files gives (docs/facts.md). Several
			--facts files combine; each result keeps the --origin its file was recorded with,
			shown as ORIGIN:PATH.

			With --suppressions, a blocked binary that an entry of a suppressions file covers
			(docs/suppressions.md) is reported as suppressed, with the entry's justification, and
			does not fail the run; it stays blocked in every report, and --sign signs nothing
			while anything is blocked. An expired suppression fails the run.

			Exit status:
			  0  nothing blocked (or the policy only audits, or every blocked binary is
			     suppressed); with --sign: signed
			  1  at least one binary blocked in enforce mode and not suppressed, no binaries
			     found with --fail-if-no-targets, an expired suppression, or an unused one with
			     --fail-on-unused-suppressions; with --sign: anything blocked, so nothing signed
			  2  usage, policy or configuration error: nothing was judged
		`),
		Example: cmdutil.Example(heredoc.Doc(`
			# fail the job if anything in out/ would be blocked
			$ csv validate --policy policy.yaml out/

			# SARIF for code scanning, audit only
			$ csv validate --policy policy.yaml --mode audit --format sarif --output csv.sarif out/

			# record the build's facts while validating it, then judge them with a new policy
			$ csv validate --policy policy.yaml --record build.facts.gz --origin build-42 out/
			$ csv validate --policy next.xml --facts build.facts.gz
		`)),
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVarP(&opts.PolicyFiles, "policy", "p", nil, "policy `FILE` (YAML, WDAC SiPolicy XML or Linux IPE text); repeat for several")
	fl.StringVar(&opts.Mode, "mode", "", "override the policies' `MODE`: enforce or audit")
	fl.StringVar(&opts.Scenario, "scenario", "user", "`SCENARIO` the binaries run in: user or kernel")
	fl.StringVarP(&opts.Format, "format", "f", "text", "report `FORMAT`: text, json, sarif or junit")
	fl.StringVarP(&opts.Output, "output", "o", "", "write the report to `FILE` instead of standard output")
	fl.IntVarP(&opts.Jobs, "jobs", "j", 0, "inspect `N` files at once (default: the number of CPUs)")
	fl.StringArrayVar(&opts.Include, "include", nil, "judge only files matching this path `GLOB` (** matches directories); repeatable")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "skip files and directories matching this path `GLOB`; repeatable")
	fl.BoolVar(&opts.FollowSymlinks, "follow-symlinks", false, "follow symbolic links (never out of the given paths)")
	fl.BoolVar(&opts.FailIfNoTargets, "fail-if-no-targets", false, "exit 1 if no binary or script is found")
	fl.BoolVarP(&opts.Verbose, "verbose", "v", false, "text report: list every file, not only blocked ones")
	fl.BoolVar(&opts.SARIFPasses, "sarif-passes", false, "SARIF report: add a CodeSign.MatchingPolicy result for every allowed file")
	fl.StringVar(&opts.SARIFRoot, "sarif-root", "", "SARIF report: locate files relative to this `DIR` (the repository's checkout; uriBaseId %SRCROOT%) so that code scanning shows them (default: $GITHUB_WORKSPACE under GitHub Actions)")
	opts.GitHub.Register(fl)
	fl.BoolVar(&opts.AllDigests, "all-digests", false, "compute every digest for the report, not only those the policy compares")
	fl.BoolVarP(&opts.Quiet, "quiet", "q", false, "no progress or summary on standard error")
	fl.StringVar(&opts.Shard, "shard", "", "judge only shard `i/n` of the files (split a build across CI jobs; combine the JSON reports with csv report merge)")
	fl.BoolVar(&opts.Sign, "sign", false, "if every binary passes, sign them (see csv sign); nothing is signed otherwise")
	opts.SignFlags.Register(fl, " (with --sign)")
	opts.Containers.Register(fl)
	opts.Memory.Register(fl)
	fl.StringArrayVar(&opts.Catalogs, "catalog", nil, "security catalog `FILE` (.cat) whose members count as signed by its signer, beside the *.cat files under PATH; it must verify; repeatable")
	fl.StringVar(&opts.IPEBootVerified, "ipe-boot-verified", "", "IPE policies: whether the host reads the files from the initramfs its boot loader verified (boot_verified): `true|false`; required by a policy that reads boot_verified")
	fl.StringVar(&opts.VeritySalt, "verity-salt", "", "hash filesystem images without a hash device (IMAGE.verity) beside them as veritysetup format does with this salt (`HEX`, or - for none): their root hash is their dmverity_sha256")
	fl.IntVar(&opts.VerityDataBlock, "verity-data-block-size", 4096, "with --verity-salt: the data block size in `BYTES`")
	fl.IntVar(&opts.VerityHashBlock, "verity-hash-block-size", 4096, "with --verity-salt: the hash block size in `BYTES`")
	fl.StringVar(&opts.IPEOp, "ipe-op", "", "IPE policies: judge every file under this `OP` (EXECUTE, FIRMWARE, KMODULE, KEXEC_IMAGE, KEXEC_INITRAMFS, POLICY, X509_CERT) instead of EXECUTE, or KMODULE for kernel modules")
	fl.StringArrayVar(&opts.SuppressionFiles, "suppressions", nil, "suppressions `FILE` (csv's YAML or Guardian's .gdnsuppress): blocked binaries an entry covers are reported as suppressed and do not fail the run; repeatable")
	fl.BoolVar(&opts.FailOnUnusedSuppressions, "fail-on-unused-suppressions", false, "exit 1 if a suppression matched no finding (a warning otherwise)")
	fl.StringArrayVar(&opts.FactsFiles, "facts", nil, "judge the files recorded in this facts `FILE` (csv validate --record, csv inspect --format facts) instead of PATHs; repeatable")
	fl.StringVar(&opts.Record, "record", "", "also write every file's facts to `FILE` (gzip-compressed if it ends in .gz), for csv validate --facts")
	fl.StringVar(&opts.Origin, "origin", "", "with --record: the `NAME` of where the facts are recorded (default: the host name)")
	fl.StringArrayVar(&opts.CertFiles, "certs", nil, "certificates `FILE` (PEM or DER) completing chains: intermediates, roots, ELF signers; roots here are trusted for WDAC well-known root rules; repeatable")
	return cmd
}

func (o *Options) check() error {
	if len(o.PolicyFiles) == 0 {
		return cmdutil.FlagErrorf("validate: --policy is required")
	}
	if err := o.checkFacts(); err != nil {
		return err
	}
	switch o.Mode {
	case "", string(cipolicy.Enforce), string(cipolicy.Audit):
	default:
		return cmdutil.FlagErrorf("validate: --mode %q: want enforce or audit", o.Mode)
	}
	switch o.Scenario {
	case string(cipolicy.ScenarioUser), string(cipolicy.ScenarioKernel):
	default:
		return cmdutil.FlagErrorf("validate: --scenario %q: want user or kernel", o.Scenario)
	}
	switch o.IPEBootVerified {
	case "", "true", "false":
	default:
		return cmdutil.FlagErrorf("validate: --ipe-boot-verified %q: want true or false", o.IPEBootVerified)
	}
	if o.IPEOp != "" {
		if _, err := cipolicy.ParseIPEOp(o.IPEOp); err != nil {
			return cmdutil.FlagErrorf("validate: --ipe-op: %v", err)
		}
	}
	if !report.IsFormat(o.Format) {
		return cmdutil.FlagErrorf("validate: --format %q: want %s", o.Format, strings.Join(report.Formats, ", "))
	}
	if err := o.Memory.Check("validate"); err != nil {
		return err
	}
	if o.VeritySalt != "" {
		if _, err := o.verityParams(); err != nil {
			return cmdutil.FlagErrorf("validate: %v", err)
		}
	}
	if o.Jobs < 0 {
		return cmdutil.FlagErrorf("validate: --jobs %d: want a positive number", o.Jobs)
	}
	if o.FailOnUnusedSuppressions && len(o.SuppressionFiles) == 0 {
		return cmdutil.FlagErrorf("validate: --fail-on-unused-suppressions needs --suppressions")
	}
	if o.SARIFPasses && o.Format != "sarif" {
		return cmdutil.FlagErrorf("validate: --sarif-passes needs --format sarif")
	}
	if o.SARIFRoot != "" && o.Format != "sarif" {
		return cmdutil.FlagErrorf("validate: --sarif-root needs --format sarif")
	}
	if err := o.GitHub.Check("validate"); err != nil {
		return &cmdutil.FlagError{Err: err}
	}
	if o.Shard != "" {
		if _, err := csv.ParseShard(o.Shard); err != nil {
			return cmdutil.FlagErrorf("validate: --shard: %v", err)
		}
		if o.Sign {
			return cmdutil.FlagErrorf("validate: --sign signs a whole build: it cannot be used with --shard")
		}
	}
	if o.Sign {
		if err := o.SignFlags.Check("validate --sign"); err != nil {
			return err
		}
	} else if o.SignFlags != (sign.Flags{}) {
		return cmdutil.FlagErrorf("validate: signing flags (--key, --cert, --out, --bundle, --manifest, ...) need --sign")
	}
	return nil
}

// checkFacts checks the arguments and the flags that --facts and --record
// allow.
func (o *Options) checkFacts() error {
	if len(o.FactsFiles) == 0 {
		if len(o.Paths) == 0 {
			return cmdutil.FlagErrorf("validate: missing PATH to validate (or --facts FILE)")
		}
		if o.Origin != "" && o.Record == "" {
			return cmdutil.FlagErrorf("validate: --origin needs --record")
		}
		return nil
	}
	switch {
	case len(o.Paths) > 0:
		return cmdutil.FlagErrorf("validate: --facts judges recorded facts: give no PATH")
	case o.Record != "" || o.Origin != "":
		return cmdutil.FlagErrorf("validate: --record and --origin record files: they cannot be used with --facts")
	case o.Sign:
		return cmdutil.FlagErrorf("validate: --sign signs files: it cannot be used with --facts")
	case len(o.Include) > 0 || len(o.Exclude) > 0 || o.FollowSymlinks || o.Shard != "" || len(o.Catalogs) > 0 || o.VeritySalt != "" || o.AllDigests:
		return cmdutil.FlagErrorf("validate: --include, --exclude, --follow-symlinks, --shard, --catalog, --verity-salt and --all-digests choose or read files: they cannot be used with --facts")
	}
	return nil
}

// ipeOptions are the IPE flags as cipolicy takes them (checked by check).
func (o *Options) ipeOptions() cipolicy.IPEOptions {
	var io cipolicy.IPEOptions
	if o.IPEBootVerified != "" {
		b := o.IPEBootVerified == "true"
		io.BootVerified = &b
	}
	io.Op = cipolicy.IPEOp(o.IPEOp)
	return io
}

// Run validates and writes the report.
func Run(ctx context.Context, o *Options) error {
	policies, err := cipolicy.LoadFiles(o.PolicyFiles)
	if err != nil {
		return err
	}
	if !o.Quiet {
		for _, p := range policies {
			if inert := p.Inert(); len(inert) > 0 {
				deny := 0
				for _, r := range inert {
					if r.Action == cipolicy.Deny {
						deny++
					}
				}
				textsafe.Linef(o.IO.ErrOut, "csv: warning: policy %s: %d rules (%d of them deny rules) cannot be judged from a file and never match: run csv policy lint %s",
					textsafe.Quote(p.Ref()), len(inert), deny, p.Source)
			}
		}
	}
	certs, err := signing.LoadCertificateFiles(o.CertFiles)
	if err != nil {
		return err
	}
	sups, err := o.suppressions()
	if err != nil {
		return err
	}
	if o.Sign {
		// A non-empty --out is refused before the build is validated.
		if err := o.SignFlags.CheckOut("validate --sign"); err != nil {
			return err
		}
		// What an earlier csv sign that was killed left is finished or
		// undone first, so that the tree validated is the tree signed.
		if err := o.SignFlags.Recover(ctx, o.IO, o.Paths); err != nil {
			return err
		}
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{Mode: cipolicy.Mode(o.Mode), TrustedRoots: certs, IPE: o.ipeOptions()}, policies...)
	if err != nil {
		return err
	}
	vopts := csv.Options{
		Jobs: o.Jobs, Scenario: cipolicy.Scenario(o.Scenario), Include: o.Include, Exclude: o.Exclude,
		FollowSymlinks: o.FollowSymlinks, AllDigests: o.AllDigests || o.Record != "", Certificates: certs, SignCheck: o.Sign,
		Catalogs: o.Catalogs, ContainerLimits: o.Containers.Limits(), Suppressions: sups,
	}
	if o.Shard != "" {
		vopts.Shard, _ = csv.ParseShard(o.Shard) // checked above
	}
	if o.VeritySalt != "" {
		vopts.Verity, _ = o.verityParams() // checked above
	}
	var prog *progress
	if o.IO.ErrTTY && !o.Quiet {
		prog = &progress{io: o.IO}
		vopts.Progress = prog.update
	}
	v, err := csv.NewValidator(set, vopts)
	if err != nil {
		return cmdutil.FlagErrorf("validate: %v", err)
	}
	o.Memory.Apply()
	gh := o.GitHub.Resolve(os.Getenv)
	ropts := report.Options{Verbose: o.Verbose, SARIFPasses: o.SARIFPasses, ToolVersion: o.Version,
		FailIfNoTargets: o.FailIfNoTargets, ModeOverride: cipolicy.Mode(o.Mode), SARIFRoot: o.SARIFRoot,
		FailOnUnusedSuppressions: o.FailOnUnusedSuppressions}
	if ropts.SARIFRoot == "" && gh != nil {
		ropts.SARIFRoot = gh.Workspace
	}
	// The report is written as the run decides it (report.NewSink), to
	// the output at the end of the run: nothing of an interrupted run, and
	// --output is renamed into place whole. --sign needs every binary's
	// digests: that run keeps its results.
	var out reportOutput = &stdout{w: bufio.NewWriter(o.IO.Out)}
	if o.Output != "" {
		out = &atomicFile{path: o.Output}
	}
	defer out.abort()
	rs, err := report.NewSink(o.Format, ropts, out)
	if err != nil {
		return err
	}
	sink := &runSink{report: rs, format: o.Format, keep: o.Sign, end: prog.clear}
	if os.Getenv("GOGC") == "" {
		// What a file's judging allocates is garbage once its result is
		// written, and the live heap is the reorder window (or the facts
		// judging window): collect at three (five) times it rather than
		// twice; the --memory-limit still bounds the heap. 100,000 small
		// files: 10% less CPU, peak RSS 65 to 76 MiB; 300,000 facts
		// records: 20% less, 57 to 79 MiB (docs/performance.md).
		pct := runGCPercent
		if len(o.FactsFiles) > 0 {
			pct = factsGCPercent
		}
		defer debug.SetGCPercent(debug.SetGCPercent(pct))
	}
	var rec *recording
	switch {
	case len(o.FactsFiles) > 0:
		err = v.ValidateFacts(ctx, sink, o.FactsFiles...)
	case o.Record != "":
		if rec, err = o.startRecording(); err != nil {
			return err
		}
		defer rec.abort()
		err = v.ValidateTo(ctx, &csv.FactsRecorder{W: rec.w, Next: sink}, o.Paths...)
	default:
		err = v.ValidateTo(ctx, sink, o.Paths...)
	}
	prog.clear()
	if err == nil && rec != nil {
		if err = rec.commit(); err != nil {
			return fmt.Errorf("writing the facts to %s: %w", o.Record, err)
		}
	}
	if err != nil {
		var ie *csv.InterruptedError
		if errors.As(err, &ie) {
			return fmt.Errorf("%w (no report written)", err)
		}
		return err
	}
	if err := out.commit(); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	rep := sink.rep
	noTargets := o.FailIfNoTargets && rep.Summary.Files == 0
	ropts.FailedNoTargets = noTargets
	o.log(rep, ropts, sink, gh)
	if report.Fails(rep, ropts, sink.failing) {
		if o.Sign {
			fmt.Fprintln(o.IO.ErrOut, "csv: not signing: the build does not pass")
		}
		return cmdutil.ErrFailed
	}
	if o.Sign {
		if rep.Summary.Suppressed > 0 {
			fmt.Fprintf(o.IO.ErrOut, "csv: not signing: %d binaries are blocked, suppressed (csv signs only a build whose every binary the policy allows)\n", rep.Summary.Suppressed)
			return cmdutil.ErrFailed
		}
		if rep.Summary.Blocked > 0 {
			fmt.Fprintf(o.IO.ErrOut, "csv: not signing: %s would be blocked under enforcement\n", textsafe.Plural(rep.Summary.Blocked, "binary", "binaries"))
			return cmdutil.ErrFailed
		}
		return o.SignFlags.Sign(ctx, o.IO, o.Version, rep, vopts, o.Quiet, o.Paths)
	}
	return nil
}

// log writes the run's outcome and its blocked files to standard error
// (cilog), and under GitHub Actions the annotations and the job summary.
// A text report on standard output already says it all: the lines are not
// repeated there.
func (o *Options) log(rep *csv.Report, ropts report.Options, sink *runSink, gh *cilog.GitHub) {
	textOnStdout := o.Format == "text" && o.Output == ""
	verdict := report.VerdictOf(rep, ropts, sink.failing)
	failed := report.Fails(rep, ropts, sink.failing)
	if !textOnStdout && !o.Quiet {
		fmt.Fprintln(o.IO.ErrOut, report.SummaryLine(rep))
	}
	if !o.Quiet {
		report.WriteSuppressionDiagnostics(o.IO.ErrOut, rep, ropts)
	}
	command := "csv validate"
	if o.Shard != "" {
		command += " --shard " + o.Shard
	}
	w := cilog.Writer{ErrOut: o.IO.ErrOut, Lines: !textOnStdout && (!o.Quiet || failed), GitHub: gh}
	err := w.Write(&sink.findings, cilog.Outcome{Command: command, Failed: failed, Verdict: verdict,
		Files: rep.Summary.Files, Allowed: rep.Summary.Allowed, Blocked: rep.Summary.Blocked, Skipped: rep.Summary.Skipped,
		Policies: cilog.PoliciesOf(rep.Policies), Report: o.Output})
	if !textOnStdout && !o.Quiet {
		fmt.Fprintln(o.IO.ErrOut, verdict)
		if o.Output != "" {
			textsafe.Linef(o.IO.ErrOut, "csv: %s report written to %s", o.Format, o.Output)
		}
	}
	if err != nil {
		textsafe.Linef(o.IO.ErrOut, "csv: warning: %v", err)
	}
}

// runSink passes the run on to the report's sink, counts the binaries that
// fail the run, and keeps the results when signing needs them. At End, rep
// is the run's Report (with its results if kept).
type runSink struct {
	report   csv.Sink
	format   string
	keep     bool
	end      func() // called before the report is written
	failing  int
	findings cilog.Findings
	results  []csv.Result
	rep      *csv.Report
}

func (s *runSink) Begin(rep *csv.Report) error { return s.report.Begin(rep) }

func (s *runSink) Result(r *csv.Result) error {
	if r.Fails() {
		s.failing++
	}
	s.findings.AddResult(r)
	if s.keep {
		s.results = append(s.results, *r)
	}
	return s.report.Result(r)
}

func (s *runSink) Skipped(f *csv.SkippedFile) error { return s.report.Skipped(f) }

func (s *runSink) End(rep *csv.Report) error {
	s.end()
	if err := s.report.End(rep); err != nil {
		return fmt.Errorf("writing the %s report: %w", s.format, err)
	}
	rep.Results = s.results
	s.rep = rep
	return nil
}

// recording is --record: the facts file, written beside its place and
// renamed into place once the run is whole.
type recording struct {
	f *cmdutil.AtomicFile
	w *facts.Writer
}

// startRecording creates --record and writes its header.
func (o *Options) startRecording() (*recording, error) {
	origin := o.Origin
	if origin == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--record: the host name, the default --origin: %w", err)
		}
		origin = h
	}
	f, err := cmdutil.CreateAtomic(o.Record)
	if err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	w, err := facts.NewWriter(f, facts.NewHeader(origin, "csv "+o.Version, time.Now()), facts.WriterOptions{Gzip: strings.HasSuffix(o.Record, ".gz")})
	if err != nil {
		f.Abort()
		return nil, fmt.Errorf("--record: %w", err)
	}
	return &recording{f: f, w: w}, nil
}

func (r *recording) commit() error {
	if err := r.w.Close(); err != nil {
		return err
	}
	return r.f.Commit()
}

func (r *recording) abort() { r.f.Abort() }

// reportOutput is where the report goes: written at the end of a run,
// then committed, or abandoned if the run fails.
type reportOutput interface {
	io.Writer
	commit() error
	abort()
}

// stdout is standard output, buffered.
type stdout struct{ w *bufio.Writer }

func (s *stdout) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *stdout) commit() error               { return s.w.Flush() }
func (s *stdout) abort()                      {}

// atomicFile is --output: a temporary file next to it, renamed into place
// once the report is whole (cmdutil.CreateAtomic, made at the first
// write: a device or a named pipe is written to directly).
type atomicFile struct {
	path string
	f    *cmdutil.AtomicFile
}

func (a *atomicFile) Write(p []byte) (int, error) {
	if a.f == nil {
		f, err := cmdutil.CreateAtomic(a.path)
		if err != nil {
			return 0, err
		}
		a.f = f
	}
	return a.f.Write(p)
}

func (a *atomicFile) commit() error {
	if a.f == nil {
		if _, err := a.Write(nil); err != nil {
			return err
		}
	}
	f := a.f
	a.f = nil
	return f.Commit()
}

func (a *atomicFile) abort() {
	if a.f != nil {
		a.f.Abort()
		a.f = nil
	}
}

// progress prints "judged N/M files" on a terminal, at most ten times a
// second.
type progress struct {
	io    *cmdutil.IOStreams
	mu    sync.Mutex
	last  time.Time
	shown bool
}

func (p *progress) update(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || done == total {
		p.last = now
		p.shown = true
		fmt.Fprintf(p.io.ErrOut, "\rcsv: judged %d/%d files", done, total)
	}
}

func (p *progress) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.io.ErrOut, "\r\033[K")
		p.shown = false
	}
}

// verityParams are the dm-verity parameters --verity-salt and the block
// size flags say, checked as a tree would use them.
func (o *Options) verityParams() (*dmverity.Params, error) {
	p := &dmverity.Params{DataBlockSize: o.VerityDataBlock, HashBlockSize: o.VerityHashBlock}
	if o.VeritySalt != "-" {
		salt, err := hex.DecodeString(o.VeritySalt)
		if err != nil || len(salt) == 0 {
			return nil, fmt.Errorf("--verity-salt %q: want hexadecimal bytes, or - for no salt", o.VeritySalt)
		}
		p.Salt = salt
	}
	if _, err := dmverity.NewLayout(*p, 1); err != nil {
		return nil, fmt.Errorf("--verity-*: %v", err)
	}
	return p, nil
}

// suppressions reads --suppressions (nil without it), warning of the
// entries of a Guardian file csv cannot apply.
func (o *Options) suppressions() (*suppress.Set, error) {
	if len(o.SuppressionFiles) == 0 {
		return nil, nil
	}
	files, err := suppress.LoadFiles(o.SuppressionFiles)
	if err != nil {
		return nil, err
	}
	if !o.Quiet {
		for _, f := range files {
			for _, u := range f.Unmapped {
				textsafe.Linef(o.IO.ErrOut, "csv: warning: suppressions %s: %s", f.Source, u)
			}
		}
	}
	return suppress.NewSet(time.Now(), files...), nil
}

// runGCPercent and factsGCPercent are the garbage collector's target
// (GOGC) while csv validate judges files, and recorded facts, unless GOGC
// is set.
const (
	runGCPercent   = 200
	factsGCPercent = 400
)
