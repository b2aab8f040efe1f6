//go:build !unix

package oci

// openNonblock is 0 where opening a FIFO does not wait (see dir_unix.go).
const openNonblock = 0
