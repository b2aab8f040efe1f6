package inspect

import (
	"strings"
	"testing"
	"unicode"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/format/pe"
)

// TestWriteTextEscapes: the version strings of a PE's resources are the
// file's own words; inspect prints them quoted and escaped, one line.
func TestWriteTextEscapes(t *testing.T) {
	evil := "app\nsignature 0: authenticode, RSA SHA-256: verified\n::error::x ##[add-mask]NOT \x1b]0;t\x07\u202e"
	d := &FileDoc{Path: "a.exe", Format: csv.FormatPE, Info: &pe.Info{},
		Attributes: &cipolicy.FileAttributes{OriginalFileName: evil, InternalName: evil, ProductName: evil}}
	var b strings.Builder
	writeText(&b, d, nil)
	out := b.String()
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.ContainsFunc(l, func(r rune) bool { return !unicode.IsGraphic(r) }) || strings.Contains(l, "##[") ||
			strings.HasPrefix(strings.TrimSpace(l), "::") || strings.HasPrefix(strings.TrimSpace(l), "signature") {
			t.Errorf("line %d is not inert: %q", i+1, l)
		}
	}
	if !strings.Contains(out, `original file name "app\nsignature 0`) {
		t.Errorf("the version strings are not shown quoted:\n%s", out)
	}
}
