// Package pe reads the parts of a PE/COFF image that Authenticode and the
// validator need: where the NT headers are, where the checksum and the
// certificate table directory entry sit (the two fields the Authenticode image
// hash skips), the section layout, and the attribute certificate table.
//
// It deliberately does not map or load the image: it reads a few hundred bytes
// of headers through an io.ReaderAt, so that the validator can stream the rest
// of the file through a fixed buffer exactly once.
//
// # Security
//
// Input is untrusted. Every offset and count is checked against the file size
// and the caps in internal/limits before use; errors are
// *binfmt.MalformedError values naming the offset. A file whose certificate
// table is not at the end of the file, overlaps the image, or whose lengths do
// not add up is malformed, and so is a table entry that holds anything but
// one DER signature and its zero padding: data outside what a signature
// covers must not ride along unnoticed.
package pe

import (
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/limits"
)

const (
	dosHeaderSize   = 64
	lfanewOffset    = 0x3c
	coffHeaderSize  = 20
	sectionSize     = 40
	magicPE32       = 0x10b
	magicPE32Plus   = 0x20b
	checksumOffset  = 64 // from the start of the optional header, PE32 and PE32+
	dirEntrySize    = 8
	securityDirIdx  = 4
	certEntryHeader = 8
)

// Range is a half-open byte range [Off, Off+Len) of the file.
type Range struct {
	Off int64
	Len int64
}

// End returns Off+Len.
func (r Range) End() int64 { return r.Off + r.Len }

// Section is one entry of the section table.
type Section struct {
	Name             string
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
}

// File describes a PE image's layout.
type File struct {
	Size             int64  // file size in bytes
	NTHeaderOffset   int64  // e_lfanew
	Machine          uint16 // IMAGE_FILE_MACHINE_*
	Characteristics  uint16
	PE32Plus         bool // optional header magic 0x20b (64-bit)
	Subsystem        uint16
	CheckSum         uint32 // as stored
	CheckSumOffset   int64  // file offset of OptionalHeader.CheckSum
	CertDirOffset    int64  // file offset of the certificate table data directory entry
	SizeOfHeaders    uint32
	SectionAlignment uint32 // OptionalHeader.SectionAlignment
	NumberOfRvaSizes uint32
	Sections         []Section
	// ImageEnd is the end of the headers and of every section's raw data:
	// everything from ImageEnd to the certificate table is overlay data.
	ImageEnd int64
	// CertTable is the attribute certificate table (Len 0 if unsigned).
	CertTable Range
}

// Signed reports whether the file has a certificate table.
func (f *File) Signed() bool { return f.CertTable.Len > 0 }

// IsPE reports whether a file that starts with "MZ" carries a PE signature
// where its DOS header points, which is what makes Windows treat it as a PE
// image, wherever that is: a header past the cap Parse enforces makes a
// malformed PE (blocked), not a file that is no PE (skipped). It reads at
// most 8 bytes beyond what is in r's prefix.
func IsPE(r io.ReaderAt, size int64) bool {
	var dos [dosHeaderSize]byte
	if size < dosHeaderSize {
		return false
	}
	if n, _ := r.ReadAt(dos[:], 0); n != len(dos) || dos[0] != 'M' || dos[1] != 'Z' {
		return false
	}
	lfanew := int64(binary.LittleEndian.Uint32(dos[lfanewOffset:]))
	if lfanew+4 > size {
		return false
	}
	var sig [4]byte
	if n, _ := r.ReadAt(sig[:], lfanew); n != 4 {
		return false
	}
	return sig == [4]byte{'P', 'E', 0, 0}
}

// Parse reads the headers of the PE image in r, which is size bytes long.
// Callers should check IsPE first: Parse treats every file as a PE and
// reports anything unexpected as a *binfmt.MalformedError.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	f := &File{Size: size}
	var dos [dosHeaderSize]byte
	if err := binfmt.ReadFull(r, size, binfmt.PE, 0, dos[:], "DOS header"); err != nil {
		return nil, err
	}
	if dos[0] != 'M' || dos[1] != 'Z' {
		return nil, binfmt.Errorf(binfmt.PE, 0, "no MZ signature")
	}
	f.NTHeaderOffset = int64(binary.LittleEndian.Uint32(dos[lfanewOffset:]))
	if f.NTHeaderOffset == 0 || f.NTHeaderOffset > limits.MaxPEHeaderOffset {
		return nil, binfmt.Errorf(binfmt.PE, lfanewOffset, "e_lfanew %#x is out of range", f.NTHeaderOffset)
	}

	// Signature, COFF file header and the fixed part of the optional header
	// up to and including NumberOfRvaAndSizes (PE32+: 112 bytes).
	var nt [4 + coffHeaderSize + 112]byte
	ntOff := f.NTHeaderOffset
	if err := binfmt.ReadFull(r, size, binfmt.PE, ntOff, nt[:4+coffHeaderSize+2], "NT headers"); err != nil {
		return nil, err
	}
	if nt[0] != 'P' || nt[1] != 'E' || nt[2] != 0 || nt[3] != 0 {
		return nil, binfmt.Errorf(binfmt.PE, ntOff, "no PE signature where e_lfanew points")
	}
	coff := nt[4:]
	f.Machine = binary.LittleEndian.Uint16(coff[0:])
	nsec := int(binary.LittleEndian.Uint16(coff[2:]))
	optSize := int64(binary.LittleEndian.Uint16(coff[16:]))
	f.Characteristics = binary.LittleEndian.Uint16(coff[18:])
	optOff := ntOff + 4 + coffHeaderSize
	magic := binary.LittleEndian.Uint16(nt[4+coffHeaderSize:])
	var fixed int64 // bytes of the optional header before the data directories
	switch magic {
	case magicPE32:
		fixed = 96
	case magicPE32Plus:
		fixed = 112
		f.PE32Plus = true
	default:
		return nil, binfmt.Errorf(binfmt.PE, optOff, "unsupported optional header magic %#x (want 0x10b PE32 or 0x20b PE32+)", magic)
	}
	// The certificate table entry is data directory 4: the optional header
	// must be long enough to hold it.
	need := fixed + (securityDirIdx+1)*dirEntrySize
	if optSize < need {
		return nil, binfmt.Errorf(binfmt.PE, ntOff+4+16, "SizeOfOptionalHeader %d is too small to hold the certificate table directory entry (need %d)", optSize, need)
	}
	opt := nt[4+coffHeaderSize : 4+coffHeaderSize+fixed]
	if err := binfmt.ReadFull(r, size, binfmt.PE, optOff, opt, "optional header"); err != nil {
		return nil, err
	}
	f.CheckSumOffset = optOff + checksumOffset
	f.CheckSum = binary.LittleEndian.Uint32(opt[checksumOffset:])
	f.Subsystem = binary.LittleEndian.Uint16(opt[68:])
	f.SizeOfHeaders = binary.LittleEndian.Uint32(opt[60:])
	f.SectionAlignment = binary.LittleEndian.Uint32(opt[32:])
	f.NumberOfRvaSizes = binary.LittleEndian.Uint32(opt[fixed-4:])
	if f.NumberOfRvaSizes <= securityDirIdx {
		return nil, binfmt.Errorf(binfmt.PE, optOff+fixed-4, "NumberOfRvaAndSizes is %d: the image has no certificate table directory entry", f.NumberOfRvaSizes)
	}
	if int64(f.NumberOfRvaSizes) > (optSize-fixed)/dirEntrySize {
		return nil, binfmt.Errorf(binfmt.PE, optOff+fixed-4, "NumberOfRvaAndSizes %d does not fit in SizeOfOptionalHeader %d", f.NumberOfRvaSizes, optSize)
	}
	f.CertDirOffset = optOff + fixed + securityDirIdx*dirEntrySize
	var dir [dirEntrySize]byte
	if err := binfmt.ReadFull(r, size, binfmt.PE, f.CertDirOffset, dir[:], "certificate table directory entry"); err != nil {
		return nil, err
	}
	certOff := int64(binary.LittleEndian.Uint32(dir[0:]))
	certLen := int64(binary.LittleEndian.Uint32(dir[4:]))

	// Section table.
	if nsec > limits.MaxPESections {
		return nil, binfmt.Errorf(binfmt.PE, ntOff+4+2, "%d sections exceed the limit of %d", nsec, limits.MaxPESections)
	}
	secOff := optOff + optSize
	if int64(f.SizeOfHeaders) > size {
		return nil, binfmt.Errorf(binfmt.PE, optOff+60, "SizeOfHeaders %#x is larger than the file (size %#x): %v", f.SizeOfHeaders, size, binfmt.ErrTruncated)
	}
	f.ImageEnd = max(int64(f.SizeOfHeaders), secOff+int64(nsec)*sectionSize)
	if f.ImageEnd > size {
		return nil, binfmt.Errorf(binfmt.PE, secOff, "section table (%d entries) extends past the end of the file (size %#x): %v", nsec, size, binfmt.ErrTruncated)
	}
	f.Sections = make([]Section, 0, nsec)
	var sb [sectionSize]byte
	for i := range nsec {
		off := secOff + int64(i)*sectionSize
		if err := binfmt.ReadFull(r, size, binfmt.PE, off, sb[:], fmt.Sprintf("section header %d", i)); err != nil {
			return nil, err
		}
		s := Section{
			Name:             sectionName(sb[:8]),
			VirtualSize:      binary.LittleEndian.Uint32(sb[8:]),
			VirtualAddress:   binary.LittleEndian.Uint32(sb[12:]),
			SizeOfRawData:    binary.LittleEndian.Uint32(sb[16:]),
			PointerToRawData: binary.LittleEndian.Uint32(sb[20:]),
		}
		if s.SizeOfRawData > 0 {
			end := int64(s.PointerToRawData) + int64(s.SizeOfRawData)
			if end > size {
				return nil, binfmt.Errorf(binfmt.PE, int64(s.PointerToRawData), "section %d (%q) raw data [%#x, %#x) extends past the end of the file (size %#x): %v",
					i, s.Name, s.PointerToRawData, end, size, binfmt.ErrTruncated)
			}
			f.ImageEnd = max(f.ImageEnd, end)
		}
		f.Sections = append(f.Sections, s)
	}

	// Certificate table: both fields zero (unsigned) or a table at the very
	// end of the file, after the image, 8-byte aligned, whose entries add up.
	switch {
	case certOff == 0 && certLen == 0:
	case certLen == 0:
		return nil, binfmt.Errorf(binfmt.PE, f.CertDirOffset, "certificate table directory entry has offset %#x but size 0", certOff)
	case certOff == 0:
		return nil, binfmt.Errorf(binfmt.PE, f.CertDirOffset, "certificate table directory entry has size %d but offset 0", certLen)
	case certLen > limits.MaxCertTable:
		return nil, binfmt.Errorf(binfmt.PE, f.CertDirOffset, "certificate table size %d exceeds the limit of %d", certLen, limits.MaxCertTable)
	case certOff+certLen > size:
		return nil, binfmt.Errorf(binfmt.PE, certOff, "certificate table [%#x, %#x) extends past the end of the file (size %#x): %v", certOff, certOff+certLen, size, binfmt.ErrTruncated)
	case certOff < f.ImageEnd:
		return nil, binfmt.Errorf(binfmt.PE, certOff, "certificate table at %#x overlaps the image, which ends at %#x", certOff, f.ImageEnd)
	case certOff+certLen != size:
		return nil, binfmt.Errorf(binfmt.PE, certOff+certLen, "certificate table [%#x, %#x) is not at the end of the file (size %#x): %d bytes after it are covered by no signature",
			certOff, certOff+certLen, size, size-certOff-certLen)
	case certOff%8 != 0:
		return nil, binfmt.Errorf(binfmt.PE, certOff, "certificate table offset %#x is not 8-byte aligned", certOff)
	case certLen < certEntryHeader:
		return nil, binfmt.Errorf(binfmt.PE, certOff, "certificate table size %d is smaller than one WIN_CERTIFICATE header", certLen)
	}
	f.CertTable = Range{Off: certOff, Len: certLen}
	return f, nil
}

func sectionName(b []byte) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(b[:n])
}

// WIN_CERTIFICATE revisions and types.
const (
	CertRevision1_0        = 0x0100
	CertRevision2_0        = 0x0200
	CertTypeX509           = 0x0001
	CertTypePKCSSignedData = 0x0002
	CertTypeReserved1      = 0x0003
	CertTypePKCS1Sign      = 0x0009
)

// Certificate is one WIN_CERTIFICATE entry of the attribute certificate table.
type Certificate struct {
	Offset   int64  // file offset of the entry header
	Length   uint32 // dwLength, header included
	Revision uint16
	Type     uint16
	Data     []byte // bCertificate (aliases the table bytes)
}

// TypeName names a WIN_CERTIFICATE type.
func TypeName(t uint16) string {
	switch t {
	case CertTypeX509:
		return "X509"
	case CertTypePKCSSignedData:
		return "PKCS_SIGNED_DATA"
	case CertTypeReserved1:
		return "RESERVED_1"
	case CertTypePKCS1Sign:
		return "PKCS1_SIGN"
	}
	return fmt.Sprintf("unknown(%#x)", t)
}

// ParseCertificateTable splits the attribute certificate table (table holds
// its bytes; off is its file offset, for messages) into WIN_CERTIFICATE
// entries, and checks that each is what an Authenticode signature is stored
// as: revision 2.0, type WIN_CERT_TYPE_PKCS_SIGNED_DATA, and a bCertificate
// holding one DER SEQUENCE (the PKCS#7 ContentInfo, with minimal DER
// lengths) followed by nothing but the zero padding that brings the entry to
// the next 8-byte boundary: at most 7 bytes, inside dwLength or after it.
// The entries and their padding must fill the table exactly.
//
// # Security
//
// A table holding anything else (an X509 or PKCS1_SIGN entry, a revision
// 1.0 entry, data after the signature, padding past the 8-byte boundary or
// not zero) is malformed: no signature vouches for those bytes, and
// installers that read data from their own certificate table (the
// CVE-2013-3900 class) would run what an attacker put there. Windows with
// EnableCertPaddingCheck likewise treats a file with extraneous data in a
// WIN_CERTIFICATE as unsigned; the PE/COFF specification pads each entry
// with zeros to an 8-byte boundary and no further. Whether the DER inside
// is an Authenticode signature is checked by signing/authenticode.
func ParseCertificateTable(table []byte, off int64) ([]Certificate, error) {
	var certs []Certificate
	pos := 0
	for pos < len(table) {
		at := off + int64(pos)
		rest := len(table) - pos
		if rest < certEntryHeader {
			if allZero(table[pos:]) {
				break // alignment padding
			}
			return nil, binfmt.Errorf(binfmt.PE, at, "%d stray bytes at the end of the certificate table", rest)
		}
		if len(certs) == limits.MaxCertEntries {
			return nil, binfmt.Errorf(binfmt.PE, at, "more than %d entries in the certificate table", limits.MaxCertEntries)
		}
		length := binary.LittleEndian.Uint32(table[pos:])
		c := Certificate{
			Offset:   at,
			Length:   length,
			Revision: binary.LittleEndian.Uint16(table[pos+4:]),
			Type:     binary.LittleEndian.Uint16(table[pos+6:]),
		}
		if length < certEntryHeader {
			return nil, binfmt.Errorf(binfmt.PE, at, "WIN_CERTIFICATE %d: dwLength %d is smaller than its header", len(certs), length)
		}
		if int64(length) > int64(rest) {
			return nil, binfmt.Errorf(binfmt.PE, at, "WIN_CERTIFICATE %d: dwLength %d exceeds the %d bytes left in the certificate table", len(certs), length, rest)
		}
		if c.Revision != CertRevision2_0 || c.Type != CertTypePKCSSignedData {
			return nil, binfmt.Errorf(binfmt.PE, at, "WIN_CERTIFICATE %d: revision %#04x, type %s: an Authenticode signature is revision 2.0, PKCS_SIGNED_DATA, and nothing else may ride in the certificate table",
				len(certs), c.Revision, TypeName(c.Type))
		}
		c.Data = table[pos+certEntryHeader : pos+int(length)]
		if err := checkSignatureFraming(c.Data, at+certEntryHeader, len(certs)); err != nil {
			return nil, err
		}
		certs = append(certs, c)
		next := pos + int(length)
		pos = (next + 7) &^ 7
		if pos > len(table) {
			// The last entry's padding may be missing; what is there is zero.
			if !allZero(table[next:]) {
				return nil, binfmt.Errorf(binfmt.PE, off+int64(next), "non-zero padding after WIN_CERTIFICATE %d", len(certs)-1)
			}
			break
		}
		if !allZero(table[next:pos]) {
			return nil, binfmt.Errorf(binfmt.PE, off+int64(next), "non-zero padding after WIN_CERTIFICATE %d", len(certs)-1)
		}
	}
	if len(certs) == 0 {
		return nil, binfmt.Errorf(binfmt.PE, off, "certificate table holds no entries")
	}
	return certs, nil
}

// checkSignatureFraming checks that data (the bCertificate of entry i, at
// file offset at, which is 8-byte aligned less the 8-byte header) is one DER
// SEQUENCE followed by at most the zero padding to the next 8-byte boundary.
func checkSignatureFraming(data []byte, at int64, i int) error {
	s := cryptobyte.String(data)
	var elem cryptobyte.String
	if !s.ReadASN1Element(&elem, cbasn1.SEQUENCE) {
		return binfmt.Errorf(binfmt.PE, at, "WIN_CERTIFICATE %d: bCertificate is not a DER SEQUENCE (a PKCS#7 ContentInfo)", i)
	}
	end := at + int64(len(elem))
	switch pad := -(certEntryHeader + len(elem)) & 7; {
	case !allZero(s):
		return binfmt.Errorf(binfmt.PE, end, "WIN_CERTIFICATE %d: %d bytes after the signature are not zero padding", i, len(s))
	case len(s) > pad:
		return binfmt.Errorf(binfmt.PE, end, "WIN_CERTIFICATE %d: %d bytes of padding after the signature, past the 8-byte boundary (at most %d)", i, len(s), pad)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
