package attest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testenv/scriptcmd"
)

// runCSV runs a csv root holding the attest command, mapping errors to
// exit codes as cli.Run does.
func runCSV() int {
	f := &cmdutil.Factory{IO: cmdutil.System()}
	root := &cobra.Command{Use: "csv", SilenceErrors: true, SilenceUsage: true}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &cmdutil.FlagError{Err: err} })
	root.AddCommand(NewCmdAttest(f))
	err := root.Execute()
	if err != nil && !errors.Is(err, cmdutil.ErrFailed) {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(os.Stderr, "csv: %s\n", line)
		}
	}
	return cmdutil.ExitCode(err)
}

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"csv": func() { os.Exit(runCSV()) }})
}

func pcrsYAML(p eventlog.PCRs) []byte {
	var b bytes.Buffer
	for _, a := range []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384} {
		if p[a] == nil {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", a)
		for i, v := range p[a] {
			if v != nil {
				fmt.Fprintf(&b, "  %d: 0x%x\n", i, v)
			}
		}
	}
	return b.Bytes()
}

// fixtures writes the real attestations as the raw files the command
// takes: fx/gce.* (GCE COS 85, nonce 9009) and fx/win.* (Windows GCP).
func fixtures(t *testing.T) map[string][]byte {
	files := map[string][]byte{}
	gce := attesttest.FindAttestation(t, "go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json")
	files["gce.log"], files["gce-ak.tpmt"], files["gce-ak.der"] = gce.Log, gce.AKPublic, gce.AKCert
	all := eventlog.PCRs{}
	for i, q := range gce.Quotes {
		files[fmt.Sprintf("gce-%s.quote", q.Bank)], files[fmt.Sprintf("gce-%s.sig", q.Bank)] = q.Attest, q.Signature
		all[q.Bank] = q.PCRs[q.Bank]
		_ = i
	}
	files["gce-pcrs.yaml"] = pcrsYAML(all)
	for i, r := range gce.Roots {
		files["root"+strconv.Itoa(i)+".der"] = attesttest.PEMOrDER(r)
	}
	for i, r := range gce.Intermediates {
		files["int"+strconv.Itoa(i)+".der"] = attesttest.PEMOrDER(r)
	}
	win := attesttest.FindAttestation(t, "go-attestation/windows_gcp_shielded_vm.json")
	files["win.log"], files["win-ak.tpmt"] = win.Log, win.AKPublic
	files["win.quote"], files["win.sig"] = win.Quotes[0].Attest, win.Quotes[0].Signature
	files["win-pcrs.yaml"] = pcrsYAML(win.Quotes[0].PCRs)
	files["truncated.log"] = gce.Log[:len(gce.Log)/2]
	return files
}

// TestScripts runs the end-to-end scenarios in testdata/script.
func TestScripts(t *testing.T) {
	files := fixtures(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			dir := filepath.Join(e.WorkDir, "fx")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for name, b := range files {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		Cmds:                map[string]func(ts *testscript.TestScript, neg bool, args []string){"status": scriptcmd.Status},
		RequireExplicitExec: true,
	})
}

func TestVerifyFlags(t *testing.T) {
	base := "--eventlog l --quote q --signature s --ak a --policy p --nonce 00ff"
	tests := []flagCase[VerifyOptions]{
		{"minimal", base, func(o *VerifyOptions) bool {
			return o.EventLog == "l" && slices.Equal(o.Quotes, []string{"q"}) && o.Nonce == "00ff" && o.Format == "text"
		}, ""},
		{"several quotes", base + " --quote q2 --signature s2 --ci-policy c --ci-policy d -f json --pcrs p.yaml --allow-sha1-unsafe", func(o *VerifyOptions) bool {
			return slices.Equal(o.Quotes, []string{"q", "q2"}) && slices.Equal(o.CIPolicies, []string{"c", "d"}) && o.Format == "json" && o.AllowSHA1 && o.PCRs == "p.yaml"
		}, ""},
		{"empty nonce given", strings.Replace(base, "--nonce 00ff", "--nonce=", 1), func(o *VerifyOptions) bool { return o.Nonce == "" }, ""},
		{"no nonce", strings.Replace(base, "--nonce 00ff", "", 1), nil, "--nonce is required"},
		{"bad nonce", strings.Replace(base, "00ff", "xyz", 1), nil, "is not hexadecimal"},
		{"unpaired", base + " --quote q2", nil, "give them in pairs"},
		{"no policy", strings.Replace(base, "--policy p", "", 1), nil, "--policy is required"},
		{"bad format", base + " -f sarif", nil, "want text, json or ear"},
		{"ear", base + " -f ear", func(o *VerifyOptions) bool { return o.Format == "ear" && o.EARKey == "" }, ""},
		{"signed ear", base + " -f ear --ear-key k.pem", func(o *VerifyOptions) bool { return o.Format == "ear" && o.EARKey == "k.pem" }, ""},
		{"ear key without ear", base + " --ear-key k.pem", nil, "give --format ear"},
	}
	checkFlags(t, tests, func(f *cmdutil.Factory, run func(*VerifyOptions)) *cobra.Command {
		return NewCmdVerify(f, func(o *VerifyOptions) error { run(o); return nil })
	})
}

// A Windows claim that is null because the WBCL could not be read must not
// read as "no Windows boot" in the text report.
func TestRenderUnreadableWindowsClaims(t *testing.T) {
	for _, tc := range []struct {
		problem, want, notWant string
	}{
		{"", "n/a (no Windows boot)", "could not be read"},
		{"PCR 12 event 3 is not a tagged event", "unknown (the Windows boot configuration could not be read)", "no Windows boot"},
	} {
		r := &attest.Result{Claims: &attest.Claims{Boot: &attest.BootState{WindowsProblem: tc.problem}}}
		var b strings.Builder
		if err := render(&b, "text", r); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.Count(out, tc.want) != 4 || strings.Contains(out, tc.notWant) {
			t.Errorf("problem %q: want %q for the four Windows claims, got:\n%s", tc.problem, tc.want, out)
		}
	}
}

// flagCase is a command line and what it must parse to (want), or the
// usage error it must give (wantErr).
type flagCase[T any] struct {
	name    string
	args    string
	want    func(*T) bool
	wantErr string
}

// checkFlags runs each case through the command newCmd makes, which calls
// run with the parsed options instead of running.
func checkFlags[T any](t *testing.T, tests []flagCase[T], newCmd func(f *cmdutil.Factory, run func(*T)) *cobra.Command) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}
			var got *T
			cmd := newCmd(f, func(o *T) { got = o })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if tt.wantErr != "" {
				var fe *cmdutil.FlagError
				if !errors.As(err, &fe) || got != nil || !strings.Contains(err.Error(), tt.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitError {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got == nil || !tt.want(got) {
				t.Fatalf("err = %v, %+v", err, got)
			}
		})
	}
}

// TestVerifyStops: attest verify stops when its context is done (Ctrl-C,
// SIGTERM: the root command's context) and says so, exit 2, no report.
func TestVerifyStops(t *testing.T) {
	dir := t.TempDir()
	for name, b := range fixtures(t) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	policy := filepath.Join(dir, "attest.yaml")
	os.WriteFile(policy, []byte("format: csv-attest-policy/v1\nname: t\nboot_components: ignore\n"), 0o600)
	stdout := &bytes.Buffer{}
	o := &VerifyOptions{IO: &cmdutil.IOStreams{Out: stdout, ErrOut: &bytes.Buffer{}}, EventLog: filepath.Join(dir, "gce.log"),
		Quotes: []string{filepath.Join(dir, "gce-sha256.quote")}, Signatures: []string{filepath.Join(dir, "gce-sha256.sig")},
		AK: filepath.Join(dir, "gce-ak.tpmt"), Nonce: "9009", Policy: policy, Format: "text"}
	if err := runVerify(context.Background(), o); err != nil && !errors.Is(err, cmdutil.ErrFailed) {
		t.Fatalf("not stopped: %v", err)
	}
	stdout.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := runVerify(ctx, o)
	if !errors.Is(err, context.Canceled) || cmdutil.ExitCode(err) != cmdutil.ExitError || stdout.Len() != 0 {
		t.Fatalf("err = %v, exit %d, stdout %q", err, cmdutil.ExitCode(err), stdout)
	}
}
