// Package client is the host side of an attestation: it opens the host's
// TPM, loads its endorsement key (and certificate) and creates or loads an
// attestation key, quotes the PCRs the attestation service asks for with
// the service's nonce, submits the evidence, and on success activates the
// credential the service sealed to this TPM and decrypts its payload.
//
// It talks to the TPM through go-tpm's transports, in pure Go: a character
// device (/dev/tpmrm0, the kernel's resource manager) or a Unix socket
// (swtpm --server type=unixio). It speaks the service's protocol, package
// attest/wire, and links neither the service nor the policy engine: the
// result in a service's answer is a wire.Result, whose claims a caller
// that wants them decodes into an attest.Result.
//
// # Security
//
// The client trusts the TPM it opens and the service it is given (over
// HTTPS, checked with the system roots or those given). What it sends is
// public (the event log, quotes, public keys); the credential's payload is
// readable only by this TPM, and the client writes it where it is told.
package client

import (
	"errors"
	"fmt"
	"io/fs"
	"net"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultDevice is the kernel's TPM resource manager: several processes can
// use the TPM through it, and it flushes what a process leaves loaded.
const DefaultDevice = "/dev/tpmrm0"

// Errors of Open, matched with errors.Is.
var (
	// ErrNoTPM: nothing at the path.
	ErrNoTPM = errors.New("client: no TPM")
	// ErrPermission: the TPM exists but this user may not open it.
	ErrPermission = errors.New("client: permission denied opening the TPM")
	// ErrNotListening: a socket exists but no TPM simulator listens on it.
	ErrNotListening = errors.New("client: nothing listens on the TPM socket")
	// ErrNotTPM: the path is neither a device nor a socket, or what
	// answers is not a TPM 2.0.
	ErrNotTPM = errors.New("client: not a TPM 2.0")
)

// OpenError is an error opening a TPM.
type OpenError struct {
	Path string
	Err  error // one of the Err values above
	Hint string
	// Cause is the underlying error, if any.
	Cause error
}

func (e *OpenError) Error() string {
	s := fmt.Sprintf("%v at %s", e.Err, e.Path)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Unwrap returns Err and Cause, if any.
func (e *OpenError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func unwrapNet(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// probe sends one command to check that a TPM 2.0 answers.
func probe(t transport.TPM) error {
	_, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTManufacturer), PropertyCount: 1}.Execute(t)
	return err
}
