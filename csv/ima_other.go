//go:build !linux

package csv

import "os"

// readIMAXattr returns nil: only Linux keeps security.ima (a sidecar
// FILE.sig is read everywhere).
func readIMAXattr(*os.File) ([]byte, error) { return nil, nil }

// setIMAXattr cannot: only Linux keeps security.ima.
func setIMAXattr(*os.File, []byte) error { return errNoXattr }
