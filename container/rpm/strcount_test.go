package rpm

import (
	"errors"
	"runtime"
	"testing"

	"github.com/codesignval/csv/signing"
)

// TestStringArrayCount: a string array of millions of empty strings (a
// header store of NUL bytes) is refused before it is read into memory,
// where each one-byte string cost a 16-byte string header and the file
// list built from it more.
func TestStringArrayCount(t *testing.T) {
	const n = 8 << 20
	for _, tag := range []uint32{tagPayloadDigest, tagBaseNames} {
		main := gzMain(tagv{tag, typeStringArray, n, make([]byte, n)})
		if tag == tagBaseNames {
			main = append(main, tStrs(tagDirNames, "/"), tagv{tagDirIndexes, typeInt32, n, make([]byte, 4*n)})
		}
		pkg := mkRPM(nil, main, gz(cpioArchive(nil, true)))
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		_, err := walk(t, pkg, nil)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("tag %d: Walk: %v, want a malformed header", tag, err)
		}
		if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 4*uint64(len(pkg)) {
			t.Errorf("tag %d: a %d-byte package allocated %d MiB", tag, len(pkg), grew>>20)
		}
	}
}
