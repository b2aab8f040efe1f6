package report_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
)

// TestFileDocOf: csv inspect's JSON of a file has its fields in the order
// the command wrote them, each digest and the format's facts in place, and
// the error of a file that could not be read.
func TestFileDocOf(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "build", "app.exe")
	b, err := json.Marshal(report.FileDocOf(path, csv.InspectFile(t.Context(), path, nil, csv.InspectOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	last := -1
	for _, k := range []string{`"path"`, `"format":"pe"`, `"size":1024`, `"sha256":"d510c71f`, `"authenticode_sha256":"77318206`, `"signed":false`, `"signatures":[]`, `"pe":{"pe32plus":true`} {
		i := strings.Index(s, k)
		if i <= last {
			t.Fatalf("%s missing or out of order in %s", k, s)
		}
		last = i
	}
	if strings.Contains(s, `"error"`) {
		t.Errorf("an error in %s", s)
	}
	missing := filepath.Join(t.TempDir(), "missing.exe")
	d := report.FileDocOf(missing, csv.InspectFile(t.Context(), missing, nil, csv.InspectOptions{}))
	if d.Error == "" || d.Path != missing {
		t.Errorf("a missing file: %+v", d)
	}
}
