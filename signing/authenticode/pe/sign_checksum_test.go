package pe

import (
	"math/rand/v2"
	"testing"

	"github.com/codesignval/csv/internal/testbin"
)

// TestPEChecksumIncremental checks the streaming checksum against
// testbin.Checksum (CheckSumMappedFile over a whole buffer) for files of
// every length modulo 8, added in 8-aligned chunks of random sizes with the
// CheckSum field zeroed, plus a patch added at an unaligned offset, as Sign
// adds the directory entry after the stream. It also pins the fold's edge
// cases: an all-zero file sums to 0, a sum ≡ 0 mod 0xffff to 0xffff.
func TestPEChecksumIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 64 {
		size := 300 + n*37 + rng.IntN(5000)
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ckOff := 8 * (1 + rng.IntN(20))
		patchOff := ckOff + 4 + rng.IntN(60) // any parity
		want := testbin.Checksum(data, ckOff)

		stream := append([]byte(nil), data...)
		clear(stream[ckOff : ckOff+4])
		patch := append([]byte(nil), stream[patchOff:patchOff+8]...)
		clear(stream[patchOff : patchOff+8])
		var c peChecksum
		for pos := 0; pos < size; {
			end := min(size, pos+8*(1+rng.IntN(100)))
			c.add(stream[pos:end], int64(pos))
			pos = end
		}
		c.add(patch, int64(patchOff))
		if got := c.sum16() + uint32(size); got != want {
			t.Fatalf("size %d, CheckSum at %d, patch at %d: %#x, want %#x", size, ckOff, patchOff, got, want)
		}
	}

	// Large chunks, as Stream adds them (and larger than the fold's 1 MiB
	// blocks), at an aligned and an odd start.
	for _, size := range []int{256 << 10, 3<<20 + 13} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if size > 1<<20 {
			for i := range 1 << 20 {
				data[i] = 0xff // the largest halves, for the accumulators
			}
		}
		want := testbin.Checksum(data, 1<<30)
		var c peChecksum
		c.add(data[:5], 0)
		c.add(data[5:], 5)
		if got := c.sum16() + uint32(size); got != want {
			t.Fatalf("size %d in one chunk: %#x, want %#x", size, got, want)
		}
	}

	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"zeros", make([]byte, 100)},
		{"ffff", []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"ffff-twice", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0}},
		{"carry", []byte{0xff, 0xff, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0xff}},
	} {
		var c peChecksum
		c.add(tt.data, 0)
		if got, want := c.sum16()+uint32(len(tt.data)), testbin.Checksum(tt.data, 1<<30); got != want {
			t.Errorf("%s: %#x, want %#x", tt.name, got, want)
		}
	}
}
