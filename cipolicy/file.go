package cipolicy

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/safefile"
)

// LoadFiles reads and parses the policy files at paths, in order, each as
// [ParseWith] does (YAML or SiPolicy XML, detected by content), with the
// certificate files a policy names read by [FileReader]. Every file is
// read and every problem returned, joined (errors.Join), so that a user
// fixes several policies in one pass: a file that cannot be read is an
// error naming it ("cannot read policy PATH: ..."), wrapping the cause
// (errors.Is fs.ErrNotExist, safefile's not-a-regular-file or too-large
// errors); a file whose content is wrong is a *[LoadError]
// ([ErrInvalidPolicy]). The policies that loaded are returned with the
// error.
//
// Files are opened the one way csv opens a file by name
// (internal/safefile): only regular files, never waiting on a FIFO, and
// capped at limits.MaxPolicyFile bytes. LoadFiles does not combine the
// policies: [NewSet] does, base and supplemental.
func LoadFiles(paths []string) ([]*Policy, error) {
	var ps []*Policy
	var errs []error
	for _, path := range paths {
		data, err := safefile.ReadFile(path, limits.MaxPolicyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot read policy %s: %w", path, err))
			continue
		}
		p, err := ParseWith(data, path, ParseOptions{ReadFile: FileReader(path)})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, p)
	}
	return ps, errors.Join(errs...)
}

// FileReader returns the ParseOptions.ReadFile of the policy file at
// policyPath: it reads the files the policy names (certificate_file)
// relative to the policy's directory (absolute names as they are), the
// way [LoadFiles] opens the policy itself, capped at limits.MaxCertFile
// bytes.
func FileReader(policyPath string) func(name string) ([]byte, error) {
	dir := filepath.Dir(policyPath)
	return func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, filepath.FromSlash(name))
		}
		return safefile.ReadFile(name, limits.MaxCertFile)
	}
}
