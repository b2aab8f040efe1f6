package attest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
)

// InspectOptions are the flags of csv attest inspect.
type InspectOptions struct {
	IO       *cmdutil.IOStreams
	EventLog string
	Format   string
}

// NewCmdInspect returns the inspect command. runF, if not nil, replaces
// the run function.
func NewCmdInspect(f *cmdutil.Factory, runF func(*InspectOptions) error) *cobra.Command {
	o := &InspectOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "inspect --eventlog FILE [--format json]",
		Short: "Print a TCG event log's events, replayed PCRs and boot state (unverified)",
		Long: heredoc.Doc(`
			Parse a TCG event log (SHA1 or crypto-agile format) and print its events, the PCR values
			it replays to in every bank, and the boot state it claims. Without a quote nothing of it
			is verified: use it to look at a log, and csv attest verify to decide.

			Exit status: 0 the log parsed; 2 it could not be read or parsed.
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.EventLog == "":
				return cmdutil.FlagErrorf("attest inspect: --eventlog is required")
			case o.Format != "text" && o.Format != "json":
				return cmdutil.FlagErrorf("attest inspect: --format %q: want text or json", o.Format)
			}
			if runF != nil {
				return runF(o)
			}
			return runInspect(o)
		},
	}
	cmd.Flags().StringVar(&o.EventLog, "eventlog", "", "the TCG event log `FILE`")
	cmd.Flags().StringVarP(&o.Format, "format", "f", "text", "output `FORMAT`: text or json")
	return cmd
}

// InspectMediaType is the media type of inspect's JSON output.
const InspectMediaType = "application/vnd.codesignval.csv.eventlog-inspection+json;version=1"

type jsonEvent struct {
	Index   int               `json:"index"`
	Offset  int               `json:"offset"`
	PCR     int64             `json:"pcr"`
	Type    string            `json:"type"`
	Digests map[string]string `json:"digests"`
	Size    int               `json:"data_size"`
	Data    string            `json:"data"`
}

type jsonInspection struct {
	MediaType   string                       `json:"media_type"`
	Verified    bool                         `json:"verified"`
	Format      string                       `json:"format"`
	Banks       []string                     `json:"banks"`
	Events      []jsonEvent                  `json:"events"`
	PCRs        map[string]map[string]string `json:"pcrs"`
	PCRProblems map[string]map[string]string `json:"pcr_problems,omitempty"`
	Boot        *attest.BootState            `json:"boot_state"`
	Workarounds []string                     `json:"workarounds"`
}

func runInspect(o *InspectOptions) error {
	raw, err := readFile("event log", o.EventLog, maxEventLogFile)
	if err != nil {
		return err
	}
	in, err := attest.Inspect(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", o.EventLog, err)
	}
	out := jsonInspection{MediaType: InspectMediaType, Format: in.Log.Format.String(), Boot: in.Boot,
		PCRs: map[string]map[string]string{}, PCRProblems: map[string]map[string]string{}, Workarounds: []string{}}
	for _, a := range in.Log.Algs {
		out.Banks = append(out.Banks, a.String())
		vals, probs := map[string]string{}, map[string]string{}
		for p := 0; p < eventlog.NumPCRs; p++ {
			v, why := in.Replay.Value(a, p)
			if v != nil {
				vals[strconv.Itoa(p)] = hex.EncodeToString(v)
			} else {
				probs[strconv.Itoa(p)] = why
			}
		}
		out.PCRs[a.String()] = vals
		if len(probs) > 0 {
			out.PCRProblems[a.String()] = probs
		}
	}
	for _, e := range in.Log.Events {
		je := jsonEvent{Index: e.Index, Offset: e.Offset, PCR: int64(e.PCR), Type: e.Type.String(), Digests: map[string]string{}, Size: len(e.Data), Data: printable(e.Data)}
		if e.PCR == eventlog.PCRUnmeasured {
			je.PCR = -1
		}
		for _, d := range e.Digests {
			je.Digests[d.Alg.String()] = hex.EncodeToString(d.Value)
		}
		out.Events = append(out.Events, je)
	}
	for _, w := range in.Workarounds {
		out.Workarounds = append(out.Workarounds, w.String())
	}
	if o.Format == "json" {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = o.IO.Out.Write(append(textsafe.InertJSON(b), '\n'))
		return err
	}
	return writeInspection(o.IO.Out, &out)
}

// printable shows event data as text when it is printable ASCII or UTF-8
// (actions, command lines), and as (at most 64 bytes of) hex otherwise.
func printable(b []byte) string {
	t := strings.TrimRight(string(b), "\x00")
	if utf8.ValidString(t) && len(t) > 0 && !strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return t
	}
	if len(b) > 64 {
		return hex.EncodeToString(b[:64]) + "..."
	}
	return hex.EncodeToString(b)
}

func writeInspection(w io.Writer, in *jsonInspection) error {
	var b strings.Builder
	textsafe.Linef(&b, "event log: %s format, banks %s, %d events (UNVERIFIED: no quote)", in.Format, strings.Join(in.Banks, ", "), len(in.Events))
	b.WriteString("events:\n")
	for _, e := range in.Events {
		data := e.Data
		if len(data) > 72 {
			data = data[:72] + "..."
		}
		textsafe.Linef(&b, "  %4d  @%-6d PCR %-2d %-34s %5d bytes  %s", e.Index, e.Offset, e.PCR, e.Type, e.Size, strings.ReplaceAll(data, "\n", `\n`))
	}
	for _, bank := range in.Banks {
		textsafe.Linef(&b, "pcrs %s (replayed, unverified):", bank)
		for p := 0; p < eventlog.NumPCRs; p++ {
			k := strconv.Itoa(p)
			if v, ok := in.PCRs[bank][k]; ok {
				textsafe.Linef(&b, "  %2d: %s", p, v)
			} else {
				textsafe.Linef(&b, "  %2d: cannot be replayed: %s", p, in.PCRProblems[bank][k])
			}
		}
	}
	bs := in.Boot
	b.WriteString("boot state (UNVERIFIED):\n")
	if bs.SecureBoot.Problem != "" {
		textsafe.Linef(&b, "  secure boot: %v (%s)", bs.SecureBoot.Enabled, bs.SecureBoot.Problem)
	} else {
		textsafe.Linef(&b, "  secure boot: %v", bs.SecureBoot.Enabled)
	}
	for _, v := range []struct {
		name string
		db   *attest.SignatureDB
	}{{"PK", bs.PK}, {"KEK", bs.KEK}, {"db", bs.DB}, {"dbx", bs.DBX}} {
		if v.db == nil {
			textsafe.Linef(&b, "  %s: not measured", v.name)
			continue
		}
		var names []string
		for _, c := range v.db.Summary() {
			names = append(names, strconv.Quote(c.Subject))
		}
		textsafe.Linef(&b, "  %s: %d certificates [%s], %d hashes (data sha256 %x)", v.name, len(v.db.CertDER), strings.Join(names, ", "), len(v.db.SHA256), v.db.DataSHA256)
	}
	for _, a := range bs.Authorities {
		textsafe.Linef(&b, "  authority (event %d): %s", a.Event, a.Name())
	}
	for _, c := range bs.Components {
		textsafe.Linef(&b, "  component %s %q authenticode sha256 %s", c.ID, c.Name, orDash(hex.EncodeToString(c.AuthenticodeSHA256)))
	}
	textsafe.Linef(&b, "  UEFI debug mode: %v", bs.UEFIDebugMode)
	if w := bs.Windows; w != nil {
		textsafe.Linef(&b, "  windows: boot debugging %v, kernel debugging %v, code integrity %s, test signing %v, boot count %d, %d modules",
			w.BootDebugging, w.KernelDebugging, w.CodeIntegrity, w.TestSigning, w.BootCount, len(w.LoadedModules))
		for _, c := range w.CIPolicies {
			textsafe.Linef(&b, "  windows code integrity policy %q version %s %s %s", c.Name, c.Version, c.HashAlg, c.Digest)
		}
	} else if bs.WindowsProblem != "" {
		textsafe.Linef(&b, "  windows: %s", bs.WindowsProblem)
	}
	for _, k := range bs.KernelCmdlines {
		textsafe.Linef(&b, "  kernel command line: %s", k)
	}
	for _, n := range bs.Notes {
		textsafe.Linef(&b, "  note: %s", n)
	}
	for _, w := range in.Workarounds {
		textsafe.Linef(&b, "workaround: %s", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
