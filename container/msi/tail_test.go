package msi_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"testing"

	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/signing"

	_ "github.com/codesignval/csv/container/all" // the readers SniffTail asks
)

// TestEndsAsArchive: a compound file whose last bytes end a zip archive
// (appended after its last sector, or in the unused end of its last
// sector or an unused directory entry, which no stream and no signature
// covers) is refused: unzip and every zip library read an archive from its
// end and lay down members csv never judges.
func TestEndsAsArchive(t *testing.T) {
	data := build(t)
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("hidden.exe")
	w.Write(exe)
	zw.Close()
	appended := append(bytes.Clone(data), zb.Bytes()...)
	// An empty archive's end record, in the file's last 22 bytes.
	eocd := []byte{'P', 'K', 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	slack := bytes.Clone(data)
	copy(slack[len(slack)-len(eocd):], eocd)
	cases := map[string][]byte{"appended": appended}
	if _, err := cfb.Parse(bytes.NewReader(slack), int64(len(slack))); err == nil {
		cases["slack"] = slack
	} else {
		t.Logf("slack: %v", err)
	}
	for name, b := range cases {
		_, err := walk(t, b, nil)
		var me *signing.MalformedError
		if !errors.As(err, &me) {
			t.Errorf("%s: err %v, want malformed", name, err)
		}
	}
	if _, err := walk(t, data, nil); err != nil {
		t.Errorf("the package itself: %v", err)
	}
}
