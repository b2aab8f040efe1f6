package policy

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
)

// DiffOptions are the flags and arguments of csv policy diff.
type DiffOptions struct {
	IO             *cmdutil.IOStreams
	Format         string
	FailIfLoosened bool
	Old, New       string
}

// NewCmdDiff returns "csv policy diff".
func NewCmdDiff(f *cmdutil.Factory, runF func(*DiffOptions) error) *cobra.Command {
	opts := &DiffOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "diff [--format text|json] [--fail-if-loosened] [flags] OLD NEW",
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

			Exit status: 0 the policies judge alike (with --fail-if-loosened: nothing loosens);
			1 they differ (nothing else is wrong with them); 2 a policy does not load, or a usage error.
		`),
		Example: "  $ csv policy diff --fail-if-loosened main/policy.yaml policy.yaml",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Old, opts.New = args[0], args[1]
			if opts.Format != "text" && opts.Format != "json" {
				return cmdutil.FlagErrorf("policy diff: --format %q: want text or json", opts.Format)
			}
			if runF != nil {
				return runF(opts)
			}
			return RunDiff(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "text", "output `FORMAT`: text or json")
	cmd.Flags().BoolVar(&opts.FailIfLoosened, "fail-if-loosened", false, "exit 1 only when a change loosens the policy (tightening passes)")
	return cmd
}

// RunDiff compares the policies.
func RunDiff(o *DiffOptions) error {
	ps, err := cipolicy.LoadFiles([]string{o.Old, o.New})
	if err != nil {
		return err
	}
	d := cipolicy.Diff(ps[0], ps[1])
	if o.Format == "json" {
		enc := json.NewEncoder(textsafe.JSONWriter(o.IO.Out))
		enc.SetIndent("", "  ")
		out := struct {
			Identical bool `json:"identical"`
			Loosens   bool `json:"loosens"`
			*cipolicy.PolicyDiff
		}{d.Empty(), d.Loosens(), d}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		writeDiff(o.IO.Out, d)
	}
	if d.Empty() || (o.FailIfLoosened && !d.Loosens()) {
		return nil
	}
	return cmdutil.ErrFailed
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
