//go:build windows

package client

import (
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/windowstpm"
)

// Open opens the TPM through Windows' TPM Base Services; path must be
// DefaultDevice or empty (Windows has one TPM and no simulator sockets
// here). Errors are *OpenError.
func Open(path string) (transport.TPMCloser, error) {
	if path != "" && path != DefaultDevice {
		return nil, &OpenError{Path: path, Err: ErrNotTPM, Hint: "on Windows the TPM is opened through TBS: give no path"}
	}
	t, err := windowstpm.Open()
	if err != nil {
		return nil, &OpenError{Path: "TBS", Err: ErrNoTPM, Cause: err}
	}
	if err := probe(t); err != nil {
		t.Close()
		return nil, &OpenError{Path: "TBS", Err: ErrNotTPM, Cause: err}
	}
	return t, nil
}
