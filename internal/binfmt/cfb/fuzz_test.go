package cfb

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/codesignval/csv/signing"
)

// FuzzParse: Parse and reading every stream never panic, fail only with
// a *signing.MalformedError (the input is in memory: no I/O errors), and
// a stream reads exactly its size.
func FuzzParse(f *testing.F) {
	data := build(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(data[:1024])
	for _, off := range []int{0x2c, 0x30, 0x3c, 0x4c, 0x200, 0x400} {
		b := bytes.Clone(data)
		b[off] ^= 0x01
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(bytes.NewReader(b), int64(len(b)))
		var me *signing.MalformedError
		if err != nil {
			if !errors.As(err, &me) {
				t.Fatalf("not a MalformedError: %v", err)
			}
			return
		}
		if file.End > int64(len(b)) {
			t.Fatalf("end %d past the file's %d bytes", file.End, len(b))
		}
		for i := range file.Entries {
			e := &file.Entries[i]
			if e.Type != TypeStream {
				continue
			}
			s, err := file.Open(i)
			if err != nil {
				t.Fatalf("Open after Parse: %v", err)
			}
			n, err := io.Copy(io.Discard, s)
			if err != nil {
				if !errors.As(err, &me) {
					t.Fatalf("reading: not a MalformedError: %v", err)
				}
				continue
			}
			if n != e.Size {
				t.Fatalf("stream %q: read %d bytes, size %d", e.Name, n, e.Size)
			}
		}
	})
}
