package pe

import "testing"

// BenchmarkPEChecksum sums a 4 MB image as Sign does (in 256 KiB chunks).
func BenchmarkPEChecksum(b *testing.B) {
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		var c peChecksum
		for off := 0; off < len(buf); off += 256 << 10 {
			c.add(buf[off:off+256<<10], int64(off))
		}
		_ = c.sum16()
	}
}

// BenchmarkPEChecksumChunk sums one 256 KiB chunk (in the cache, as Sign
// sums each chunk after digesting it), with the vector sum where the
// machine has it and without.
func BenchmarkPEChecksumChunk(b *testing.B) {
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i*7 + i>>9)
	}
	defer func(v bool) { vectorChecksum = v }(vectorChecksum)
	for _, vec := range []bool{false, vectorChecksum} {
		vectorChecksum = vec
		b.Run(map[bool]string{false: "scalar", true: "vector"}[vec], func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				var c peChecksum
				c.add(buf, 0)
				_ = c.sum16()
			}
		})
	}
}
