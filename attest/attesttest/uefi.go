package attesttest

import (
	"encoding/binary"
	"unicode/utf16"
)

// The UEFI structures firmware measures, built for synthetic boot logs.

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
