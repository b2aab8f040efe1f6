package msi_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/codesignval/csv/internal/binfmt/cfb"
)

// TestNoStreamHides: a stream is left out only when it is one of the
// database's own (a table, the signature and summary information streams
// by their exact stored names). A root stream or storage whose name merely
// starts with \x05 or with a table's prefix is what Windows Installer opens
// when the Media table names "#\x05app.cab" (its stream-name encoder keeps
// such characters as they are): it is a member, judged, not passed over.
func TestNoStreamHides(t *testing.T) {
	data := build(t)
	f, err := cfb.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	root := f.Tree()
	stream := func(name string, b []byte) *cfb.Node {
		return &cfb.Node{Name: name, Type: cfb.TypeStream, Size: int64(len(b)),
			Open: func() (io.Reader, error) { return bytes.NewReader(b), nil }}
	}
	root.Children = append(root.Children,
		stream("\x05hidden.cab", exe),
		&cfb.Node{Name: "\x05store", Type: cfb.TypeStorage, Children: []*cfb.Node{stream("inner.exe", exe)}},
		&cfb.Node{Name: "\u4840store", Type: cfb.TypeStorage, Children: []*cfb.Node{stream("inner.exe", exe)}},
	)
	var out bytes.Buffer
	if _, err := cfb.Write(&out, root, 512); err != nil {
		t.Fatal(err)
	}
	members, err := walk(t, out.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range members {
		seen[m.m.Name] = true
		if m.m.Problem == nil && !bytes.Equal(m.data, exe) && m.m.Name != "app.cab" && m.m.Name != "Binary.CustomDll" && m.m.Name != "Binary.Tiny" {
			t.Logf("member %q: %d bytes", m.m.Name, len(m.data))
		}
	}
	for _, want := range []string{"\x05hidden.cab", "\x05store/inner.exe", "\u4840store/inner.exe"} {
		if !seen[want] {
			t.Errorf("stream %+q is not a member (members: %q)", want, keys(seen))
		}
	}
	for _, not := range []string{"\x05SummaryInformation"} {
		if seen[not] {
			t.Errorf("%+q is a member", not)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
