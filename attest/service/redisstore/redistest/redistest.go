// Package redistest runs a real redis-server (Debian package redis-server;
// Valkey's valkey-server takes the same arguments) on 127.0.0.1 for tests
// and load runs: a free port, a temporary directory, no persistence
// (--save "" --appendonly no), stopped and restarted on the same port at
// will.
//
// # Security
//
// For tests only: the server listens on loopback, without TLS, with the
// password given (if any) on its command line.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/testenv"
)

// Server is a running (or stopped) redis-server.
type Server struct {
	bin, dir string
	port     int
	args     []string
	tls      []string // certificate and key files: TLS only
	cmd      *exec.Cmd
	done     chan struct{}
}

// New starts redis-server for the test with extra arguments (such as
// "--requirepass", "pw"), and stops it when the test ends. It skips the
// test when redis-server is not installed, unless CSV_REQUIRE_PEERS=1
// (then it fails).
func New(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := testenv.Tool(t, "redis-server")
	s, err := Start(bin, t.TempDir(), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NewTLS is New for a server that speaks TLS only (rediss://), with the
// certificate and key in PEM files, not asking clients for certificates.
func NewTLS(t testing.TB, certFile, keyFile string, args ...string) *Server {
	t.Helper()
	bin := testenv.Tool(t, "redis-server")
	s, err := start(bin, t.TempDir(), []string{certFile, keyFile}, args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start starts bin (redis-server) on a free loopback port with its files in
// dir, and waits until it accepts connections.
func Start(bin, dir string, args ...string) (*Server, error) { return start(bin, dir, nil, args) }

func start(bin, dir string, tls, args []string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{bin: bin, dir: dir, port: port, args: args, tls: tls}
	if err := s.Restart(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is redis://127.0.0.1:port, or rediss:// for TLS (without
// credentials).
func (s *Server) URL() string {
	if s.tls != nil {
		return "rediss://" + s.Addr()
	}
	return "redis://" + s.Addr()
}

// Restart starts the server again after Stop, on the same port, empty.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return errors.New("redistest: already running")
	}
	args := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		args = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port), "--tls-cert-file", s.tls[0], "--tls-key-file", s.tls[1],
			"--tls-auth-clients", "no"}
	}
	args = append(append(args, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log")), s.args...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.cmd = nil
			return fmt.Errorf("redistest: redis-server exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redistest: redis-server did not listen on %s within 10s", s.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (its data goes with it) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}
