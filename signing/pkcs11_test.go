package signing_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/codesignval/csv/signing"
)

// TestPKCS11URIErrors checks the RFC 7512 parsing: these URIs are refused
// before any module is loaded, with or without cgo, and never echo a PIN.
func TestPKCS11URIErrors(t *testing.T) {
	const pin = "&pin-value=SECRET-PIN-42"
	for _, tt := range []struct{ name, uri string }{
		{"no module-path", "pkcs11:token=csv;object=key?pin-value=SECRET-PIN-42"},
		{"no object or id", "pkcs11:token=csv?module-path=/usr/lib/softhsm/libsofthsm2.so" + pin},
		{"unknown path attribute", "pkcs11:token=csv;object=key;library-version=2?module-path=/m.so" + pin},
		{"unknown query attribute", "pkcs11:object=key?module-path=/m.so&max-sessions=3" + pin},
		{"module-name", "pkcs11:object=key?module-name=softhsm2" + pin},
		{"repeated attribute", "pkcs11:object=a;object=b?module-path=/m.so" + pin},
		{"type other than private", "pkcs11:object=key;type=cert?module-path=/m.so" + pin},
		{"pin-value and pin-source", "pkcs11:object=key?module-path=/m.so&pin-source=file:/p" + pin},
		{"bad percent-encoding", "pkcs11:object=%zz?module-path=/m.so" + pin},
		{"bad slot-id", "pkcs11:object=key;slot-id=x?module-path=/m.so" + pin},
		{"not name=value", "pkcs11:object?module-path=/m.so" + pin},
		{"malformed PIN attribute", "pkcs11:object=key?module-path=/m.so&pin-valueSECRET-PIN-42"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signing.LoadSigner(context.Background(), tt.uri, signing.LoadOptions{})
			if !errors.Is(err, signing.ErrPKCS11) {
				t.Fatalf("got %v, want ErrPKCS11", err)
			}
			if strings.Contains(err.Error(), "SECRET-PIN-42") {
				t.Errorf("error %q shows the PIN", err)
			}
		})
	}
}
