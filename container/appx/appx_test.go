package appx_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/appx"
	"github.com/codesignval/csv/internal/testappx"
	"github.com/codesignval/csv/internal/testbin"
)

// TestReader: packages are told by name and a zip's first bytes, judged
// as format appx, and walked with the members Go's archive/zip extracts,
// byte for byte.
func TestReader(t *testing.T) {
	data := testappx.Build(t, testappx.Options{Files: []testappx.File{
		{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: make([]byte, 70_000)})},
		{Name: "lib/x.dll", Data: testbin.PE(testbin.PEOptions{PE32: true}), Store: true},
	}})
	r := appx.Reader{}
	for name, want := range map[string]bool{"a.msix": true, "A.APPXBUNDLE": true, "b.msixbundle": true, "c.appx": true, "a.zip": false, "msix": false} {
		if got := r.Sniff(data[:min(len(data), container.SniffSize)], name); got != want {
			t.Errorf("Sniff(%q) = %v", name, got)
		}
	}
	if r.Sniff([]byte("MZ\x90\x00"), "a.msix") {
		t.Error("a PE named .msix is a package")
	}
	if r.JudgedAs() != string(cipolicy.FormatAPPX) {
		t.Error(r.JudgedAs())
	}
	want := map[string][]byte{}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		rc, _ := f.Open()
		want[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	got := map[string][]byte{}
	err = r.Walk(context.Background(), bytes.NewReader(data), int64(len(data)), "a.msix", nil, func(m *container.Member, rd io.Reader) error {
		if m.Problem != nil {
			t.Errorf("%s: %v", m.Name, m.Problem)
			return nil
		}
		b, err := io.ReadAll(rd)
		got[m.Name] = b
		return err
	})
	if err != nil || len(got) != len(want) || len(got) != 5 {
		t.Fatalf("%v: %d members, archive/zip %d", err, len(got), len(want))
	}
	for name, b := range want {
		if !bytes.Equal(got[name], b) {
			t.Errorf("%s differs", name)
		}
	}
}
