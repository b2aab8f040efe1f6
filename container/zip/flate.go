package zip

import (
	"bufio"
	"io"

	"github.com/klauspost/compress/flate"
)

// resetFlate returns a deflate reader of r, reusing fl when there is one.
// klauspost/compress/flate decompresses twice as fast as compress/flate
// here (BenchmarkBareKlauspostFlate, BenchmarkBareFlate) when it reads a
// *bufio.Reader, which it reads without a copy; like compress/flate, it
// reads no byte past the end of the stream, so the bytes it took are what
// the bufio.Reader was given less what it holds.
func resetFlate(fl io.ReadCloser, r *bufio.Reader) io.ReadCloser {
	if fl == nil {
		return flate.NewReader(r)
	}
	_ = fl.(flate.Resetter).Reset(r, nil)
	return fl
}
