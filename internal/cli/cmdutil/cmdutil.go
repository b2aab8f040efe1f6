// Package cmdutil holds what every csv subcommand shares: the I/O streams,
// the Factory that lazily provides policies, the error types that decide the
// exit code, and file helpers.
package cmdutil

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/signing"
)

// IOStreams are the command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// ErrTTY is true when ErrOut is a terminal (progress is shown then).
	ErrTTY bool
	// ReadPassword, when not nil, asks the user for a secret on the
	// terminal: it writes prompt and reads a line without echoing it. It
	// is nil when standard input is not a terminal (a CI job), where csv
	// never waits for an answer.
	ReadPassword func(prompt string) ([]byte, error)
}

// System returns the process's streams.
func System() *IOStreams {
	ios := &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, ErrTTY: term.IsTerminal(int(os.Stderr.Fd()))}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		ios.ReadPassword = func(prompt string) ([]byte, error) {
			fmt.Fprint(os.Stderr, prompt)
			pw, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return pw, err
		}
	}
	return ios
}

// Factory gives commands what they need.
type Factory struct {
	IO      *IOStreams
	Version string
}

// Exit codes: the contract CI jobs script against.
const (
	ExitOK      = 0 // nothing blocked (or audit mode)
	ExitBlocked = 1 // at least one file blocked in enforce mode (or another finding the command documents)
	ExitError   = 2 // usage, policy or configuration error: nothing was judged
)

// FlagError is a usage error: the message is printed with a hint to --help.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// FlagErrorf returns a *FlagError.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{Err: fmt.Errorf(format, args...)}
}

// ErrFailed says the command found what makes it exit 1 (blocked files, a
// malformed binary for inspect, lint errors) and has already reported it.
var ErrFailed = errors.New("cli: findings reported")

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrFailed):
		return ExitBlocked
	}
	return ExitError
}

// InterruptGrace is how long a command has to end after Ctrl-C or SIGTERM
// before csv exits anyway (see cli.Main): long enough to remove temporary
// files and put back what signing replaced, short enough that a wait no
// context can end (a TPM or a file system that does not answer) does not
// keep csv running after it was told to stop.
const InterruptGrace = 5 * time.Second

type graceKey struct{}

// WithInterruptGrace returns ctx carrying the grace period cli.Main waits
// after a signal (InterruptGrace, unless a command changes it), and the
// variable that holds it: nanoseconds, or a negative value for no limit.
func WithInterruptGrace(ctx context.Context) (context.Context, *atomic.Int64) {
	g := new(atomic.Int64)
	g.Store(int64(InterruptGrace))
	return context.WithValue(ctx, graceKey{}, g), g
}

// NoInterruptDeadline tells cli.Main that the command ends in a bounded time
// of its own once ctx is done (attest serve finishes the requests in
// progress for its shutdown timeout), so that csv does not exit before.
func NoInterruptDeadline(ctx context.Context) {
	if g, ok := ctx.Value(graceKey{}).(*atomic.Int64); ok {
		g.Store(-1)
	}
}

// ExactArgsAtLeast is cobra.MinimumNArgs with a usage error naming what is
// missing.
func ExactArgsAtLeast(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return FlagErrorf("%s: missing %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

// ReadFileCapped reads a regular file, refusing files larger than max
// bytes, and anything else (a FIFO, a device, a directory) without waiting
// on it: see internal/safefile, which every file csv opens by name goes
// through. Errors do not repeat the path: callers say what the file was
// for.
func ReadFileCapped(path string, max int64) ([]byte, error) {
	return safefile.ReadFile(path, max)
}

// LoadPolicies is cipolicy.LoadFiles.
//
// Deprecated: use cipolicy.LoadFiles.
func LoadPolicies(paths []string) ([]*cipolicy.Policy, error) { return cipolicy.LoadFiles(paths) }

// PolicyFileReader is cipolicy.FileReader.
//
// Deprecated: use cipolicy.FileReader.
func PolicyFileReader(policyPath string) func(string) ([]byte, error) {
	return cipolicy.FileReader(policyPath)
}

// LoadCertificateFiles is signing.LoadCertificateFiles.
//
// Deprecated: use signing.LoadCertificateFiles.
func LoadCertificateFiles(paths []string) ([]*signing.Certificate, error) {
	return signing.LoadCertificateFiles(paths)
}

// LoadX509CertificateFiles is signing.LoadX509CertificateFiles.
//
// Deprecated: use signing.LoadX509CertificateFiles.
func LoadX509CertificateFiles(paths []string) ([]*x509.Certificate, error) {
	return signing.LoadX509CertificateFiles(paths)
}

// LoadCertificates is signing.LoadCertificates.
//
// Deprecated: use signing.LoadCertificates.
func LoadCertificates(path string) ([]*signing.Certificate, error) {
	return signing.LoadCertificates(path)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, so that a reader never sees a half-written report.
func WriteFileAtomic(path string, data []byte) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// AtomicFile is a file written beside its destination and renamed over it
// by Commit (mode 0644): readers see the old file or the whole new one.
// A destination that exists and is not a regular file (a device such as
// /dev/null or /dev/stdout, a named pipe) is written to directly: renaming
// a file over it would destroy it (as root, /dev/null itself).
type AtomicFile struct {
	*os.File
	path   string
	done   bool
	direct bool
}

// CreateAtomic starts writing the file at path (see AtomicFile).
func CreateAtomic(path string) (*AtomicFile, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		if st.IsDir() {
			return nil, fmt.Errorf("%s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &AtomicFile{File: f, path: path, direct: true}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err
	}
	return &AtomicFile{File: tmp, path: path}, nil
}

// Commit puts the file written in place.
func (f *AtomicFile) Commit() error {
	if f.done {
		return errors.New("cmdutil: atomic file committed or aborted")
	}
	f.done = true
	if f.direct {
		return f.Close()
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), f.path)
}

// Abort removes the file written, unless committed.
func (f *AtomicFile) Abort() {
	if !f.done {
		f.done = true
		f.Close()
		if !f.direct {
			os.Remove(f.Name())
		}
	}
}

// Example returns a command's examples as cobra's help shows them: every
// line indented by two spaces, without the final line break (cobra adds the
// blank line after them itself).
func Example(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}
