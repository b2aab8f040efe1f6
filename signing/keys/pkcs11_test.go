package keys_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/codesignval/csv/signing/keys"
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
		{"bad percent-encoding in the PIN", "pkcs11:object=key?module-path=/m.so&pin-value=SECRET-PIN-4%2x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keys.LoadSigner(context.Background(), tt.uri, keys.LoadOptions{})
			if !errors.Is(err, keys.ErrPKCS11) {
				t.Fatalf("got %v, want ErrPKCS11", err)
			}
			if strings.Contains(err.Error(), "SECRET-PIN-4") || strings.Contains(err.Error(), "%2x") {
				t.Errorf("error %q shows the PIN", err)
			}
		})
	}
}

// TestLoadSignerErrorsHoldNoPIN: a PIN after the wrong separator is part
// of another attribute's value (a module path that cannot be opened), a
// URI whose scheme is in capitals is a PKCS#11 URI (schemes are
// case-insensitive), and one after a space is read as a key file's name:
// the errors, which quote them, hold no PIN either.
func TestLoadSignerErrorsHoldNoPIN(t *testing.T) {
	for _, tt := range []struct {
		ref  string
		want error
	}{
		{"pkcs11:object=key?module-path=/absent/m.so;pin-value=SECRET-PIN-42", keys.ErrPKCS11},
		{"PKCS11:object=key?module-path=/m.so&pin-value=SECRET-PIN-42", keys.ErrPKCS11},
		{" pkcs11:object=key?module-path=/m.so&pin-value=SECRET-PIN-42", keys.ErrKeyFile},
	} {
		_, err := keys.LoadSigner(context.Background(), tt.ref, keys.LoadOptions{})
		// Without cgo, a pkcs11: URI stops at ErrNotInBuild.
		if !errors.Is(err, tt.want) && !(tt.want == keys.ErrPKCS11 && errors.Is(err, keys.ErrNotInBuild)) {
			t.Errorf("%q: got %v, want %v", tt.ref, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET-PIN-4") {
			t.Errorf("%q: error %q shows the PIN", tt.ref, err)
		}
	}
}

// TestRedactKeyRef: a key reference shown in a message never holds a PIN,
// however the URI is written; everything else of it is kept.
func TestRedactKeyRef(t *testing.T) {
	for _, tt := range []struct{ ref, want string }{
		{"build.key", "build.key"},
		{"awskms:///alias/build", "awskms:///alias/build"},
		{"pkcs11:token=csv;object=key?module-path=/m.so&pin-source=file:/run/pin", "pkcs11:token=csv;object=key?module-path=/m.so&pin-source=file:/run/pin"},
		{"pkcs11:token=csv;object=key?module-path=/m.so&pin-value=SECRET", "pkcs11:token=csv;object=key?module-path=/m.so&pin-value=REDACTED"},
		{"pkcs11:object=key?pin-value=SECRET&module-path=/m.so", "pkcs11:object=key?pin-value=REDACTED&module-path=/m.so"},
		{"pkcs11:token=csv;pin-value=SECRET;object=key?module-path=/m.so", "pkcs11:token=csv;pin-value=REDACTED;object=key?module-path=/m.so"},
		{"pkcs11:object=key?module-path=/m.so&PIN-Value=SECRET", "pkcs11:object=key?module-path=/m.so&PIN-Value=REDACTED"},
		{"pkcs11:object=key?module-path=/m.so&pin%2Dvalue=SECRET", "pkcs11:object=key?module-path=/m.so&pin%2Dvalue=REDACTED"},
		{"pkcs11:object=key?module-path=/m.so&pin=SECRET", "pkcs11:object=key?module-path=/m.so&pin=REDACTED"},
		{"pkcs11:object=key?module-path=/m.so&pin-valueSECRET", "pkcs11:object=key?module-path=/m.so&REDACTED"},
		{"pkcs11:object=key?module-path=/m.so&pin-value=SE=CRET", "pkcs11:object=key?module-path=/m.so&pin-value=REDACTED"},
		// The wrong separator: the PIN is not part of module-path's value.
		{"pkcs11:object=key?module-path=/m.so;pin-value=SECRET", "pkcs11:object=key?module-path=/m.so;pin-value=REDACTED"},
		{"pkcs11:token=csv&pin-value=SECRET;object=key", "pkcs11:token=csv&pin-value=REDACTED;object=key"},
		{"pkcs11:object=key?module-path=/m.so&pin-value=SEC?RET", "pkcs11:object=key?module-path=/m.so&pin-value=REDACTED?REDACTED"},
		// The scheme in another case (URI schemes are case-insensitive,
		// RFC 3986), or after a space.
		{"PKCS11:object=key?pin-value=SECRET", "PKCS11:object=key?pin-value=REDACTED"},
		{" pkcs11:object=key?pin-value=SECRET", " pkcs11:object=key?pin-value=REDACTED"},
		{"Pkcs11:token=csv;pin-value=SECRET", "Pkcs11:token=csv;pin-value=REDACTED"},
	} {
		if got := keys.RedactKeyRef(tt.ref); got != tt.want {
			t.Errorf("RedactKeyRef(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}
