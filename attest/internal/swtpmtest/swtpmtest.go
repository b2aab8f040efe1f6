//go:build linux

// Package swtpmtest runs Debian's swtpm, a real software TPM 2.0, for
// tests: manufactured by swtpm_setup with SHA1 and SHA256 PCR banks, an
// RSA-2048 and an ECC P-384 EK persisted and certified by a local CA
// (swtpm_localca), serving on a Unix socket in a temporary directory, and
// killed when the test ends (and when the test process dies). Tests skip
// where swtpm is not installed, or fail under CSV_REQUIRE_PEERS=1.
//
// swtpm has no firmware: a test writes a boot log and extends the same
// digests into the PCRs (Extend), as firmware would.
package swtpmtest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/testenv"
)

// Lab is a local CA for EK certificates and the TPMs it certified.
type Lab struct {
	dir       string
	setupConf string
	swtpm     string
	setup     string
}

// NewLab prepares a CA directory; the CA itself is created with the first
// TPM.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	l := &Lab{swtpm: testenv.Tool(t, "swtpm"), setup: testenv.Tool(t, "swtpm_setup")}
	testenv.Tool(t, "swtpm_localca")
	// Unix socket paths are limited to 108 bytes: use a short directory.
	dir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l.dir = dir
	ca := filepath.Join(dir, "ca")
	if err := os.Mkdir(ca, 0o700); err != nil {
		t.Fatal(err)
	}
	localca := filepath.Join(dir, "localca.conf")
	write(t, localca, fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", ca))
	opts := filepath.Join(dir, "localca.options")
	write(t, opts, "--platform-manufacturer csv\n--platform-version 1.0\n--platform-model tests\n")
	l.setupConf = filepath.Join(dir, "swtpm_setup.conf")
	write(t, l.setupConf, fmt.Sprintf("create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha1,sha256\n",
		testenv.Tool(t, "swtpm_localca"), localca, opts))
	return l
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// EKRoots returns the CA certificates that EK certificates chain to: the
// local root and its issuing CA (valid once a TPM was made).
func (l *Lab) EKRoots(t testing.TB) (roots, intermediates []*x509.Certificate) {
	t.Helper()
	read := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(l.dir, "ca", name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("swtpmtest: %s is not PEM", name)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return []*x509.Certificate{read("swtpm-localca-rootca-cert.pem")}, []*x509.Certificate{read("issuercert.pem")}
}

// TPM is one swtpm instance.
type TPM struct {
	Name   string
	dir    string
	Socket string
	cmd    *exec.Cmd
	done   chan error
}

// New manufactures a TPM (swtpm_setup: EK certificates, SHA1 and SHA256
// banks) and starts it.
func (l *Lab) New(t testing.TB, name string) *TPM {
	t.Helper()
	dir := filepath.Join(l.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(l.setup, "--tpm2", "--tpmstate", state, "--create-ek-cert", "--config", l.setupConf,
		"--pcr-banks", "sha1,sha256").CombinedOutput()
	if err != nil {
		t.Fatalf("swtpm_setup: %v\n%s", err, out)
	}
	tp := &TPM{Name: name, dir: dir, Socket: filepath.Join(dir, "sock")}
	tp.start(t, l.swtpm)
	t.Cleanup(tp.Stop)
	return tp
}

func (tp *TPM) start(t testing.TB, swtpm string) {
	t.Helper()
	os.Remove(tp.Socket)
	cmd := exec.Command(swtpm, "socket", "--tpm2", "--tpmstate", "dir="+filepath.Join(tp.dir, "state"),
		"--server", "type=unixio,path="+tp.Socket, "--ctrl", "type=unixio,path="+tp.Socket+".ctrl",
		"--flags", "not-need-init,startup-clear", "--log", "file="+filepath.Join(tp.dir, "swtpm.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting swtpm: %v", err)
	}
	tp.cmd, tp.done = cmd, make(chan error, 1)
	go func() { tp.done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", tp.Socket)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-tp.done:
			log, _ := os.ReadFile(filepath.Join(tp.dir, "swtpm.log"))
			t.Fatalf("swtpm exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			tp.Stop()
			t.Fatal("swtpm did not listen within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops swtpm (its state stays for Restart).
func (tp *TPM) Stop() {
	if tp.cmd == nil {
		return
	}
	tp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-tp.done:
	case <-time.After(5 * time.Second):
		tp.cmd.Process.Kill()
		<-tp.done
	}
	tp.cmd = nil
}

// Restart stops and starts swtpm: a TPM reset, so the PCRs are back at
// their initial values and transient objects are gone; persistent ones
// and NV stay.
func (tp *TPM) Restart(t testing.TB) {
	t.Helper()
	swtpm := tp.cmd.Path
	tp.Stop()
	tp.start(t, swtpm)
}

// Open opens a connection to the TPM (pure Go, client.Open).
func (tp *TPM) Open(t testing.TB) transport.TPMCloser {
	t.Helper()
	c, err := client.Open(tp.Socket)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TCTI returns the TCTI string for tpm2-tools (TPM2TOOLS_TCTI).
func (tp *TPM) TCTI() string { return "swtpm:path=" + tp.Socket }

// Extend extends every measured event of the log into the PCRs, in every
// bank the event has a digest for, as firmware does.
func (tp *TPM) Extend(t testing.TB, log []byte) {
	t.Helper()
	l, err := eventlog.Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	c := tp.Open(t)
	defer c.Close()
	for _, e := range l.Events {
		if !e.Extended() {
			continue
		}
		var ds []tpm2.TPMTHA
		for _, d := range e.Digests {
			ds = append(ds, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(d.Alg), Digest: d.Value})
		}
		tp.ExtendDigests(t, c, int(e.PCR), ds)
	}
}

// ExtendDigests extends one PCR with digests.
func (tp *TPM) ExtendDigests(t testing.TB, c transport.TPM, pcr int, ds []tpm2.TPMTHA) {
	t.Helper()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: ds},
	}.Execute(c)
	if err != nil {
		t.Fatalf("extending PCR %d: %v", pcr, err)
	}
}

// Tool runs a tpm2-tools command against the TPM and returns its output;
// it flushes transient objects after (no resource manager here).
func (tp *TPM) Tool(t testing.TB, name string, args ...string) string {
	t.Helper()
	path := testenv.Tool(t, name)
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "TPM2TOOLS_TCTI="+tp.TCTI())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	flush := exec.Command(testenv.Tool(t, "tpm2_flushcontext"), "-t")
	flush.Env = cmd.Env
	flush.Run()
	return string(out)
}
