package rpm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/codesignval/csv/container"
)

// manyLinkGroups is a payload of n files of two hard links each: the n
// links without data first, then the n links with it, in the same order.
func manyLinkGroups(n int) []byte {
	ents := make([]ent, 0, 2*n)
	for i := range n {
		ents = append(ents, ent{name: fmt.Sprintf("a/%d", i), mode: reg, nlink: 2, ino: uint32(i + 1)})
	}
	for i := range n {
		ents = append(ents, ent{name: fmt.Sprintf("b/%d", i), mode: reg, nlink: 2, ino: uint32(i + 1), data: []byte{'x'}})
	}
	return mkRPM(nil, gzMain(), gz(cpioArchive(ents, true)))
}

// TestManyLinkGroups: a payload whose files each have links waiting for
// their data costs time linear in its entries (the waiting groups were a
// slice searched and shifted at every file's data: quadratic).
func TestManyLinkGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a payload of 400,000 entries")
	}
	const n = 200_000
	pkg := manyLinkGroups(n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	members := 0
	err := Reader{}.Walk(ctx, bytes.NewReader(pkg), int64(len(pkg)), "x.rpm", defaultLimits(),
		func(m *container.Member, r io.Reader) error {
			members++
			if m.Problem != nil {
				return m.Problem
			}
			_, err := io.Copy(io.Discard, r)
			return err
		})
	if err != nil || members != 2*n {
		t.Fatalf("Walk: %v after %d members, want %d (%v)", err, members, 2*n, time.Since(start))
	}
	t.Logf("%d members in %v", members, time.Since(start))
}
