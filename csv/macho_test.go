package csv

import (
	stdtar "archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/testbin"
)

// TestMachOIsAFinding: a Mach-O image or fat (universal) file, loose or
// in a container, is blocked with what it is (a binary csv cannot judge),
// even under a rule that allows its SHA256: it was skipped as "not a PE or
// ELF file", so a macOS binary shipped unjudged through a policy that
// admits only what it judged. A Java class file, which starts with the
// fat magic 0xcafebabe too, is still skipped.
func TestMachOIsAFinding(t *testing.T) {
	thin := testbin.MachO(true, binary.LittleEndian)
	universal := testbin.FatMachO(0xcafebabe, thin, testbin.MachO(false, binary.LittleEndian))
	var tb bytes.Buffer
	tw := stdtar.NewWriter(&tb)
	for _, m := range []struct {
		name string
		data []byte
	}{{"bin/tool", thin}, {"Main.class", testbin.JavaClass(0, 65)}} {
		if err := tw.WriteHeader(&stdtar.Header{Name: m.name, Typeflag: stdtar.TypeReg, Size: int64(len(m.data)), Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := tree(t, map[string][]byte{
		"mac/tool":        thin,
		"mac/universal":   universal,
		"java/Main.class": testbin.JavaClass(0, 65),
		"pkg.tar":         tb.Bytes(),
		"outer.tc":        testArchive(tcMember{"lib.dylib", universal, ""}),
	})
	rep := validate(t, policyFor(t, "{id: mac, action: allow, sha256: "+sha(thin)+"}"), Options{}, dir)
	judged, skipped := paths(rep)
	if want := []string{"mac/tool", "mac/universal", "outer.tc!/lib.dylib", "pkg.tar!/bin/tool"}; !slices.Equal(judged, want) {
		t.Errorf("judged %q, want %q", judged, want)
	}
	for _, s := range []string{"java/Main.class", "pkg.tar!/Main.class"} {
		if !slices.Contains(skipped, s) {
			t.Errorf("%s not skipped as a file of no format: skipped %q", s, skipped)
		}
	}
	for _, r := range rep.Results {
		kind := "Mach-O (64-bit)"
		if strings.Contains(r.Path, "universal") || strings.HasSuffix(r.Path, ".dylib") {
			kind = "fat (universal) Mach-O"
		}
		if r.Decision.Allowed() || r.Decision.Kind != cipolicy.KindMalformed || !errors.Is(r.Err, format.ErrUnjudgeable) ||
			!strings.Contains(r.Decision.Reason, "a "+kind+" binary: csv cannot judge") {
			t.Errorf("%s: %v %s %q (err %v): want blocked as a %s csv cannot judge", r.Path, r.Decision.Verdict, r.Decision.Kind, r.Decision.Reason, r.Err, kind)
		}
	}
	if s := rep.Summary; s.Files != 4 || s.Blocked != 4 {
		t.Errorf("summary %+v: want 4 files judged, 4 blocked", s)
	}
}
