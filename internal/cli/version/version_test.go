package version

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/cli/cmdutil"
)

func buildInfo(mainVersion string, settings ...string) func() (*debug.BuildInfo, bool) {
	return func() (*debug.BuildInfo, bool) {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/codesignval/csv", Version: mainVersion}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi, true
	}
}

func TestGet(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	noInfo := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name                  string
		version, commit, date string
		read                  func() (*debug.BuildInfo, bool)
		want                  Info
	}{
		{"release ldflags win over build info", "v1.2.3", rev, "2026-12-07T17:00:00Z",
			buildInfo("(devel)", "vcs.revision", "ffff", "vcs.time", "2020-01-01T00:00:00Z", "CGO_ENABLED", "1"),
			Info{Version: "v1.2.3", Commit: rev, Date: "2026-12-07T17:00:00Z", CGO: true}},
		{"go install module@version", "", "", "",
			buildInfo("v1.4.0", "CGO_ENABLED", "0"),
			Info{Version: "v1.4.0"}},
		{"checkout with VCS stamping", "", "", "",
			buildInfo("(devel)", "vcs.revision", rev, "vcs.time", "2026-11-30T10:00:00Z", "vcs.modified", "false"),
			Info{Version: "devel-0123456789ab", Commit: rev, Date: "2026-11-30T10:00:00Z"}},
		{"modified checkout", "", "", "",
			buildInfo("(devel)", "vcs.revision", rev, "vcs.modified", "true"),
			Info{Version: "devel-0123456789ab-dirty", Commit: rev, Modified: true}},
		{"no VCS information (-buildvcs=false)", "", "", "", buildInfo("(devel)"), Info{Version: "devel"}},
		{"no build information", "", "", "", noInfo, Info{Version: "devel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := get(tt.version, tt.commit, tt.date, tt.read)
			if got.Version != tt.want.Version || got.Commit != tt.want.Commit || got.Date != tt.want.Date ||
				got.Modified != tt.want.Modified || got.CGO != tt.want.CGO {
				t.Errorf("get() = %+v, want %+v", got, tt.want)
			}
			if got.MediaType != MediaType || got.Platform == "" || got.GoVersion == "" {
				t.Errorf("get() = %+v: media type, platform or Go version missing", got)
			}
		})
	}
}

func TestRun(t *testing.T) {
	in := get("v1.2.3", "abc", "2026-12-07T17:00:00Z", buildInfo("(devel)", "CGO_ENABLED", "0"))
	var out bytes.Buffer
	if err := Run(&Options{IO: &cmdutil.IOStreams{Out: &out}, Format: "json", Info: in}); err != nil {
		t.Fatal(err)
	}
	var back Info
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("--format json wrote %q: %v", out.String(), err)
	}
	if back != in {
		t.Errorf("--format json round trip: %+v, want %+v", back, in)
	}
	out.Reset()
	if err := Run(&Options{IO: &cmdutil.IOStreams{Out: &out}, Format: "text", Info: in}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"csv v1.2.3 (go1.26.8, ", "\ncommit: abc\n", "\ndate: 2026-12-07T17:00:00Z\n", "without cgo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output %q lacks %q", out.String(), want)
		}
	}
}
