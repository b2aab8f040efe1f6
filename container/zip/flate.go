package zip

import (
	"compress/flate"
	"io"
)

// resetFlate returns a deflate reader of r, reusing fl when there is one.
func resetFlate(fl io.ReadCloser, r flate.Reader) io.ReadCloser {
	if fl == nil {
		return flate.NewReader(r)
	}
	_ = fl.(flate.Resetter).Reset(r, nil)
	return fl
}
