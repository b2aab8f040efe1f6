package attesttest

import "github.com/codesignval/csv/attest/bootlog"

// The UEFI structures firmware measures, built for synthetic boot logs
// (package bootlog writes them; these names are kept for the tests).

// The vendor GUIDs of the Secure Boot variables and the EFI_SIGNATURE_LIST
// types of an X.509 certificate and of a SHA-256 hash.
var (
	GUIDGlobalVariable = bootlog.GUIDGlobalVariable
	GUIDImageSecurity  = bootlog.GUIDImageSecurity
	GUIDCertX509       = bootlog.GUIDCertX509
	GUIDCertSHA256     = bootlog.GUIDCertSHA256
)

// VariableData is a UEFI_VARIABLE_DATA: what firmware measures for a
// variable.
func VariableData(vendor [16]byte, name string, data []byte) []byte {
	return bootlog.VariableData(vendor, name, data)
}

// SignatureList is one EFI_SIGNATURE_LIST of entries of one type and size
// (the size of the first), each with a zero owner GUID; nil without
// entries.
func SignatureList(typ [16]byte, entries ...[]byte) []byte {
	return bootlog.SignatureList(typ, entries...)
}

// CertLists is a signature database of DER certificates, one list each.
func CertLists(ders ...[]byte) []byte { return bootlog.CertLists(ders...) }
