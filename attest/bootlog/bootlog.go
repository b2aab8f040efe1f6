// Package bootlog writes the TCG event log of a UEFI Secure Boot as
// firmware logs it, for labs and tests: a crypto-agile log (the Spec ID
// header, EV_S_CRTM_VERSION and a firmware blob in PCR 0, the Secure Boot
// variables in PCR 7, the boot order in PCR 1, separators in PCRs 0-7,
// boot applications in PCR 4 after the authority that admitted them,
// ExitBootServices in PCR 5), with the PCR values a TPM extended with the
// same digests holds ([eventlog.Writer.PCRs]).
//
// # Security
//
// A log written here describes a boot that did not happen. It is what
// `csv attest lab-log` extends into a software TPM so that a lab can
// attest without firmware; a verifier must never trust it from a real
// host's TPM (which is why that command refuses anything but swtpm).
package bootlog

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/codesignval/csv/attest/eventlog"
)

// The vendor GUIDs of the Secure Boot variables (EFI_GLOBAL_VARIABLE: PK,
// KEK, SecureBoot; EFI_IMAGE_SECURITY_DATABASE: db, dbx), and the
// EFI_SIGNATURE_LIST types of an X.509 certificate and of a SHA-256 hash.
var (
	GUIDGlobalVariable = guid(0x8be4df61, 0x93ca, 0x11d2, 0xaa0d, 0x00e098032b8c)
	GUIDImageSecurity  = guid(0xd719b2cb, 0x3d3a, 0x4596, 0xa3bc, 0xdad00e67656f)
	GUIDCertX509       = guid(0xa5c059a1, 0x94e4, 0x4aa7, 0x87b5, 0xab155c2bf072)
	GUIDCertSHA256     = guid(0xc1c41626, 0x504c, 0x4092, 0xaca9, 0x41f936934328)
)

func guid(a uint32, b, c, d uint16, e uint64) [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], a)
	binary.LittleEndian.PutUint16(g[4:], b)
	binary.LittleEndian.PutUint16(g[6:], c)
	binary.BigEndian.PutUint16(g[8:], d)
	for i := 0; i < 6; i++ {
		g[10+i] = byte(e >> (40 - 8*i))
	}
	return g
}

// VariableData is a UEFI_VARIABLE_DATA: what firmware measures for a
// variable.
func VariableData(vendor [16]byte, name string, data []byte) []byte {
	u := utf16.Encode([]rune(name))
	b := append([]byte(nil), vendor[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(u)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, data...)
}

// SignatureList is one EFI_SIGNATURE_LIST of entries of one type and size
// (the size of the first), each with a zero owner GUID; nil without
// entries.
func SignatureList(typ [16]byte, entries ...[]byte) []byte {
	if len(entries) == 0 {
		return nil
	}
	size := 16 + len(entries[0])
	b := append([]byte(nil), typ[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(28+size*len(entries)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	for _, e := range entries {
		b = append(b, make([]byte, 16)...) // owner
		b = append(b, e...)
	}
	return b
}

// CertLists is a signature database of DER certificates, one list each.
func CertLists(ders ...[]byte) []byte {
	var b []byte
	for _, d := range ders {
		b = append(b, SignatureList(GUIDCertX509, d)...)
	}
	return b
}

func certLists(cs ...*x509.Certificate) []byte {
	var ders [][]byte
	for _, c := range cs {
		ders = append(ders, c.Raw)
	}
	return CertLists(ders...)
}

// App is a boot application: its Authenticode digests (one per bank of
// the log) and, optionally, the file path its device path names.
type App struct {
	SHA256, SHA1, SHA384 []byte
	// Path is the file path node of its device path (`\EFI\BOOT\BOOTX64.EFI`);
	// empty: a device path of the end node only.
	Path string
}

// Options describe a synthetic UEFI boot.
type Options struct {
	// Banks of the log (default SHA1 and SHA256, as a TPM with both
	// banks active logs).
	Banks []eventlog.HashAlg
	// Firmware is the EV_S_CRTM_VERSION string (default "csv test
	// firmware 1.0").
	Firmware string
	// SecureBoot is the SecureBoot variable (true: 1).
	SecureBoot bool
	// PK, KEK and DB are the Secure Boot databases' certificates; DBX the
	// SHA-256 hashes revoked.
	PK, KEK, DB []*x509.Certificate
	DBX         [][]byte
	// Apps are the boot applications loaded from disk (PCR 4), each
	// admitted by DB[0] (an EV_EFI_VARIABLE_AUTHORITY event in PCR 7).
	Apps []App
	// Authorities are more EV_EFI_VARIABLE_AUTHORITY events (db entries
	// holding these DER certificates), logged after DB[0]'s, before the
	// first app: what a host that claims many authorities sends.
	Authorities [][]byte
}

// Write writes the event log of the boot o describes and returns the
// Writer (whose PCRs are what a TPM extended with the same digests holds).
func Write(o Options) (*eventlog.Writer, error) {
	banks := o.Banks
	if banks == nil {
		banks = []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256}
	}
	w, err := eventlog.NewWriter(eventlog.FormatCryptoAgile, banks...)
	if err != nil {
		return nil, err
	}
	fw := o.Firmware
	if fw == "" {
		fw = "csv test firmware 1.0"
	}
	w.Append(0, eventlog.EvSCRTMVersion, utf16le(fw+"\x00"))
	blob := binary.LittleEndian.AppendUint64(nil, 0xffe00000)
	w.Append(0, eventlog.EvEFIPlatformFirmwareBlob, binary.LittleEndian.AppendUint64(blob, 0x200000))
	sb := byte(0)
	if o.SecureBoot {
		sb = 1
	}
	var dbx []byte
	if len(o.DBX) > 0 {
		dbx = SignatureList(GUIDCertSHA256, o.DBX...)
	}
	for _, v := range []struct {
		vendor [16]byte
		name   string
		data   []byte
	}{
		{GUIDGlobalVariable, "SecureBoot", []byte{sb}}, {GUIDGlobalVariable, "PK", certLists(o.PK...)},
		{GUIDGlobalVariable, "KEK", certLists(o.KEK...)}, {GUIDImageSecurity, "db", certLists(o.DB...)},
		{GUIDImageSecurity, "dbx", dbx},
	} {
		w.Append(7, eventlog.EvEFIVariableDriverConfig, VariableData(v.vendor, v.name, v.data))
	}
	w.Append(1, eventlog.EvEFIVariableBoot, VariableData(GUIDGlobalVariable, "BootOrder", []byte{1, 0}))
	for p := uint32(0); p < 8; p++ {
		w.Append(p, eventlog.EvSeparator, []byte{0, 0, 0, 0})
	}
	w.Append(4, eventlog.EvEFIAction, []byte("Calling EFI Application from Boot Option"))
	for i, app := range o.Apps {
		if len(o.DB) > 0 && i == 0 {
			w.Append(7, eventlog.EvEFIVariableAuthority, VariableData(GUIDImageSecurity, "db", append(make([]byte, 16), o.DB[0].Raw...)))
		}
		if i == 0 {
			for _, der := range o.Authorities {
				w.Append(7, eventlog.EvEFIVariableAuthority, VariableData(GUIDImageSecurity, "db", append(make([]byte, 16), der...)))
			}
		}
		var ds []eventlog.Digest
		for _, b := range banks {
			var d []byte
			switch b {
			case eventlog.SHA256:
				d = app.SHA256
			case eventlog.SHA1:
				d = app.SHA1
			case eventlog.SHA384:
				d = app.SHA384
			}
			if d == nil {
				return nil, fmt.Errorf("bootlog: app %d has no %s digest", i, b)
			}
			ds = append(ds, eventlog.Digest{Alg: b, Value: d})
		}
		w.AppendDigests(4, eventlog.EvEFIBootServicesApplication, ImageLoadEvent(app.Path), ds...)
	}
	w.Append(5, eventlog.EvEFIAction, []byte("Exit Boot Services Invocation"))
	w.Append(5, eventlog.EvEFIAction, []byte("Exit Boot Services Returned with Success"))
	return w, nil
}

// ImageLoadEvent is an UEFI_IMAGE_LOAD_EVENT (location, length, link-time
// address, device path length, device path) whose device path is a media
// file path node of path, if any, and the end node. A path whose node
// would not fit a node's 16-bit length is left out.
func ImageLoadEvent(path string) []byte {
	var dp []byte
	if name := utf16le(path + "\x00"); path != "" && 4+len(name) <= 0xffff {
		dp = append(dp, 0x04, 0x04)
		dp = binary.LittleEndian.AppendUint16(dp, uint16(4+len(name)))
		dp = append(dp, name...)
	}
	dp = append(dp, 0x7f, 0xff, 0x04, 0x00)
	ev := binary.LittleEndian.AppendUint64(nil, 0x7f000000)
	ev = binary.LittleEndian.AppendUint64(ev, 0x10000)
	ev = binary.LittleEndian.AppendUint64(ev, 0)
	ev = binary.LittleEndian.AppendUint64(ev, uint64(len(dp)))
	return append(ev, dp...)
}

func utf16le(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}
