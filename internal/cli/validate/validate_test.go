package validate

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/cli/cmdutil"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		want    func(*Options) bool
		wantErr bool
	}{
		{"defaults", "-p a.yaml out", func(o *Options) bool {
			return slices.Equal(o.PolicyFiles, []string{"a.yaml"}) && o.Format == "text" && o.Scenario == "user" &&
				o.Mode == "" && o.Jobs == 0 && slices.Equal(o.Paths, []string{"out"})
		}, false},
		{"everything", "--policy a.yaml --policy b.xml --mode audit --scenario kernel -f sarif --sarif-passes -o r.sarif -j 3 --include **/*.dll --exclude vendor/** --follow-symlinks --fail-if-no-targets --all-digests -q x y", func(o *Options) bool {
			return slices.Equal(o.PolicyFiles, []string{"a.yaml", "b.xml"}) && o.Mode == "audit" && o.Scenario == "kernel" &&
				o.Format == "sarif" && o.SARIFPasses && o.Output == "r.sarif" && o.Jobs == 3 &&
				slices.Equal(o.Include, []string{"**/*.dll"}) && slices.Equal(o.Exclude, []string{"vendor/**"}) &&
				o.FollowSymlinks && o.FailIfNoTargets && o.AllDigests && o.Quiet && slices.Equal(o.Paths, []string{"x", "y"})
		}, false},
		{"no policy", "out", nil, true},
		{"no path", "-p a.yaml", nil, true},
		{"bad mode", "-p a.yaml --mode loud out", nil, true},
		{"bad scenario", "-p a.yaml --scenario boot out", nil, true},
		{"bad format", "-p a.yaml -f xml out", nil, true},
		{"negative jobs", "-p a.yaml -j -1 out", nil, true},
		{"passes without sarif", "-p a.yaml --sarif-passes out", nil, true},
		{"facts", "-p a.yaml --facts a.facts --facts b.facts.gz", func(o *Options) bool {
			return slices.Equal(o.FactsFiles, []string{"a.facts", "b.facts.gz"}) && len(o.Paths) == 0
		}, false},
		{"record", "-p a.yaml --record r.facts --origin ci-42 out", func(o *Options) bool {
			return o.Record == "r.facts" && o.Origin == "ci-42" && slices.Equal(o.Paths, []string{"out"})
		}, false},
		{"facts and paths", "-p a.yaml --facts a.facts out", nil, true},
		{"facts and record", "-p a.yaml --facts a.facts --record b.facts", nil, true},
		{"facts and sign", "-p a.yaml --facts a.facts --sign --key k --cert c", nil, true},
		{"facts and include", "-p a.yaml --facts a.facts --include x", nil, true},
		{"facts and shard", "-p a.yaml --facts a.facts --shard 1/2", nil, true},
		{"origin without record", "-p a.yaml --origin x out", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &cmdutil.Factory{IO: &cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}
			var got *Options
			cmd := NewCmdValidate(f, func(_ context.Context, o *Options) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(tt.args))
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if tt.wantErr {
				var fe *cmdutil.FlagError
				if !errors.As(err, &fe) || got != nil {
					t.Fatalf("err = %v (ran: %v), want a FlagError and no run", err, got != nil)
				}
				if cmdutil.ExitCode(err) != cmdutil.ExitError {
					t.Errorf("exit code %d", cmdutil.ExitCode(err))
				}
				return
			}
			if err != nil || got == nil || !tt.want(got) {
				t.Fatalf("err = %v, options %+v", err, got)
			}
		})
	}
}
