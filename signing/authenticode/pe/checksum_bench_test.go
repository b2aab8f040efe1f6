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
