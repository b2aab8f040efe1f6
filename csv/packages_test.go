package csv

import (
	"path"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// TestRealWorldPackages judges real packages as they are published
// (scripts/fetch-packages.sh): Debian's kernel image package, whose
// data.tar.xz holds some 4,000 kernel modules signed with Debian's module
// key and vmlinuz, an EFI PE signed by Debian's Secure Boot key; npm's
// esbuild packages (a tar.gz holding a PE and an ELF). Every binary inside
// is found, parsed and its signatures read; none is malformed.
func TestRealWorldPackages(t *testing.T) {
	deb := testenv.Packages(t, "linux-image.deb")
	rep := validate(t, policyFor(t), Options{AllDigests: true}, deb)
	modules, signed := 0, 0
	var vmlinuz *Result
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Err != nil {
			t.Errorf("%s: %v", r.Path, r.Err)
			continue
		}
		if !strings.HasPrefix(r.Path, "linux-image.deb!/") {
			t.Errorf("path %q", r.Path)
		}
		switch {
		case strings.HasSuffix(r.Path, ".ko"):
			modules++
			if r.Format == FormatELF && r.Signed {
				signed++
			}
		case strings.HasPrefix(path.Base(r.Path), "vmlinuz-"):
			vmlinuz = r
		}
	}
	if modules < 1000 || signed != modules {
		t.Errorf("%d kernel modules, %d of them ELF with a module signature: want over 1,000, all signed", modules, signed)
	}
	if vmlinuz == nil || vmlinuz.Format != FormatPE || !vmlinuz.Signed || len(vmlinuz.Signatures) == 0 {
		t.Errorf("vmlinuz: %+v", vmlinuz)
	} else if s := vmlinuz.Signatures[0].Signer(); s == nil || !strings.Contains(s.CommonName(), "Debian") {
		t.Errorf("vmlinuz signed by %v", s)
	}
	t.Logf("%s: %d results (%d kernel modules), %d skipped", deb, len(rep.Results), modules, rep.Summary.Skipped)

	for name, want := range map[string]struct {
		member string
		format Format
	}{
		"esbuild-win32-x64.tgz": {"esbuild-win32-x64.tgz!/package/esbuild.exe", FormatPE},
		"esbuild-linux-x64.tgz": {"esbuild-linux-x64.tgz!/package/bin/esbuild", FormatELF},
	} {
		rep := validate(t, policyFor(t), Options{}, testenv.Packages(t, name))
		found := false
		for _, r := range rep.Results {
			if r.Path == want.member {
				found = r.Format == want.format && r.Err == nil && !r.Decision.Allowed()
			}
		}
		if !found {
			t.Errorf("%s: no %s member %s blocked by an empty policy: %+v", name, want.format, want.member, rep.Results)
		}
	}
}
