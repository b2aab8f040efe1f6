package cfb

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// TestWriteRoundTrip: a package written back from its tree, with either
// sector size, parses to the same entries (names, metadata, every
// stream's bytes), and msiinfo reads the same streams from it.
func TestWriteRoundTrip(t *testing.T) {
	data := build(t)
	f, err := parse(t, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, ss := range []int{512, 4096} {
		var out bytes.Buffer
		n, err := Write(&out, f.Tree(), ss)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(out.Len()) || n%int64(ss) != 0 {
			t.Fatalf("wrote %d bytes, reported %d", out.Len(), n)
		}
		g, err := parse(t, out.Bytes())
		if err != nil {
			t.Fatalf("sector size %d: %v", ss, err)
		}
		if len(g.Entries) != len(f.Entries) || g.SectorSize != ss || g.End != n {
			t.Fatalf("%d entries, %d-byte sectors, end %d", len(g.Entries), g.SectorSize, g.End)
		}
		want := map[string]Entry{}
		for i, e := range f.Entries {
			if e.Type == TypeStream {
				e.RawName = readStream(t, f, i) // the content, compared below
			}
			want[e.Name] = e
		}
		for i, e := range g.Entries {
			w, ok := want[e.Name]
			if !ok || w.Type != e.Type || w.CLSID != e.CLSID || w.StateBits != e.StateBits || w.Created != e.Created || w.Modified != e.Modified || w.Size != e.Size {
				t.Errorf("%+q: %+v, want %+v", e.Name, e, w)
				continue
			}
			if e.Type == TypeStream && !bytes.Equal(readStream(t, g, i), w.RawName) {
				t.Errorf("%+q: content differs", e.Name)
			}
		}
		msiinfo := testenv.Tool(t, "msiinfo")
		path := filepath.Join(t.TempDir(), "w.msi")
		os.WriteFile(path, out.Bytes(), 0o600)
		a, err1 := exec.Command(msiinfo, "export", path, "File").Output()
		b, err2 := exec.Command(msiinfo, "export", writeTemp(t, data), "File").Output()
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("msiinfo export File: %v %v\n%s\n%s", err1, err2, a, b)
		}
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "in.msi")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEmptyStream: an empty stream reads as empty whatever its start
// sector says (writers leave 0, ENDOFCHAIN or NOSTREAM there).
func TestEmptyStream(t *testing.T) {
	root := &Node{Type: TypeRoot, Children: []*Node{{Name: "empty", Type: TypeStream,
		Open: func() (io.Reader, error) { return bytes.NewReader(nil), nil }}}}
	var out bytes.Buffer
	if _, err := Write(&out, root, 512); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	f, err := parse(t, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []uint32{0, endOfChain, noStream, 12345} {
		binary.LittleEndian.PutUint32(b[f.Entries[1].Offset+0x74:], start)
		g, err := parse(t, b)
		if err != nil {
			t.Fatalf("start %#x: %v", start, err)
		}
		if data := readStream(t, g, 1); len(data) != 0 {
			t.Fatalf("start %#x: %d bytes", start, len(data))
		}
	}
}
