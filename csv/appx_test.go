package csv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testappx"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing/authenticode/appx"
)

// TestAPPXJudgedAndWalked: an MSIX/APPX package is judged as format appx
// by its own signature and walked, its members judged as loose files: a
// signer-only policy admits the package osslsigncode signed with the
// build's certificate and the PE in it signed so, and blocks the unsigned
// PE inside it; an unsigned package, one whose manifest names another
// publisher, and one with a changed member are blocked (the last without
// its members walked).
func TestAPPXJudgedAndWalked(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	keys := t.TempDir()
	files := ca.WriteFiles(t, keys, leaf)
	raw := filepath.Join(keys, "signed.exe")
	os.WriteFile(raw, testbin.PE(testbin.PEOptions{}), 0o644)
	signPE(t, ossl, files, raw, filepath.Join(keys, "signed-out.exe"))
	signedExe, err := os.ReadFile(filepath.Join(keys, "signed-out.exe"))
	if err != nil {
		t.Fatal(err)
	}
	payload := []testappx.File{
		{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: make([]byte, 100_000)})},
		{Name: "tools/signed.exe", Data: signedExe, Store: true},
	}
	unsigned := testappx.Build(t, testappx.Options{Files: payload})
	signed := testappx.Sign(t, files, unsigned)
	other := testappx.Sign(t, files, testappx.Build(t, testappx.Options{Files: payload, Publisher: "CN=Someone Else"}))
	pkg, err := appx.Parse(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(signed)
	changed[pkg.Entry("tools/signed.exe").Data+100] ^= 1 // stored
	dir := tree(t, map[string][]byte{
		"signed.msix":      signed,
		"unsigned.appx":    unsigned,
		"otherpub.appx":    other,
		"changed.msix":     changed,
		"named.zip":        signed, // a zip by its name: walked, not judged as a package
		"zip64.msix":       testappx.Sign(t, files, testappx.Build(t, testappx.Options{Files: payload, Zip64: true, DataDescriptor: true})),
		"outer/bundle.zip": signed,
	})
	inter := sigCert(t, ca.Intermediate.Cert)
	set := policyFor(t, fmt.Sprintf("{id: pca, action: allow, signer: {tbs: %s, level: issuer}}", inter.TBSHashHex()))
	rep := validate(t, set, Options{}, dir)
	got := map[string]Result{}
	var lines []string
	for _, r := range rep.Results {
		got[r.Path] = r
		lines = append(lines, fmt.Sprintf("%s %s %s", r.Path, r.Decision.Verdict, r.Format))
	}
	for _, want := range []string{
		"signed.msix allowed appx",
		"signed.msix!/app.exe blocked pe",
		"signed.msix!/tools/signed.exe allowed pe",
		"unsigned.appx blocked appx",
		"unsigned.appx!/app.exe blocked pe",
		"otherpub.appx blocked appx",
		"changed.msix blocked appx",
		"named.zip!/tools/signed.exe allowed pe",
		"zip64.msix allowed appx",
		"zip64.msix!/tools/signed.exe allowed pe",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("no %q in results:\n%s", want, strings.Join(lines, "\n"))
		}
	}
	for _, p := range []string{"unsigned.appx", "otherpub.appx", "changed.msix", "signed.msix"} {
		t.Logf("%s: %s", p, got[p].Decision.Reason)
	}
	if r := got["otherpub.appx"]; !strings.Contains(r.Decision.Reason, "Publisher") {
		t.Errorf("otherpub.appx: %q", r.Decision.Reason)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "changed.msix!/") {
			t.Errorf("a malformed package's members are walked: %s", l)
		}
	}
	if r := got["changed.msix"]; r.Err == nil {
		t.Errorf("changed.msix: %+v", r.Decision)
	}
}

// TestSignAPPX: csv sign signs an MSIX package in place (its members are
// not signed: a package is signed as one file), osslsigncode verifies the
// result and validate admits it with a signer rule; a package whose
// manifest names another publisher than the signing certificate is not
// signed, and nothing in the tree changes.
func TestSignAPPX(t *testing.T) {
	s := newSigner(t)
	payload := []testappx.File{{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: make([]byte, 80_000)})}}
	pkg := testappx.Build(t, testappx.Options{Files: payload, Publisher: "CN=Build Signing, O=csv tests"})
	dir := tree(t, map[string][]byte{"dist/app.msix": pkg, "dist/tool.exe": testbin.PE(testbin.PEOptions{})})
	rep, err := Sign(t.Context(), s.opts(), dir)
	if err != nil {
		t.Fatal(err)
	}
	formats := map[string]Format{}
	for _, sg := range rep.Signed {
		formats[sg.Path] = sg.Format
	}
	if formats["dist/app.msix"] != cipolicy.FormatAPPX || formats["dist/tool.exe"] != FormatPE {
		t.Fatalf("signed %v", formats)
	}
	signed, err := os.ReadFile(filepath.Join(dir, "dist", "app.msix"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, out := testappx.Verify(t, s.files, signed); !ok {
		t.Fatalf("osslsigncode refuses the package csv signed:\n%s", out)
	}
	got := map[string]Result{}
	for _, r := range validate(t, s.pcaPolicy(t), Options{}, dir).Results {
		got[r.Path] = r
	}
	if d := got["dist/app.msix"].Decision; !d.Allowed() || got["dist/app.msix"].Format != cipolicy.FormatAPPX {
		t.Errorf("the signed package: %s", d.Reason)
	}
	if d := got["dist/app.msix!/app.exe"].Decision; d.Allowed() {
		t.Errorf("the unsigned member is allowed: %s", d.Reason)
	}

	other := testappx.Build(t, testappx.Options{Files: payload, Publisher: "CN=Someone Else"})
	dir = tree(t, map[string][]byte{"app.appx": other, "tool.exe": testbin.PE(testbin.PEOptions{})})
	before := snapshot(t, dir)
	if _, err := Sign(t.Context(), s.opts(), dir); !errors.Is(err, appx.ErrPublisher) {
		t.Fatalf("another publisher: %v", err)
	}
	after := snapshot(t, dir)
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed", name)
		}
	}
}
