//go:build !cgo

package keys_test

import (
	"context"
	"errors"
	"testing"

	"github.com/codesignval/csv/signing/keys"
)

// TestPKCS11WithoutCgo: a build without cgo refuses PKCS#11 keys clearly.
func TestPKCS11WithoutCgo(t *testing.T) {
	_, err := keys.LoadSigner(context.Background(), "pkcs11:token=csv;object=key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234", keys.LoadOptions{})
	if !errors.Is(err, keys.ErrNotInBuild) {
		t.Fatalf("got %v, want ErrNotInBuild", err)
	}
}
