//go:build linux

package lab_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/internal/swtpmtest"
	"github.com/codesignval/csv/attest/lab"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testenv"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
)

// TestBoot fakes a boot on swtpm (SHA1 and SHA256 banks): the log names
// both banks and the application, the TPM holds what it replays to (Boot
// checks, and the replay here agrees with the TPM's own PCRs read anew),
// and a second boot without a reset is refused before anything is
// extended, until swtpm restarts.
func TestBoot(t *testing.T) {
	tp := swtpmtest.NewLab(t).New(t, "lab")
	dir := t.TempDir()
	img := testbin.PE(testbin.PEOptions{Data: []byte("a lab boot application")})
	file := filepath.Join(dir, "app.efi")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	app, err := lab.App(file, `\EFI\BOOT\BOOTX64.EFI`)
	if err != nil {
		t.Fatal(err)
	}
	im, err := authpe.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := im.Digest(bytes.NewReader(img), crypto.SHA256); !bytes.Equal(app.SHA256, want) {
		t.Fatalf("app digest %x, want %x", app.SHA256, want)
	}
	certs := make([]*x509.Certificate, 3)
	for i, cn := range []string{"lab PK", "lab KEK", "lab db"} {
		if certs[i], err = lab.NewCertificate(cn); err != nil {
			t.Fatal(err)
		}
	}
	o := bootlog.Options{SecureBoot: true, PK: certs[:1], KEK: certs[1:2], DB: certs[2:], Apps: []bootlog.App{app}}
	c := tp.Open(t)
	raw, err := lab.Boot(c, o)
	if err != nil {
		t.Fatal(err)
	}
	in, err := attest.Inspect(raw)
	if err != nil {
		t.Fatal(err)
	}
	banks, err := lab.ActiveBanks(c)
	if err != nil || len(banks) != 2 || len(in.Log.Algs) != 2 {
		t.Fatalf("banks %v (log %v): %v", banks, in.Log.Algs, err)
	}
	now, err := lab.ReadPCRs(c, banks)
	if err != nil {
		t.Fatal(err)
	}
	strict := in.Replay.Strict()
	for _, b := range banks {
		for p := 0; p < eventlog.NumPCRs; p++ {
			if !bytes.Equal(now.Get(b, p), strict.Get(b, p)) {
				t.Errorf("%s PCR %d: TPM %x, replay %x", b, p, now.Get(b, p), strict.Get(b, p))
			}
		}
	}
	if !in.Boot.SecureBoot.Enabled || len(in.Boot.Components) != 1 || in.Boot.Components[0].Name != `\EFI\BOOT\BOOTX64.EFI` {
		t.Errorf("boot state %+v", in.Boot)
	}
	if _, err := lab.Boot(c, o); !errors.Is(err, lab.ErrNotReset) {
		t.Fatalf("a second boot: %v", err)
	}
	if again, _ := lab.ReadPCRs(c, banks); !bytes.Equal(again.Get(eventlog.SHA256, 7), now.Get(eventlog.SHA256, 7)) {
		t.Fatal("a refused boot changed the PCRs")
	}
	c.Close()
	tp.Restart(t)
	c = tp.Open(t)
	defer c.Close()
	if _, err := lab.Boot(c, o); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}

// fakeTPM answers TPM2_GetCapability(TPM_PROPERTIES) with the given
// manufacturer and vendor strings.
type fakeTPM struct{ manufacturer, vendor1, vendor2 string }

func (f fakeTPM) Send([]byte) ([]byte, error) {
	word := func(s string) uint32 { return binary.BigEndian.Uint32([]byte((s + "\x00\x00\x00\x00")[:4])) }
	props := [][2]uint32{{0x105, word(f.manufacturer)}, {0x106, word(f.vendor1)}, {0x107, word(f.vendor2)}}
	b := []byte{0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0} // header, rc 0, moreData no
	b = binary.BigEndian.AppendUint32(b, 6)            // TPM_CAP_TPM_PROPERTIES
	b = binary.BigEndian.AppendUint32(b, uint32(len(props)))
	for _, p := range props {
		b = binary.BigEndian.AppendUint32(b, p[0])
		b = binary.BigEndian.AppendUint32(b, p[1])
	}
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)))
	return b, nil
}

// TestCheckSoftwareTPM: swtpm's vendor strings pass; a hardware TPM's
// (Infineon's, as a real one reports them) and a TPM that answers garbage
// are refused, and Boot refuses before it extends anything.
func TestCheckSoftwareTPM(t *testing.T) {
	if err := lab.CheckSoftwareTPM(fakeTPM{"IBM", "SW  ", " TPM"}); err != nil {
		t.Errorf("swtpm: %v", err)
	}
	for _, f := range []fakeTPM{{"IFX", "SLB9", "670\x00"}, {"IBM", "", ""}, {"MSFT", "SW", "TPMX"}} {
		if err := lab.CheckSoftwareTPM(f); !errors.Is(err, lab.ErrNotSoftwareTPM) {
			t.Errorf("%q: %v", f, err)
		}
		if _, err := lab.Boot(f, bootlog.Options{}); !errors.Is(err, lab.ErrNotSoftwareTPM) {
			t.Errorf("Boot on %q: %v", f, err)
		}
	}
}

// TestApp: a file that is not a PE image, or not a regular file, is no
// boot application.
func TestApp(t *testing.T) {
	dir := t.TempDir()
	notPE := filepath.Join(dir, "x.efi")
	os.WriteFile(notPE, []byte("#!/bin/sh\necho not an image\n"), 0o644)
	if _, err := lab.App(notPE, ""); err == nil {
		t.Error("a shell script is a boot application")
	}
	if _, err := lab.App(dir, ""); err == nil {
		t.Error("a directory is a boot application")
	}
	if _, err := lab.App(filepath.Join(dir, "missing"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestOpenWithoutFlags: swtpm started as the old documentation said,
// without --flags not-need-init,startup-clear, answers TPM_RC_FAILURE (no
// init on its control channel) or TPM_RC_INITIALIZE (no TPM2_Startup):
// client.Open names the flags that are missing.
func TestOpenWithoutFlags(t *testing.T) {
	swtpm := testenv.Tool(t, "swtpm")
	dir, err := os.MkdirTemp("", "swtpm") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for i, flags := range [][]string{nil, {"--flags", "not-need-init"}} {
		state := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(state, "sock")
		cmd := exec.Command(swtpm, append([]string{"socket", "--tpm2", "--tpmstate", "dir=" + state, "--server", "type=unixio,path=" + sock}, flags...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// Listening, not only bound: swtpm creates the socket file first.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("swtpm %q does not listen: %v", flags, err)
			}
		}
		c, err := client.Open(sock)
		var oe *client.OpenError
		if err == nil {
			c.Close()
		}
		if !errors.As(err, &oe) || !errors.Is(err, client.ErrNotTPM) || oe.Hint != "start swtpm with --flags not-need-init,startup-clear" {
			t.Errorf("swtpm %q: %v", flags, err)
		}
	}
}
