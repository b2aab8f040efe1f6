package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/cli/version"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing/keys"
)

// KMS keys are loaded by csv-kms (cmd/csv-kms), csv with sigstore's KMS
// providers linked: the cloud SDKs under them cost every run of csv 3-7 ms
// of start-up and doubled its binary, for the few commands that sign with
// a KMS key. csv hands such a command, whole, to the csv-kms installed in
// its own directory (never one found on $PATH): on Unix by exec (same
// process, signals, streams and exit status), on Windows as a child whose
// exit status csv returns. The decision is made on the flags as cobra
// parsed them (a PersistentPreRun of the root, installed by Main only),
// before the command has read anything; csv-kms must be a file no one
// but its owner can change, owned by root, this user or csv's owner
// (kms_unix.go), and from the same build as csv (handedOffEnv).

// kmsCompanion is csv-kms's file name on this system.
var kmsCompanion = "csv-kms" + map[bool]string{true: ".exe"}[runtime.GOOS == "windows"]

// handedOffEnv is set in csv-kms's environment by the csv that ran it, to
// csv's build identity: csv-kms refuses to run for another build's csv,
// and a csv-kms that links no provider (a copy of csv) refuses to hand
// the command off again.
const handedOffEnv = "CSV_KMS_HANDED_OFF"

// kmsKeyFlags are the flags whose value is a signing key reference.
var kmsKeyFlags = []string{"key", "ear-key"}

// buildIdentity names this build: version, commit and whether the tree
// was modified, as csv version prints them.
func buildIdentity() string {
	in := version.Get()
	return fmt.Sprintf("%s commit %s modified %v", in.Version, in.Commit, in.Modified)
}

// kmsKeyFlag returns the KMS key reference c's parsed --key or --ear-key
// holds, if any.
func kmsKeyFlag(c *cobra.Command) (string, bool) {
	for _, name := range kmsKeyFlags {
		if fl := c.Flags().Lookup(name); fl != nil && fl.Changed && keys.IsKMSRef(fl.Value.String()) {
			return fl.Value.String(), true
		}
	}
	return "", false
}

// checkHandedOff is csv-kms's side: a command csv handed off comes from
// the same build, and a binary without providers never hands off again.
// It returns false, having said why, when the command must not run.
func checkHandedOff(errOut io.Writer) bool {
	from := os.Getenv(handedOffEnv)
	if from == "" {
		return true
	}
	if !keys.KMSLinked() {
		// Handed off already, to a csv-kms without providers (a copy of
		// csv): never again, or it would run itself forever.
		textsafe.Linef(errOut, "csv: this csv-kms (%s) links no KMS provider: install csv-kms from the same release as csv", textsafe.Quote(os.Args[0]))
		return false
	}
	if own := buildIdentity(); from != own {
		textsafe.Linef(errOut, "csv: csv-kms (%s) is not from the same build as the csv that ran it (csv %s, csv-kms %s): install both from the same release",
			textsafe.Quote(os.Args[0]), textsafe.Quote(from), textsafe.Quote(own))
		return false
	}
	return true
}

// companionPath is csv-kms in the directory of the running executable
// (symbolic links resolved: csv linked into a bin directory finds the
// csv-kms installed beside its target), and that executable.
func companionPath() (companion, self string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), kmsCompanion), exe, nil
}

// handOffKMS hands the command args to csv-kms for the KMS key ref. It
// returns the command's exit status (on Unix, a successful hand-off does
// not return), or ExitError having said why it could not.
func handOffKMS(ref string, args []string, errOut io.Writer) int {
	path, self, err := companionPath()
	if err == nil {
		var fi fs.FileInfo
		if fi, err = os.Stat(path); err == nil {
			err = trustCompanion(path, fi, self)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%s is not installed", path)
		}
		textsafe.Linef(errOut, "csv: the key %s is a KMS reference: KMS keys are loaded by csv-kms, csv with the cloud KMS providers, run from csv's directory, and %v (install it beside csv: go install github.com/codesignval/csv/cmd/csv-kms, or from the release archive)",
			textsafe.Quote(keys.RedactKeyRef(ref)), err)
		return cmdutil.ExitError
	}
	os.Setenv(handedOffEnv, buildIdentity())
	code, err := runCompanion(path, args)
	if err != nil {
		textsafe.Linef(errOut, "csv: running %s for the KMS key %s: %v", path, textsafe.Quote(keys.RedactKeyRef(ref)), err)
		return cmdutil.ExitError
	}
	return code
}

// installHandOff makes root hand a command whose key is a KMS reference to
// csv-kms, when this binary links no provider; exit ends the process with
// the hand-off's status.
func installHandOff(root *cobra.Command, args []string, errOut io.Writer, exit func(int)) {
	if keys.KMSLinked() {
		return
	}
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if ref, ok := kmsKeyFlag(c); ok {
			exit(handOffKMS(ref, args, errOut))
		}
		return nil
	}
}
