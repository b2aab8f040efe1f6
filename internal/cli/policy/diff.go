package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/impact"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
)

// DiffOptions are the flags and arguments of csv policy diff.
type DiffOptions struct {
	IO             *cmdutil.IOStreams
	Version        string
	Format         string
	FailIfLoosened bool
	Old, New       string
	// Against are the inventories the change is judged against
	// (--against [NAME=]PATH; impact.go), FailIfBlocksMore is
	// --fail-if-blocks-more, and the rest configure the judging runs as
	// csv validate's flags of the same names.
	Against          []string
	FailIfBlocksMore bool
	CertFiles        []string
	Scenario         string
	Jobs             int
	Include, Exclude []string
	// now is the time both policies judge at (default time.Now; tests).
	now func() time.Time
}

// NewCmdDiff returns "csv policy diff".
func NewCmdDiff(f *cmdutil.Factory, runF func(*DiffOptions) error) *cobra.Command {
	opts := &DiffOptions{IO: f.IO, Version: f.Version}
	cmd := &cobra.Command{
		Use:   "diff [--format text|json|sarif] [--fail-if-loosened] [--against [NAME=]PATH]... [--fail-if-blocks-more] [flags] OLD NEW",
		Short: "Show what a policy change changes in what is allowed and denied",
		Long: heredoc.Doc(`
			Compare two policies (YAML or WDAC SiPolicy XML, in any combination) by what they judge:
			the settings that affect verdicts (mode, type, base, id, WDAC compatibility, timestamp
			authorities, digests, key types, options; name and version too), and the rules one has and the other does
			not. Rules are compared by action, matcher and scope, never by id, order or comment, so
			renumbering or reordering a policy shows no difference. Each change says whether it
			loosens the policy, and why: whether it can admit a file the old policy blocked (an
			allow rule added, a deny rule removed, enforce turned to audit, WDAC compatibility,
			timestamp authorities, digests, key types, certificates that complete chains, type,
			base, a base's id, supplemental policies allowed, user-mode enforcement, WDAC options),
			or csv cannot tell that it cannot. A rule whose scope changed shows as removed and added.

			With --against, csv also judges real inventories under both policies (each PATH, a
			file or directory, as csv validate would; the policies' certificates and --certs
			complete chains) and names the files whose outcome changes, each with the rule that
			decides under each policy, grouped by the new deciding rule (or the old one, when no
			rule decides any more): newly blocked (ran, would not run: an outage risk), newly
			allowed (a loosening), would be blocked (audit) (the new policy only audits), and
			rule changed (same outcome, decided otherwise). Each --against is one inventory, a
			ring of a staged rollout: NAME=PATH names it, and PATHs given the same NAME are
			judged as one. Suppressions do not apply: hosts block a suppressed file all the same
			(docs/policy.md#diff-against-inventories).

			Exit status: 0 the policies judge alike and no file changes (with a --fail-if flag:
			nothing it names happens); 1 they differ or a file changes (with --fail-if-loosened:
			a change loosens the policy or a file is newly allowed; with --fail-if-blocks-more: a
			file is newly blocked); 2 a policy does not load, an inventory cannot be judged, or a
			usage error.
		`),
		Example: cmdutil.Example(heredoc.Doc(`
			# fail a policy change that loosens the policy
			$ csv policy diff --fail-if-loosened main/policy.yaml policy.yaml

			# fail a policy change that would block files of the rings' inventories
			$ csv policy diff --against ring0=inventories/canary --against ring1=inventories/fleet \
			    --fail-if-blocks-more --fail-if-loosened main/policy.yaml policy.yaml
		`)),
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Old, opts.New = args[0], args[1]
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return RunDiffContext(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Format, "format", "f", "text", "output `FORMAT`: text, json, or sarif (with --against)")
	fl.BoolVar(&opts.FailIfLoosened, "fail-if-loosened", false, "exit 1 only when a change loosens the policy or, with --against, a file is newly allowed (tightening passes)")
	fl.StringArrayVar(&opts.Against, "against", nil, "also judge the files at `[NAME=]PATH` (a file or directory: an inventory, a ring; or facts files csv validate --record wrote) under both policies and report those whose outcome changes; repeatable")
	fl.BoolVar(&opts.FailIfBlocksMore, "fail-if-blocks-more", false, "with --against: exit 1 only when a file is newly blocked (with --fail-if-loosened: or when that fails)")
	fl.StringArrayVar(&opts.CertFiles, "certs", nil, "with --against: certificates `FILE` (PEM or DER) completing chains, as csv validate --certs; repeatable")
	fl.StringVar(&opts.Scenario, "scenario", "user", "with --against: `SCENARIO` the binaries run in: user or kernel")
	fl.IntVarP(&opts.Jobs, "jobs", "j", 0, "with --against: inspect `N` files at once in each policy's run (default: the number of CPUs)")
	fl.StringArrayVar(&opts.Include, "include", nil, "with --against: judge only files matching this path `GLOB`; repeatable")
	fl.StringArrayVar(&opts.Exclude, "exclude", nil, "with --against: skip files and directories matching this path `GLOB`; repeatable")
	return cmd
}

// check validates the flags.
func (o *DiffOptions) check() error {
	switch o.Format {
	case "text", "json":
	case "sarif":
		if len(o.Against) == 0 {
			return cmdutil.FlagErrorf("policy diff: --format sarif reports files: it needs --against")
		}
	default:
		return cmdutil.FlagErrorf("policy diff: --format %q: want text, json or sarif", o.Format)
	}
	if len(o.Against) == 0 {
		switch {
		case o.FailIfBlocksMore:
			return cmdutil.FlagErrorf("policy diff: --fail-if-blocks-more judges files: it needs --against")
		case len(o.CertFiles) > 0 || len(o.Include) > 0 || len(o.Exclude) > 0 || o.Jobs != 0 || o.Scenario != "user":
			return cmdutil.FlagErrorf("policy diff: --certs, --scenario, --jobs, --include and --exclude configure the judging of --against: they need it")
		}
	}
	if o.Scenario != string(cipolicy.ScenarioUser) && o.Scenario != string(cipolicy.ScenarioKernel) {
		return cmdutil.FlagErrorf("policy diff: --scenario %q: want user or kernel", o.Scenario)
	}
	if o.Jobs < 0 {
		return cmdutil.FlagErrorf("policy diff: --jobs %d: want a positive number", o.Jobs)
	}
	if _, err := parseAgainst(o.Against); err != nil {
		return cmdutil.FlagErrorf("policy diff: %v", err)
	}
	return nil
}

// RunDiff compares the policies.
func RunDiff(o *DiffOptions) error { return RunDiffContext(context.Background(), o) }

// RunDiffContext compares the policies and, with o.Against, their
// judgements of the inventories.
func RunDiffContext(ctx context.Context, o *DiffOptions) error {
	ps, err := cipolicy.LoadFiles([]string{o.Old, o.New})
	if err != nil {
		return err
	}
	d := cipolicy.Diff(ps[0], ps[1])
	invs, err := judgeImpact(ctx, o, ps[0], ps[1])
	if err != nil {
		return err
	}
	switch o.Format {
	case "json":
		enc := json.NewEncoder(textsafe.JSONWriter(o.IO.Out))
		enc.SetIndent("", "  ")
		out := struct {
			Identical bool `json:"identical"`
			Loosens   bool `json:"loosens"`
			*cipolicy.PolicyDiff
			Inventories []*impact.Inventory `json:"inventories,omitempty"`
		}{d.Empty(), d.Loosens(), d, invs}
		if err := enc.Encode(out); err != nil {
			return err
		}
	case "sarif":
		if err := impact.WriteSARIF(o.IO.Out, invs, impact.SARIFOptions{ToolVersion: o.Version, Properties: sarifProperties(d)}); err != nil {
			return err
		}
	default:
		writeDiff(o.IO.Out, d)
		impact.WriteText(o.IO.Out, invs)
	}
	if diffFails(o, d, invs) {
		return cmdutil.ErrFailed
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func writeDiff(w io.Writer, d *cipolicy.PolicyDiff) {
	side := func(mark string, s cipolicy.DiffSide) {
		textsafe.Linef(w, "%s %s: %s %s (sha256 %.12s)", mark, s.Source, textsafe.Quote(s.Name), s.Version, s.SHA256)
	}
	side("---", d.Old)
	side("+++", d.New)
	loosens := func(b bool) string {
		if b {
			return "  (loosens)"
		}
		return ""
	}
	for _, f := range d.Settings {
		textsafe.Linef(w, "~ %s: %s -> %s%s", f.Field, textsafe.Quote(f.Old), textsafe.Quote(f.New), loosens(f.Loosens))
		if f.Why != "" {
			textsafe.Linef(w, "    %s", f.Why)
		}
	}
	added, removed := 0, 0
	for _, r := range d.Rules {
		mark := "+"
		if r.Change == "removed" {
			mark = "-"
			removed++
		} else {
			added++
		}
		where := r.Source
		if r.Line > 0 {
			where = fmt.Sprintf("%s:%d", r.Source, r.Line)
		}
		id := ""
		if r.ID != "" {
			id = textsafe.Quote(r.ID) + ", "
		}
		textsafe.Linef(w, "%s %s %s  [%s%s]%s", mark, r.Action, r.Rule, id, where, loosens(r.Loosens))
	}
	switch {
	case d.Empty():
		fmt.Fprintln(w, "result: the policies judge alike")
	default:
		verdict := "nothing loosens"
		if d.Loosens() {
			verdict = "LOOSENS the policy"
		}
		fmt.Fprintf(w, "result: %s changed, %s added, %d removed: %s\n", plural(len(d.Settings), "setting"), plural(added, "rule"), removed, verdict)
	}
}
