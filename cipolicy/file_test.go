package cipolicy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/internal/testca"
)

// TestLoadFiles: LoadFiles reads every file, returns the policies that
// loaded, and joins every problem: a file that cannot be read names it and
// wraps the cause, a policy whose content is wrong is a LoadError; the
// certificate files a policy names are read relative to the policy.
func TestLoadFiles(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	sub := filepath.Join(dir, "policies")
	if err := os.MkdirAll(filepath.Join(sub, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sub, "certs", "pca.pem"), testca.PEM(p.ca.Intermediate.Cert), 0o644)
	good := filepath.Join(sub, "good.yaml")
	os.WriteFile(good, []byte(`format: csv-policy/v1
name: good
version: "1"
rules:
  - id: by-file
    action: allow
    signer:
      certificate_file: certs/pca.pem
      level: issuer
`), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("format: csv-policy/v1\nname: bad\nrules: 3\n"), 0o644)
	missing := filepath.Join(dir, "missing.yaml")

	ps, err := LoadFiles([]string{good})
	if err != nil || len(ps) != 1 {
		t.Fatalf("LoadFiles(good) = %v, %v", ps, err)
	}
	if c := ps[0].Rules[0].Signer.Cert.Certificate; c == nil || c.SHA256 != p.inter.SHA256 {
		t.Errorf("certificate_file not read relative to the policy: %+v", ps[0].Rules[0].Signer)
	}

	ps, err = LoadFiles([]string{missing, good, bad, sub})
	if len(ps) != 1 || ps[0].Name != "good" {
		t.Errorf("policies loaded beside the errors: %v", ps)
	}
	var le *LoadError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &le) || le.Source != bad || !errors.Is(err, ErrInvalidPolicy) || !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("err = %v, want the missing file, the bad policy and the directory, joined", err)
	}
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != 3 {
		t.Errorf("err = %v, want three errors joined", err)
	}

	// A certificate file is read as the policy is: a directory is refused,
	// not read.
	r := FileReader(good)
	if data, err := r("certs/pca.pem"); err != nil || len(data) == 0 {
		t.Errorf("FileReader(relative) = %d bytes, %v", len(data), err)
	}
	if _, err := r(filepath.Join(sub, "certs")); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("FileReader(directory) = %v, want ErrNotRegular", err)
	}
}
