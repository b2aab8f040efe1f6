package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that goroutines may write to while a test
// reads it: a log sink for a server under test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DeadSocket returns the path of a Unix socket in dir that nothing listens
// on: bound, then its listener closed without removing the file, so that
// connecting is refused.
func DeadSocket(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	return p
}

// NoProxyEnv is the environment without its *_proxy variables: the peers
// that could reach for a timestamp server or a network (osslsigncode) run
// with it, so that no test leaves the machine through a proxy.
func NoProxyEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			env = append(env, kv)
		}
	}
	return env
}

// OsslSign signs data with osslsigncode sign (-certs chain -key key, then
// args), the file named in.EXT so that osslsigncode tells its kind, and
// returns the signed file; a failure fails t.
func OsslSign(t testing.TB, chain, key, ext string, data []byte, args ...string) []byte {
	t.Helper()
	ossl := Tool(t, "osslsigncode")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in."+ext), filepath.Join(dir, "out."+ext)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"sign", "-certs", chain, "-key", key}, args...)
	argv = append(argv, "-in", in, "-out", out)
	cmd := exec.Command(ossl, argv...)
	cmd.Env = NoProxyEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
