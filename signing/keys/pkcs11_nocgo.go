//go:build !cgo

package keys

import (
	"crypto"
	"fmt"
)

// loadPKCS11 refuses: loading a PKCS#11 module needs cgo.
func loadPKCS11(u *pkcs11URI, _ []byte) (crypto.Signer, error) {
	return nil, fmt.Errorf("%w: %s: PKCS#11 needs a csv built with cgo (CGO_ENABLED=1)", ErrNotInBuild, u.describe())
}
