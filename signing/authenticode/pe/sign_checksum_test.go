package pe

import (
	"bytes"
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
	// Both sums: the vector one (where the machine has AVX2) and the
	// scalar one.
	paths := []bool{false}
	if vectorChecksum {
		paths = append(paths, true)
	}
	defer func(v bool) { vectorChecksum = v }(vectorChecksum)
	for _, vec := range paths {
		vectorChecksum = vec
		t.Run(map[bool]string{false: "scalar", true: "vector"}[vec], testPEChecksumIncremental)
	}
}

func testPEChecksumIncremental(t *testing.T) {
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

	// Large chunks, as Stream adds them (and larger than the fold's and
	// the vector sum's 1 MiB blocks), at an aligned and an odd start.
	for _, size := range []int{256 << 10, 3<<20 + 13, 1<<20 + 40} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if size > 1<<20 {
			for i := range 1<<20 + 8 {
				data[i] = 0xff // the largest words, for the accumulators' lanes
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

// FuzzPEChecksumVector: the vector sum and the scalar one agree, for any
// bytes added at any offset, and both agree with testbin.Checksum.
func FuzzPEChecksumVector(f *testing.F) {
	f.Add(make([]byte, 300), uint8(0))
	f.Add(bytes.Repeat([]byte{0xff}, 4096+7), uint8(3))
	f.Add(testbin.PE(testbin.PEOptions{}), uint8(8))
	f.Fuzz(func(t *testing.T, data []byte, skew uint8) {
		defer func(v bool) { vectorChecksum = v }(vectorChecksum)
		off := int(skew % 16)
		sums := map[bool]uint32{}
		for _, vec := range []bool{false, true} {
			vectorChecksum = vec && vectorChecksum
			var c peChecksum
			c.add(data[:min(off, len(data))], 0)
			c.add(data[min(off, len(data)):], int64(min(off, len(data))))
			sums[vec] = c.sum16() + uint32(len(data))
		}
		if sums[false] != sums[true] {
			t.Fatalf("vector %#x, scalar %#x (%d bytes, skew %d)", sums[true], sums[false], len(data), off)
		}
		if want := testbin.Checksum(data, 1<<30); sums[false] != want {
			t.Fatalf("scalar %#x, want %#x (%d bytes, skew %d)", sums[false], want, len(data), off)
		}
	})
}
