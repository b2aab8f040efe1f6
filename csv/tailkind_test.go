package csv

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/codesignval/csv/container"
	_ "github.com/codesignval/csv/container/all"
)

// tailKind finds a zip's end record at the end of a long member read in
// small and large pieces, and none when bytes follow it.
func TestTailKind(t *testing.T) {
	end := append([]byte("PK\x05\x06"), make([]byte, 18)...) // an empty zip's end record
	prefix := bytes.Repeat([]byte("#!/bin/sh\n"), 30_000)
	for _, tc := range []struct {
		name string
		data []byte
		want container.Kind
	}{
		{"zip after 300 kB", append(bytes.Clone(prefix), end...), "zip"},
		{"bytes after it", append(append(bytes.Clone(prefix), end...), 'x'), ""},
		{"none", prefix, ""},
	} {
		for _, r := range []io.Reader{bytes.NewReader(tc.data), iotest.HalfReader(bytes.NewReader(tc.data))} {
			head := make([]byte, 4096)
			n, _ := io.ReadFull(r, head)
			got, err := tailKind(r, head[:n], true)
			if err != nil || got != tc.want {
				t.Errorf("%s: tailKind %q, %v; want %q", tc.name, got, err, tc.want)
			}
		}
	}
}
