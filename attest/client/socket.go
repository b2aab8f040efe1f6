//go:build !windows

package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/codesignval/csv/internal/limits"
)

// Bounds of a TPM simulator's answer on a socket.
const (
	// maxTPMResponse caps a TPM response (limits.MaxTPMResponse).
	maxTPMResponse = limits.MaxTPMResponse
	// commandTimeout bounds one command: swtpm answers in milliseconds,
	// an RSA key creation on a loaded machine in seconds; a socket that
	// never answers must not hang the client.
	commandTimeout = 2 * time.Minute
	// dialRetry bounds the retries of a dial swtpm's full accept queue
	// refuses (EAGAIN).
	dialRetry = 10 * time.Second
	// refusedRetry bounds the retries of a dial refused outright
	// (ECONNREFUSED): swtpm binds its socket file a moment before it
	// listens, so a client started as soon as the file appears can be
	// refused; a socket nobody serves is reported after this long.
	refusedRetry = time.Second
)

// socketTPM talks to a TPM simulator (swtpm --server type=unixio), one
// connection per command as go-tpm's linuxudstpm does (so that other
// clients of the same simulator, tpm2-tools among them, can interleave
// their commands), but retrying a dial that swtpm refuses with EAGAIN:
// swtpm accepts one connection at a time, and on a loaded machine it is
// slow to accept the next one (a lab boot sends some 40 commands in a
// row; linuxudstpm failed with "resource temporarily unavailable"). A
// response is read by its declared size, capped, within commandTimeout.
// It is an io.ReadWriteCloser for transport.FromReadWriteCloser, whose
// tpmutil.RunCommandRaw retries TPM_RC_RETRY.
type socketTPM struct {
	path string
	conn net.Conn
}

func dialSocket(path string) (transport.TPMCloser, error) {
	c, err := dialRetrying(path)
	if err != nil {
		return nil, err
	}
	c.Close()
	return transport.FromReadWriteCloser(&socketTPM{path: path}), nil
}

func dialRetrying(path string) (net.Conn, error) {
	start := time.Now()
	wait := time.Millisecond
	for {
		c, err := net.Dial("unix", path)
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, syscall.EAGAIN) && time.Since(start) < dialRetry:
		case errors.Is(err, syscall.ECONNREFUSED) && time.Since(start) < refusedRetry:
		default:
			return nil, err
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Write sends a command on a new connection.
func (s *socketTPM) Write(cmd []byte) (int, error) {
	if s.conn != nil {
		return 0, errors.New("client: a TPM command is already in flight on the socket")
	}
	c, err := dialRetrying(s.path)
	if err != nil {
		return 0, err
	}
	if err := c.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		c.Close()
		return 0, err
	}
	n, err := c.Write(cmd)
	if err != nil {
		c.Close()
		return n, fmt.Errorf("client: sending a command to the TPM socket: %w", err)
	}
	s.conn = c
	return n, nil
}

// Read reads the whole response to the command written (a 10-byte header
// whose size field counts the whole response, 10 to maxTPMResponse bytes)
// into p, and closes the connection.
func (s *socketTPM) Read(p []byte) (int, error) {
	c := s.conn
	if c == nil {
		return 0, errors.New("client: no TPM command was sent on the socket")
	}
	s.conn = nil
	defer c.Close()
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return 0, fmt.Errorf("client: reading the TPM's response: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:])
	if size < 10 || size > maxTPMResponse || int(size) > len(p) {
		return 0, fmt.Errorf("client: the TPM's response declares %d bytes (10 to %d)", size, min(maxTPMResponse, len(p)))
	}
	copy(p, hdr)
	if _, err := io.ReadFull(c, p[10:size]); err != nil {
		return 0, fmt.Errorf("client: reading the TPM's response: %w", err)
	}
	return int(size), nil
}

// Close closes a connection left by a command whose response was not read.
func (s *socketTPM) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
