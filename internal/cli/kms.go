package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing/keys"
)

// KMS keys are loaded by csv-kms (cmd/csv-kms), csv with sigstore's KMS
// providers linked: the cloud SDKs under them cost every run of csv 3-7 ms
// of start-up and doubled its binary, for the few commands that sign with
// a KMS key. csv hands such a command, whole, to the csv-kms installed in
// its own directory (never one found on $PATH): on Unix by exec (same
// process, signals, streams and exit status), on Windows as a child whose
// exit status csv returns.

// kmsCompanion is csv-kms's file name on this system.
var kmsCompanion = "csv-kms" + map[bool]string{true: ".exe"}[runtime.GOOS == "windows"]

// handedOffEnv is set in csv-kms's environment by the csv that ran it.
const handedOffEnv = "CSV_KMS_HANDED_OFF"

// kmsKeyFlags are the flags whose value is a signing key reference.
var kmsKeyFlags = []string{"--key", "--ear-key"}

// kmsKeyArg returns the KMS key reference args give a key flag, if any:
// "--key REF" or "--key=REF", before a "--" that ends the flags.
func kmsKeyArg(args []string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			return "", false
		}
		for _, f := range kmsKeyFlags {
			v, ok := "", false
			switch {
			case a == f && i+1 < len(args):
				v, ok = args[i+1], true
			case strings.HasPrefix(a, f+"="):
				v, ok = a[len(f)+1:], true
			}
			if ok && keys.IsKMSRef(v) {
				return v, true
			}
		}
	}
	return "", false
}

// companionPath is csv-kms in the directory of the running executable
// (symbolic links resolved: csv linked into a bin directory finds the
// csv-kms installed beside its target).
func companionPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), kmsCompanion), nil
}

// handOffKMS hands the command to csv-kms when args name a KMS key and
// this binary does not link the providers. handed is false when csv runs
// the command itself; otherwise code is the command's exit status (on
// Unix, a successful hand-off does not return).
func handOffKMS(args []string, errOut io.Writer) (code int, handed bool) {
	ref, ok := kmsKeyArg(args)
	if !ok || keys.KMSLinked() {
		return 0, false
	}
	if os.Getenv(handedOffEnv) != "" {
		// Handed off already, to a csv-kms without providers (a copy of
		// csv): never again, or it would run itself forever.
		textsafe.Linef(errOut, "csv: the key %s is a KMS reference, and this csv-kms (%s) links no KMS provider: install csv-kms from the same release as csv",
			textsafe.Quote(keys.RedactKeyRef(ref)), textsafe.Quote(os.Args[0]))
		return cmdutil.ExitError, true
	}
	path, err := companionPath()
	if err == nil {
		var fi fs.FileInfo
		if fi, err = os.Stat(path); err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", path)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%s is not installed", path)
		}
		textsafe.Linef(errOut, "csv: the key %s is a KMS reference: KMS keys are loaded by csv-kms, csv with the cloud KMS providers, run from csv's directory, and %v (install it beside csv: go install github.com/codesignval/csv/cmd/csv-kms, or from the release archive)",
			textsafe.Quote(keys.RedactKeyRef(ref)), err)
		return cmdutil.ExitError, true
	}
	os.Setenv(handedOffEnv, "1")
	code, err = runCompanion(path, args)
	if err != nil {
		textsafe.Linef(errOut, "csv: running %s for the KMS key %s: %v", path, textsafe.Quote(keys.RedactKeyRef(ref)), err)
		return cmdutil.ExitError, true
	}
	return code, true
}
