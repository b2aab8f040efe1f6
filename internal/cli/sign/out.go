package sign

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing/keys"
)

// maxOutListed caps the stale files a warning names one by one.
const maxOutListed = 10

// CheckOut refuses an --out directory that exists and is not empty unless
// --force is given: a run writes the files it signs (and copies) there and
// leaves whatever else the directory holds, so the files of an earlier
// build, or of another one, would sit among this build's as if signed with
// it. It reads only the directory's first entries.
func (f *Flags) CheckOut(cmd string) error {
	if f.Out == "" || f.Force {
		return nil
	}
	// Stat first: opening a named pipe would wait for a writer.
	st, err := os.Stat(f.Out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--out %s: %w", f.Out, err)
	}
	if !st.IsDir() {
		return cmdutil.FlagErrorf("%s: --out %s is not a directory", cmd, f.Out)
	}
	d, err := os.Open(f.Out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", f.Out, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--out %s: %w", f.Out, err)
	}
	if len(names) > 0 {
		return cmdutil.FlagErrorf("%s: --out %s is not empty (it holds %q, among others perhaps): files this run does not write would stay beside the signed ones; give an empty or new directory, or --force to write into it", cmd, f.Out, names[0])
	}
	return nil
}

// outSnapshot records the files under --out before a run with --force, to
// name afterwards those the run left as they were (nil when --out is new
// or empty).
func (f *Flags) outSnapshot() map[string]os.FileInfo {
	if f.Out == "" {
		return nil
	}
	files := map[string]os.FileInfo{}
	filepath.WalkDir(f.Out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := os.Lstat(p); err == nil {
			files[p] = fi
		}
		return nil
	})
	return files
}

// warnStale names the files of before that the run did not replace: those
// that are still the same file (os.SameFile: csv writes each output to a
// temporary file renamed into place).
func (f *Flags) warnStale(w *cmdutil.IOStreams, before map[string]os.FileInfo) {
	var stale []string
	for p, fi := range before {
		if now, err := os.Lstat(p); err == nil && os.SameFile(fi, now) {
			stale = append(stale, p)
		}
	}
	if len(stale) == 0 {
		return
	}
	sort.Strings(stale)
	listed := stale[:min(len(stale), maxOutListed)]
	quoted := make([]string, len(listed))
	for i, p := range listed {
		quoted[i] = textsafe.Quote(p)
	}
	more := ""
	if len(stale) > len(listed) {
		more = fmt.Sprintf(" and %d more", len(stale)-len(listed))
	}
	f.warn(w, fmt.Sprintf("--out %s --force: %s there before this run %s not written by it and %s left as %s: %s%s",
		f.Out, textsafe.Plural(len(stale), "file", "files"), verb(len(stale), "was", "were"), verb(len(stale), "is", "are"), verb(len(stale), "it was", "they were"), strings.Join(quoted, ", "), more))
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// isPKCS12Name reports whether a --key names a PKCS#12 file by its
// extension (.pfx, .p12): it then carries its chain, and --cert may be
// left out.
func isPKCS12Name(ref string) bool {
	ext := strings.ToLower(filepath.Ext(ref))
	return !strings.Contains(ref, "://") && (ext == ".pfx" || ext == ".p12")
}

// maxPasswordLine caps the line --password-stdin reads.
const maxPasswordLine = 4096

// password returns where the key's password comes from, in this order:
// standard input's first line with --password-stdin; the environment
// variable keys.DefaultPasswordEnv; a prompt on the terminal when standard
// input is one; otherwise keys.ErrNoPassword saying all three.
func (f *Flags) password(ios *cmdutil.IOStreams) func() ([]byte, error) {
	return func() ([]byte, error) {
		switch pw, env := os.LookupEnv(keys.DefaultPasswordEnv); {
		case f.PasswordStdin:
			return readPasswordLine(ios.In)
		case env:
			return []byte(pw), nil
		case ios.ReadPassword != nil:
			return ios.ReadPassword(fmt.Sprintf("csv: password for %s: ", textsafe.Escape(keys.RedactKeyRef(f.Key))))
		}
		return nil, fmt.Errorf("%w: %s is encrypted: give its password on standard input with --password-stdin, in $%s, or run csv on a terminal to be asked for it",
			keys.ErrNoPassword, keys.RedactKeyRef(f.Key), keys.DefaultPasswordEnv)
	}
}

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: --password-stdin: no standard input", keys.ErrNoPassword)
	}
	var line []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) >= maxPasswordLine {
				return nil, fmt.Errorf("%w: --password-stdin: a line of more than %d bytes", keys.ErrNoPassword, maxPasswordLine)
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return nil, fmt.Errorf("%w: --password-stdin: standard input is empty", keys.ErrNoPassword)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("--password-stdin: %w", err)
		}
	}
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
