// Package version implements "csv version" and finds the running version.
package version

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/MakeNowJust/heredoc/v2"
	"github.com/spf13/cobra"

	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/signing/keys"
)

// Set at link time by release builds (scripts/release.sh):
//
//	-ldflags "-X github.com/codesignval/csv/internal/cli/version.Version=v1.2.3
//	          -X github.com/codesignval/csv/internal/cli/version.Commit=0123abcd...
//	          -X github.com/codesignval/csv/internal/cli/version.Date=2026-12-07T17:00:00Z"
//
// Where they are empty, [Get] takes what the Go toolchain recorded in the
// binary's build information instead.
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// MediaType is the media type of "csv version --format json".
const MediaType = "application/vnd.codesignval.csv.version+json;version=1"

// Info says which csv is running.
type Info struct {
	MediaType string `json:"media_type"`
	// Version is the release version (v1.2.3), the module version go
	// install recorded, devel-REVISION for a build from a checkout, or
	// devel.
	Version string `json:"version"`
	// Commit is the full VCS revision, "" where it is unknown.
	Commit string `json:"commit"`
	// Modified is true for a build from a checkout with uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// Date is the commit's time (RFC 3339), "" where it is unknown.
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	// CGO says whether the binary was built with cgo, which PKCS#11 keys
	// need.
	CGO bool `json:"cgo"`
	// KMS says whether the binary links the cloud KMS providers: csv-kms
	// does, csv does not (it hands KMS-keyed commands to csv-kms).
	KMS bool `json:"kms"`
}

// Get returns the running binary's version information: the link-time
// values, else the build information's.
func Get() Info {
	in := get(Version, Commit, Date, readBuildInfo)
	in.KMS = keys.KMSLinked()
	return in
}

var readBuildInfo = debug.ReadBuildInfo

func get(version, commit, date string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{MediaType: MediaType, Version: version, Commit: commit, Date: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := read()
	if ok {
		in.GoVersion = bi.GoVersion
	}
	var vcsRev, vcsTime string
	var dirty bool
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			case "CGO_ENABLED":
				in.CGO = s.Value == "1"
			case "GOOS", "GOARCH":
				// runtime's values are the same.
			}
		}
	}
	if in.Commit == "" {
		in.Commit = vcsRev
		in.Modified = dirty
	}
	if in.Date == "" {
		in.Date = vcsTime
	}
	if in.Version != "" {
		return in
	}
	switch {
	case ok && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		// go install module@version.
		in.Version = bi.Main.Version
	case in.Commit != "":
		rev := in.Commit
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if in.Modified {
			rev += "-dirty"
		}
		in.Version = "devel-" + rev
	default:
		in.Version = "devel"
	}
	return in
}

// String returns the version: the link-time one, else the module version or
// VCS revision the binary was built from, else "devel".
func String() string {
	return Get().Version
}

// Options are the flags of csv version.
type Options struct {
	IO     *cmdutil.IOStreams
	Format string
	Info   Info
}

// NewCmdVersion returns the version command.
func NewCmdVersion(f *cmdutil.Factory) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "version [--format text|json]",
		Short: "Print the version of csv",
		Long: heredoc.Doc(`
			Print csv's version, the commit it was built from and that commit's date, the Go version,
			the platform, whether it was built with cgo (PKCS#11 keys need it), and, for csv-kms, that
it links the cloud KMS providers. A release binary
			carries the values its release build set; a binary from go install or a checkout carries
			what the Go toolchain recorded.
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Format != "text" && opts.Format != "json" {
				return cmdutil.FlagErrorf("version: --format %q: want text or json", opts.Format)
			}
			opts.Info = Get()
			return Run(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Format, "format", "f", "text", "output format: text or json")
	return cmd
}

// Run prints o.Info.
func Run(o *Options) error {
	in := o.Info
	if o.Format == "json" {
		enc := json.NewEncoder(o.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	commit, date := in.Commit, in.Date
	if commit == "" {
		commit = "unknown"
	} else if in.Modified {
		commit += " (modified)"
	}
	if date == "" {
		date = "unknown"
	}
	cgo := "without cgo: no PKCS#11 keys"
	if in.CGO {
		cgo = "with cgo"
	}
	kms := ""
	if in.KMS {
		kms = "with the cloud KMS providers (csv-kms)\n"
	}
	_, err := fmt.Fprintf(o.IO.Out, "csv %s (%s, %s)\ncommit: %s\ndate: %s\nbuilt %s\n%s", in.Version, in.GoVersion, in.Platform, commit, date, cgo, kms)
	return err
}
