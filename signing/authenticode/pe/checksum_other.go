//go:build !amd64

package pe

// vectorChecksum: no vector sum on this architecture (checksum_amd64.go).
var vectorChecksum = false

// vector adds nothing: the scalar loop sums every word.
func (c *peChecksum) vector(p []byte) []byte { return p }
