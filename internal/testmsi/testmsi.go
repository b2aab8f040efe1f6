// Package testmsi builds Windows Installer packages for tests with the
// real tools: wixl (msitools) builds them from a WiX source written here,
// osslsigncode signs and verifies them. Tests skip (testenv.Tool) where a
// tool is missing.
package testmsi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
)

// File is a file an installer lays down (in its embedded cabinet), or a
// Binary table entry (a custom action DLL) when Binary is set.
type File struct {
	Name   string
	Data   []byte
	Binary bool
}

// Build writes the files to a temporary directory and builds an MSI with
// wixl: one component per file in an embedded cabinet, Binary entries as
// Binary table streams. It returns the package's bytes.
func Build(t testing.TB, files ...File) []byte {
	t.Helper()
	return BuildMedia(t, `<Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>`, files...)
}

// BuildMedia is Build with the WiX Media element given (such as
// `<Media Id="1" Cabinet="app.cab" EmbedCab="no"/>`: an external cabinet,
// which wixl names in the Media table and does not write).
func BuildMedia(t testing.TB, media string, files ...File) []byte {
	t.Helper()
	wixl := testenv.Tool(t, "wixl")
	dir := t.TempDir()
	var comps, refs, bins strings.Builder
	for i, f := range files {
		src := fmt.Sprintf("src%d", i) // wixl takes paths relative to its directory
		if err := os.WriteFile(filepath.Join(dir, src), f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
		if f.Binary {
			fmt.Fprintf(&bins, "<Binary Id=%q SourceFile=%q/>\n", f.Name, src)
			continue
		}
		fmt.Fprintf(&comps, "<Component Id=\"C%d\" Guid=\"12345678-1234-1234-1234-%012d\"><File Id=\"F%d\" Name=%q Source=%q KeyPath=\"yes\"/></Component>\n", i, i+1, i, f.Name, src)
		fmt.Fprintf(&refs, "<ComponentRef Id=\"C%d\"/>", i)
	}
	wxs := `<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="12345678-1234-1234-1234-aaaaaaaaaaaa" Name="csv test" Language="1033" Version="1.0.0" Manufacturer="csv" UpgradeCode="12345678-1234-1234-1234-bbbbbbbbbbbb">
    <Package InstallerVersion="200" Compressed="yes" Comments="csv test"/>
    ` + media + `
    ` + bins.String() + `
    <Directory Id="TARGETDIR" Name="SourceDir"><Directory Id="ProgramFilesFolder"><Directory Id="INSTALLDIR" Name="csvtest">
    ` + comps.String() + `
    </Directory></Directory></Directory>
    <Feature Id="Main" Level="1">` + refs.String() + `</Feature>
  </Product>
</Wix>`
	src, out := filepath.Join(dir, "p.wxs"), filepath.Join(dir, "p.msi")
	if err := os.WriteFile(src, []byte(wxs), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wixl, "-o", "p.msi", "p.wxs")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wixl: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Env is the environment without proxies (osslsigncode would use them for
// timestamps).
func Env() []string {
	return testenv.NoProxyEnv()
}

// Sign signs data with osslsigncode (args such as -add-msi-dse, -h sha1,
// -nest).
func Sign(t testing.TB, files testca.Files, data []byte, args ...string) []byte {
	t.Helper()
	return testenv.OsslSign(t, files.Chain, files.Key, "msi", data, args...)
}

var calculated = regexp.MustCompile(`Calculated DigitalSignature\s*:\s*([0-9A-Fa-f]+)`)

// Verify runs osslsigncode verify on data at testca's epoch; it returns
// whether osslsigncode accepts it, the digests it calculated (lower-case
// hex) and its output.
func Verify(t testing.TB, files testca.Files, data []byte) (bool, []string, string) {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	path := filepath.Join(t.TempDir(), "v.msi")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ossl, "verify", "-CAfile", files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running osslsigncode: %v", err)
	}
	var digests []string
	for _, m := range calculated.FindAllStringSubmatch(string(out), -1) {
		digests = append(digests, strings.ToLower(m[1]))
	}
	return err == nil, digests, string(out)
}
