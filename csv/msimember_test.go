package csv

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testmsi"
)

// TestMSIMemberJudged: an installer inside a container is judged as an
// MSI whatever its name (msiexec installs a package by its content, not
// its extension), even when its root directory entry, which tells an
// installer from another compound file, lies past the first block the
// format is told by: an unsigned package named setup.dat inside an
// archive is blocked by a policy that allows only the files it carries,
// as it is loose.
func TestMSIMemberJudged(t *testing.T) {
	exe := testbin.PE(testbin.PEOptions{})
	pkg := testmsi.Build(t, testmsi.File{Name: "app.exe", Data: exe})
	dir := tree(t, map[string][]byte{
		"loose.dat": pkg,
		"outer.tc":  testArchive(tcMember{"setup.dat", pkg, ""}, tcMember{"setup.msi", pkg, ""}),
	})
	set := policyFor(t, "{id: exe, action: allow, sha256: "+sha(exe)+"}")
	rep := validate(t, set, Options{}, dir)
	var got []string
	for _, r := range rep.Results {
		got = append(got, fmt.Sprintf("%s %s %s", r.Path, r.Decision.Verdict, r.Format))
	}
	for _, want := range []string{
		"loose.dat blocked msi",
		"outer.tc!/setup.dat blocked msi",
		"outer.tc!/setup.msi blocked msi",
		"outer.tc!/setup.dat!/app.cab!/F0 allowed pe",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no %q in results:\n%s", want, strings.Join(got, "\n"))
		}
	}
}
