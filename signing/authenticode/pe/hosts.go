package pe

import (
	"errors"
	"fmt"

	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/cms"
)

// Why hosts do not count a signature, by where it sits in the table.
const (
	whyWindowsEntry = "Windows judges only the first WIN_CERTIFICATE entry and the signatures nested in it " +
		"(WinVerifyTrust reads certificate 0 of the table, ImageGetCertificateData index 0)"
	whyWindowsDepth = "Windows reads the signatures nested in the first one, one level deep (its secondary signatures); " +
		"csv cannot establish that it reads deeper ones, so it does not count them"
	whyUEFINested = "UEFI firmware (EDK2 DxeImageVerificationLib) and shim check each WIN_CERTIFICATE entry's own signature " +
		"against db and dbx, never the signatures nested in it"
)

// Judge records which hosts do not count sig (see the package
// documentation): from where it sits in the table, the signature it is
// nested in (parent), and its data type.
func (t *Table) Judge(sig, parent *signing.Signature, data authenticode.IndirectData) {
	if sig.Index > 0 {
		sig.Ignore(signing.HostWindows, whyWindowsEntry)
	}
	if len(sig.Path) > 1 {
		sig.Ignore(signing.HostWindows, whyWindowsDepth)
	}
	if parent != nil {
		if why := nestedUnder(parent); why != "" {
			sig.Ignore(signing.HostWindows, why)
		}
	}
	if len(sig.Path) > 0 {
		sig.Ignore(signing.HostUEFI, whyUEFINested)
	}
	if sig.Verified() {
		// Verified includes CheckData: the table matches the file.
		if pts, err := PageHashTables(data); err == nil && len(pts) > 0 {
			sig.PageHashes = pts[0].Hash
		}
	}
	if !data.Type.Equal(OIDSpcPEImageData) {
		// Firmware does not look at the data type; csv cannot establish
		// that Windows accepts anything but SPC_PE_IMAGE_DATAOBJ.
		sig.Ignore(signing.HostWindows, fmt.Sprintf("its SpcIndirectDataContent data type is %s, not SPC_PE_IMAGE_DATAOBJ (1.3.6.1.4.1.311.2.1.15): "+
			"csv cannot establish that Windows accepts it (UEFI firmware and shim do: EDK2's AuthenticodeVerify checks the content type and the image digest, never the data type)",
			dataTypeName(data.Type)))
	}
}

// nestedUnder says why Windows would not count the signatures nested in
// parent, whose checks are done, because of parent itself: Windows judges
// the primary signature and the secondary ones nested in it, and csv cannot
// establish that it reads the secondary signatures of a primary signature
// that does not verify or that Windows does not count (its data type): a
// signature that verifies nested in one that does not (over another image,
// or by a key that did not sign it) would otherwise admit a file Windows
// may refuse. "" when parent is not the reason.
func nestedUnder(parent *signing.Signature) string {
	var se *authenticode.SignatureError
	switch {
	case parent.Problem != nil && errors.As(parent.Problem, &se):
		return fmt.Sprintf("the signature it is nested in does not verify (%v), and csv cannot establish that Windows reads the signatures nested in a primary signature that fails", se.Err)
	case parent.Problem != nil:
		return fmt.Sprintf("the signature it is nested in does not verify (%v), and csv cannot establish that Windows reads the signatures nested in a primary signature that fails", parent.Problem)
	case parent.IgnoredBy[signing.HostWindows] != "":
		return "Windows does not count the signature it is nested in, and csv cannot establish that it reads the signatures nested in one it does not count: " + parent.IgnoredBy[signing.HostWindows]
	}
	return ""
}

// dataTypeName renders an SpcIndirectDataContent data type OID element,
// with its name where it is a known SPC OID (signers have been seen to
// write a statement type where the data type belongs).
func dataTypeName(oid []byte) string {
	names := map[string]string{
		"1.3.6.1.4.1.311.2.1.21": "SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID",
		"1.3.6.1.4.1.311.2.1.22": "SPC_COMMERCIAL_SP_KEY_PURPOSE_OBJID",
		"1.3.6.1.4.1.311.2.1.25": "SPC_CAB_DATA_OBJID",
		"1.3.6.1.4.1.311.2.1.30": "SPC_SIPINFO_OBJID",
	}
	s := cms.OID(oid).String()
	if n, ok := names[s]; ok {
		return s + " (" + n + ")"
	}
	return s
}
