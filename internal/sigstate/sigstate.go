// Package sigstate is how this module's verifiers record that a signature
// verified. The verified state of a signing.Signature and a
// signing.Timestamp is unexported, so that no caller can forge it (as
// go-attestation keeps a PCR's quoteVerified): package signing registers,
// when it is initialised, the functions that set it, and the code that
// checked the signature calls [Verified] once every check has passed.
//
// Being internal, the package is reachable only from inside the module.
// The sanctioned callers are the verifiers (signing/authenticode,
// signing/modsig), internal/verifiedby (facts that other evidence stands
// behind, such as firmware's verification of a boot component) and the
// test helper internal/sigtest. Nothing else may call Verified.
package sigstate

import "fmt"

// setters are the functions package signing registers, one per type.
var setters []any

// Register records mark as the function that sets the verified state of
// values of type T. Package signing calls it from its init function, for
// *signing.Signature and *signing.Timestamp.
func Register[T any](mark func(T)) { setters = append(setters, mark) }

// Verified marks v verified: call it only where every check that
// "verified" stands for has passed. It panics if v's type has no verified
// state.
func Verified[T any](v T) {
	for _, s := range setters {
		if f, ok := s.(func(T)); ok {
			f(v)
			return
		}
	}
	panic(fmt.Sprintf("sigstate: %T has no verified state", v))
}
