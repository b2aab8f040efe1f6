package msi_test

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/container/msi"
	"github.com/codesignval/csv/internal/binfmt/cfb"
)

// TestDeepStoragesLinear: storages nested tens of thousands deep (a
// compound file's directory holds up to 65,536 entries), each with a
// name that decodes to 62 characters, cost work linear in the file: the
// walk built every level's path anew (quadratic: gigabytes copied). A
// path past the member-name cap is a blocked member; the streams below
// are not read.
func TestDeepStoragesLinear(t *testing.T) {
	// 31 characters of U+3800..U+47FF each decode to two.
	name := strings.Repeat("\u3a41", 31)
	leaf := []byte("MZ hidden deep")
	var root = &cfb.Node{Type: cfb.TypeRoot}
	cur := root
	const depth = 12000
	for range depth {
		n := &cfb.Node{Name: name, Type: cfb.TypeStorage}
		cur.Children = []*cfb.Node{n}
		cur = n
	}
	cur.Children = []*cfb.Node{{Name: "x", Type: cfb.TypeStream, Size: int64(len(leaf)),
		Open: func() (io.Reader, error) { return bytes.NewReader(leaf), nil }}}
	var out bytes.Buffer
	if _, err := cfb.Write(&out, root, 512); err != nil {
		t.Fatal(err)
	}
	data := out.Bytes()
	if _, err := cfb.Parse(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// The work is measured by the bytes the walk allocates, not by the
	// time it takes (which a loaded machine stretches): building every
	// level's path anew allocates depth²·62/2 bytes, some 4.5 GB here.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var members []*container.Member
	err := msi.Reader{}.Walk(context.Background(), bytes.NewReader(data), int64(len(data)), "deep.msi", nil,
		func(m *container.Member, r io.Reader) error {
			members = append(members, m)
			return nil
		})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	if limit := uint64(64 * len(data)); allocated > limit {
		t.Errorf("the walk allocated %d bytes for a %d-byte file (more than %d: not linear)", allocated, len(data), limit)
	}
	if len(members) != 1 || members[0].Problem == nil {
		t.Fatalf("members %+v, want one blocked", members)
	}
	t.Logf("%d bytes, %d allocated: %v", len(data), allocated, members[0].Problem)
}
