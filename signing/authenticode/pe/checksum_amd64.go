package pe

import "golang.org/x/sys/cpu"

// The PE checksum's words summed with AVX2: 3.4% of csv sign's CPU went to
// the scalar sum (15 GB/s; the digest and the copy are the rest), which the
// vector sum cuts to a fraction (BenchmarkPEChecksumChunk). checksum_amd64.s
// splits each 32-bit lane of a 32-byte load into its two 16-bit words and
// adds them into 32-bit lanes; the result is the same integer sum of the
// words the scalar loop computes, which testbin.Checksum and
// FuzzPEChecksumVector check it against.

// vectorChecksum is whether add uses the vector sum (tests turn it off to
// check the scalar path on machines that have AVX2).
var vectorChecksum = cpu.X86.HasAVX2

// sumWordsAVX2 adds the 16-bit little-endian words of p[:n] (n a multiple
// of 32, at most maxVectorBlock) into out's 16 lanes: out[0:8] the low
// word of each 32-bit lane, out[8:16] the high.
//
//go:noescape
func sumWordsAVX2(p *byte, n int, out *[16]uint32)

// maxVectorBlock bounds one sumWordsAVX2 call: each lane adds two words
// of at most 0xffff per 64 bytes, so 1 MiB adds at most 2^15 * 0xffff * 2
// < 2^32 to a lane: no lane overflows.
const maxVectorBlock = 1 << 20

// vector adds the words of p's longest prefix of whole 32-byte blocks
// (p begins at an 8-aligned offset of the file) and returns the rest.
func (c *peChecksum) vector(p []byte) []byte {
	if !vectorChecksum || len(p) < 256 {
		return p
	}
	for len(p) >= 32 {
		n := min(len(p), maxVectorBlock) &^ 31
		var lanes [16]uint32
		sumWordsAVX2(&p[0], n, &lanes)
		var s uint64
		for _, v := range lanes {
			s += uint64(v)
		}
		c.word(s)
		p = p[n:]
	}
	return p
}
