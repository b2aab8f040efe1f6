//go:build unix

package oci

import "syscall"

// openNonblock: a FIFO swapped in for a layout's file after it was listed
// is opened at once (and refused as not a regular file), not waited on.
const openNonblock = syscall.O_NONBLOCK
