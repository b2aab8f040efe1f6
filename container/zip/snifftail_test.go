package zip

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// sniffTailScan is SniffTail as a scan of every position from the end:
// the oracle SniffTail's search must agree with.
func sniffTailScan(tail []byte) bool {
	for i := len(tail) - endLen; i >= 0; i-- {
		if le32(tail[i:]) == sigEnd && i+endLen+int(le16(tail[i+20:])) == len(tail) {
			return true
		}
	}
	return false
}

// TestSniffTailAgreesWithScan: on tails with records planted anywhere
// (whole, cut, with comments that do and do not reach the end, several,
// none), SniffTail says what a scan of every position says.
func TestSniffTailAgreesWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	found := 0
	for n := range 20000 {
		tail := make([]byte, r.IntN(300))
		for i := range tail {
			tail[i] = byte(r.IntN(4)) // few distinct bytes: near misses
		}
		for range r.IntN(4) {
			if len(tail) < 4 {
				break
			}
			at := r.IntN(len(tail) - 3)
			binary.LittleEndian.PutUint32(tail[at:], sigEnd)
			if at+22 <= len(tail) && r.IntN(2) == 0 {
				// A comment length that ends the record at the end.
				binary.LittleEndian.PutUint16(tail[at+20:], uint16(len(tail)-at-22))
			}
		}
		got, want := Reader{}.SniffTail(tail), sniffTailScan(tail)
		if got != want {
			t.Fatalf("tail %d (% x): SniffTail %v, scan %v", n, tail, got, want)
		}
		if want {
			found++
		}
	}
	if found < 1000 {
		t.Fatalf("only %d tails end with a record: the test plants too few", found)
	}
}
