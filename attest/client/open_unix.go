//go:build !windows

package client

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Open opens the TPM at path: a character device through go-tpm's
// linuxtpm, a Unix socket (swtpm) through socketTPM. It sends one
// command (TPM2_GetCapability) to check that a TPM 2.0 answers. Errors are
// *OpenError, matching ErrNoTPM, ErrPermission, ErrNotListening or
// ErrNotTPM.
func Open(path string) (transport.TPMCloser, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			hint := "is the TPM driver loaded (tpm_tis, tpm_crb)? does this VM have a vTPM?"
			if path != DefaultDevice {
				hint = "check the path"
			}
			return nil, &OpenError{Path: path, Err: ErrNoTPM, Hint: hint}
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, &OpenError{Path: path, Err: ErrPermission, Cause: unwrapPath(err)}
		}
		return nil, &OpenError{Path: path, Err: ErrNotTPM, Cause: err}
	}
	var t transport.TPMCloser
	switch {
	case st.Mode()&fs.ModeSocket != 0:
		// Dial once now (socketTPM dials per command) so that a dead
		// simulator is reported here, clearly.
		c, err := dialSocket(path)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
				return nil, &OpenError{Path: path, Err: ErrNotListening, Hint: "is swtpm running?", Cause: unwrapNet(err)}
			}
			if errors.Is(err, fs.ErrPermission) {
				return nil, &OpenError{Path: path, Err: ErrPermission, Cause: unwrapNet(err)}
			}
			return nil, &OpenError{Path: path, Err: ErrNotListening, Cause: err}
		}
		t = c
	case st.Mode()&fs.ModeDevice != 0:
		if t, err = linuxtpm.Open(path); err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil, &OpenError{Path: path, Err: ErrPermission, Cause: unwrapPath(err),
					Hint: "run as root, or as a member of the group owning the device (tss on most distributions)"}
			}
			if errors.Is(err, syscall.EBUSY) {
				return nil, &OpenError{Path: path, Err: ErrNotTPM, Cause: err, Hint: "another process holds /dev/tpm0: use /dev/tpmrm0"}
			}
			return nil, &OpenError{Path: path, Err: ErrNotTPM, Cause: err}
		}
	default:
		return nil, &OpenError{Path: path, Err: ErrNotTPM, Hint: "neither a character device nor a socket"}
	}
	if err := probe(t); err != nil {
		t.Close()
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &OpenError{Path: path, Err: ErrNotListening, Hint: "is swtpm running?", Cause: err}
		}
		oe := &OpenError{Path: path, Err: ErrNotTPM, Cause: err}
		if st.Mode()&fs.ModeSocket != 0 && (errors.Is(err, tpm2.TPMRCFailure) || errors.Is(err, tpm2.TPMRCInitialize)) {
			// swtpm started without these flags waits for an init on
			// its control channel (TPM_RC_FAILURE until then) or for
			// TPM2_Startup (TPM_RC_INITIALIZE).
			oe.Hint = "start swtpm with --flags not-need-init,startup-clear"
		}
		return nil, oe
	}
	return t, nil
}
