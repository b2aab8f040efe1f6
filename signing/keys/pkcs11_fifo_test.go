//go:build cgo && unix

package keys_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/signing/keys"
)

// TestPKCS11ModuleFIFO: a module-path that leads to a named pipe is
// refused at once: dlopen(3) opens the module plainly, and would wait for
// a writer.
func TestPKCS11ModuleFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "module.so")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := keys.LoadSigner(context.Background(), "pkcs11:object=key?module-path="+fifo+"&pin-value=1234", keys.LoadOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, keys.ErrPKCS11) || !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("got %v, want ErrPKCS11 and ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			defer w.Close()
		}
		<-done
		t.Fatal("LoadSigner waited on a named pipe")
	}
}
