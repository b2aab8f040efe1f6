package attest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/signing"
)

// GUID is an EFI_GUID as it is stored (the first three fields little
// endian).
type GUID [16]byte

// String writes the GUID in its canonical form.
func (g GUID) String() string {
	var b [16]byte
	b[0], b[1], b[2], b[3] = g[3], g[2], g[1], g[0]
	b[4], b[5] = g[5], g[4]
	b[6], b[7] = g[7], g[6]
	copy(b[8:], g[8:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// MarshalText writes String.
func (g GUID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

func mustGUID(s string) GUID {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 {
		panic("bad GUID " + s)
	}
	var g GUID
	g[0], g[1], g[2], g[3] = h[3], h[2], h[1], h[0]
	g[4], g[5] = h[5], h[4]
	g[6], g[7] = h[7], h[6]
	copy(g[8:], h[8:])
	return g
}

var (
	guidGlobalVariable = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	guidImageSecurity  = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	guidShimLock       = mustGUID("605dab50-e046-4300-abb6-3dd810dd8b23")

	guidCertX509       = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	guidCertSHA256     = mustGUID("c1c41626-504c-4092-aca9-41f936934328")
	guidCertSHA1       = mustGUID("826ca512-cf10-4ac9-b187-be01496631bd")
	guidCertSHA224     = mustGUID("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd")
	guidCertSHA384     = mustGUID("ff3e5307-9fd0-48c9-85f1-8ad56c701e01")
	guidCertSHA512     = mustGUID("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a")
	guidCertRSA2048    = mustGUID("3c5766e8-269c-4e34-aa14-ed776e85b3b6")
	guidCertRSA2048S1  = mustGUID("67f8444f-8743-48f1-a328-1eaab8736080")
	guidCertRSA2048S2  = mustGUID("e2b36190-879b-4a3d-ad8d-f2e7bba32784")
	guidCertX509SHA256 = mustGUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")
	guidCertX509SHA384 = mustGUID("7076876e-80c2-4ee6-aad2-28b349a6865b")
	guidCertX509SHA512 = mustGUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d")
)

// signatureTypes names the EFI_SIGNATURE_LIST types and their data sizes
// (0: variable).
var signatureTypes = map[GUID]struct {
	name string
	size int
}{
	guidCertX509:       {"x509", 0},
	guidCertSHA256:     {"sha256", 32},
	guidCertSHA1:       {"sha1", 20},
	guidCertSHA224:     {"sha224", 28},
	guidCertSHA384:     {"sha384", 48},
	guidCertSHA512:     {"sha512", 64},
	guidCertRSA2048:    {"rsa2048", 256},
	guidCertRSA2048S1:  {"rsa2048-sha1", 256},
	guidCertRSA2048S2:  {"rsa2048-sha256", 256},
	guidCertX509SHA256: {"x509-sha256", 48},
	guidCertX509SHA384: {"x509-sha384", 64},
	guidCertX509SHA512: {"x509-sha512", 80},
}

// Caps on UEFI structures inside events.
const (
	maxVariableName   = 1024    // characters of a variable name
	maxSignatures     = 1 << 14 // entries of one signature database
	maxDevicePathNode = 64      // nodes of a device path
)

// variableData is a decoded UEFI_VARIABLE_DATA.
type variableData struct {
	guid GUID
	name string
	data []byte
	// size is the structure's length; the event data may run past it.
	size int
}

// parseVariableData decodes UEFI_VARIABLE_DATA: VariableName (GUID),
// UnicodeNameLength and VariableDataLength (UINT64), the UTF-16 name, the
// data.
func parseVariableData(b []byte) (variableData, error) {
	var v variableData
	if len(b) < 32 {
		return v, fmt.Errorf("UEFI_VARIABLE_DATA of %d bytes (at least 32)", len(b))
	}
	copy(v.guid[:], b)
	nameLen := binary.LittleEndian.Uint64(b[16:])
	dataLen := binary.LittleEndian.Uint64(b[24:])
	if nameLen > maxVariableName {
		return v, fmt.Errorf("variable name of %d characters (limit %d)", nameLen, maxVariableName)
	}
	rest := b[32:]
	if int(nameLen)*2 > len(rest) {
		return v, fmt.Errorf("variable name of %d characters exceeds the %d bytes left", nameLen, len(rest))
	}
	u := make([]uint16, nameLen)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(rest[2*i:])
	}
	v.name = string(utf16.Decode(u))
	rest = rest[2*nameLen:]
	if dataLen > uint64(len(rest)) {
		return v, fmt.Errorf("variable data of %d bytes exceeds the %d bytes left", dataLen, len(rest))
	}
	v.data = rest[:dataLen:dataLen]
	v.size = 32 + 2*int(nameLen) + int(dataLen)
	return v, nil
}

// SignatureEntry is one EFI_SIGNATURE_DATA of a signature database.
type SignatureEntry struct {
	// Type is the list's signature type: "x509", "sha256", ..., or the
	// GUID of a type this package does not know.
	Type  string `json:"type"`
	Owner GUID   `json:"owner"`
	Data  []byte `json:"-"`
}

// parseSignatureLists decodes the EFI_SIGNATURE_LISTs of a signature
// database variable (PK, KEK, db, dbx, a dbx update).
func parseSignatureLists(b []byte) ([]SignatureEntry, error) {
	var out []SignatureEntry
	for off := 0; off < len(b); {
		if len(b)-off < 28 {
			return nil, fmt.Errorf("signature list at offset %d: %d bytes left, a header needs 28", off, len(b)-off)
		}
		var typ GUID
		copy(typ[:], b[off:])
		listSize := int64(binary.LittleEndian.Uint32(b[off+16:]))
		hdrSize := int64(binary.LittleEndian.Uint32(b[off+20:]))
		sigSize := int64(binary.LittleEndian.Uint32(b[off+24:]))
		switch {
		case listSize < 28 || listSize > int64(len(b)-off):
			return nil, fmt.Errorf("signature list at offset %d: size %d (want 28 to %d)", off, listSize, len(b)-off)
		case sigSize < 16:
			return nil, fmt.Errorf("signature list at offset %d: signature size %d (at least the 16-byte owner)", off, sigSize)
		case hdrSize > listSize-28:
			return nil, fmt.Errorf("signature list at offset %d: header size %d exceeds the list", off, hdrSize)
		case (listSize-28-hdrSize)%sigSize != 0:
			return nil, fmt.Errorf("signature list at offset %d: %d bytes of signatures are not a multiple of the signature size %d", off, listSize-28-hdrSize, sigSize)
		}
		t, ok := signatureTypes[typ]
		name := t.name
		switch {
		case !ok:
			name = typ.String()
		case t.size != 0 && sigSize != 16+int64(t.size):
			return nil, fmt.Errorf("signature list at offset %d: %s entries of %d bytes, want %d", off, t.name, sigSize, 16+t.size)
		}
		body := b[off+28+int(hdrSize) : off+int(listSize)]
		for e := 0; e < len(body); e += int(sigSize) {
			if len(out) >= maxSignatures {
				return nil, fmt.Errorf("more than %d signatures", maxSignatures)
			}
			ent := SignatureEntry{Type: name, Data: body[e+16 : e+int(sigSize) : e+int(sigSize)]}
			copy(ent.Owner[:], body[e:])
			if typ == guidCertX509 && !isDERSequence(ent.Data) {
				return nil, fmt.Errorf("signature list at offset %d, entry %d: not a DER certificate", off, e/int(sigSize))
			}
			out = append(out, ent)
		}
		off += int(listSize)
	}
	return out, nil
}

// SignatureDB is the content of a Secure Boot signature database variable
// (PK, KEK, db or dbx) as measured, or of a dbx update file.
// Certificates are identified by their DER bytes and parsed (leniently)
// only when asked for: policies compare them by their SHA-256.
type SignatureDB struct {
	// Measured says the variable's event was found and read.
	Measured bool `json:"measured"`
	// Event is the index of the variable's event.
	Event int `json:"event"`
	// CertDER are the x509 entries and CertSHA256 their fingerprints;
	// SHA256 the sha256 (image hash) entries; Others every other entry.
	CertDER    [][]byte         `json:"-"`
	CertSHA256 [][32]byte       `json:"-"`
	SHA256     [][]byte         `json:"-"`
	Others     []SignatureEntry `json:"others,omitempty"`
	// DataSHA256 is the SHA-256 of the variable's data (the signature
	// lists); EventDigest the event's digest in the strongest covering
	// bank, EventDigestAlg that bank.
	DataSHA256     []byte `json:"data_sha256"`
	EventDigest    []byte `json:"event_digest,omitempty"`
	EventDigestAlg string `json:"event_digest_alg,omitempty"`

	once  sync.Once
	certs []*signing.Certificate // aligned with CertDER; nil where unreadable
}

func newSignatureDB(entries []SignatureEntry) *SignatureDB {
	db := &SignatureDB{Measured: true}
	for _, e := range entries {
		switch e.Type {
		case "x509":
			db.CertDER = append(db.CertDER, e.Data)
			db.CertSHA256 = append(db.CertSHA256, sha256.Sum256(e.Data))
		case "sha256":
			db.SHA256 = append(db.SHA256, e.Data)
		default:
			db.Others = append(db.Others, e)
		}
	}
	return db
}

func (db *SignatureDB) parse() {
	db.once.Do(func() {
		db.certs = make([]*signing.Certificate, len(db.CertDER))
		for i, der := range db.CertDER {
			db.certs[i], _ = signing.ParseCertificate(der)
		}
	})
}

// Certificates returns the x509 entries, parsed leniently (see
// signing.ParseCertificate); an entry that cannot be read at all is left
// out (Summary shows it).
func (db *SignatureDB) Certificates() []*signing.Certificate {
	if db == nil {
		return nil
	}
	db.parse()
	var out []*signing.Certificate
	for _, c := range db.certs {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Summary describes the x509 entries for reports.
func (db *SignatureDB) Summary() []CertSummary {
	if db == nil {
		return nil
	}
	db.parse()
	out := make([]CertSummary, len(db.CertDER))
	for i, c := range db.certs {
		if c == nil {
			out[i] = CertSummary{SHA256: hex.EncodeToString(db.CertSHA256[i][:]), GoParseError: "unreadable certificate"}
			continue
		}
		out[i] = summarize(c)
	}
	return out
}

// name returns the subject CN of the i-th certificate, for messages.
func (db *SignatureDB) name(i int) string {
	db.parse()
	if c := db.certs[i]; c != nil {
		return c.CommonName()
	}
	return "(unreadable)"
}

// MarshalJSON adds the certificate summaries and the hash count.
func (db *SignatureDB) MarshalJSON() ([]byte, error) {
	type plain SignatureDB
	return json.Marshal(struct {
		*plain
		Certificates []CertSummary `json:"certificates"`
		Hashes       int           `json:"sha256_hashes"`
	}{(*plain)(db), db.Summary(), len(db.SHA256)})
}

// hasSHA256Cert reports whether the database holds a certificate with
// this fingerprint.
func (db *SignatureDB) hasSHA256Cert(fp [32]byte) bool {
	return db != nil && slices.Contains(db.CertSHA256, fp)
}

// HasCertificate reports whether the database holds a certificate with the
// same DER bytes.
func (db *SignatureDB) HasCertificate(c *signing.Certificate) bool { return db.hasSHA256Cert(c.SHA256) }

// HasSHA256 reports whether the database holds a SHA-256 hash entry.
func (db *SignatureDB) HasSHA256(h []byte) bool {
	if db == nil {
		return false
	}
	for _, x := range db.SHA256 {
		if string(x) == string(h) {
			return true
		}
	}
	return false
}

// isDERSequence reports whether b is exactly one DER SEQUENCE.
func isDERSequence(b []byte) bool {
	s := cryptobyte.String(b)
	var seq cryptobyte.String
	return s.ReadASN1(&seq, cbasn1.SEQUENCE) && s.Empty()
}

// ParseSignatureDatabase reads a signature database as a file holds it: a
// Microsoft dbx update (an authenticated variable: EFI_TIME, a
// WIN_CERTIFICATE_UEFI_GUID, then EFI_SIGNATURE_LISTs) or bare
// EFI_SIGNATURE_LISTs. The authentication descriptor's signature is not
// verified: the file is the operator's statement of what dbx must hold.
func ParseSignatureDatabase(b []byte) (*SignatureDB, error) {
	entries, err := parseSignatureLists(b)
	if err != nil && len(b) >= 16+8 {
		// EFI_VARIABLE_AUTHENTICATION_2: EFI_TIME (16 bytes), then
		// WIN_CERTIFICATE (dwLength includes its own header).
		n := int64(binary.LittleEndian.Uint32(b[16:]))
		if n >= 8 && 16+n <= int64(len(b)) {
			var err2 error
			if entries, err2 = parseSignatureLists(b[16+n:]); err2 == nil {
				err = nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("attest: neither EFI_SIGNATURE_LISTs nor an authenticated variable holding them: %v", err)
	}
	db := newSignatureDB(entries)
	s := sha256.Sum256(b)
	db.DataSHA256 = s[:]
	return db, nil
}

// imageLoad decodes an EFI_IMAGE_LOAD_EVENT and names the image from its
// device path: the last file path node, or a description of the device.
func imageName(b []byte) (string, error) {
	if len(b) < 32 {
		return "", fmt.Errorf("EFI_IMAGE_LOAD_EVENT of %d bytes (at least 32)", len(b))
	}
	n := binary.LittleEndian.Uint64(b[24:])
	if n > uint64(len(b)-32) {
		return "", fmt.Errorf("device path of %d bytes exceeds the %d bytes left", n, len(b)-32)
	}
	dp := b[32 : 32+n]
	name := ""
	pci := false
	for i := 0; len(dp) > 0; i++ {
		if i >= maxDevicePathNode {
			return "", fmt.Errorf("more than %d device path nodes", maxDevicePathNode)
		}
		if len(dp) < 4 {
			return "", errors.New("truncated device path node")
		}
		typ, sub, l := dp[0], dp[1], int(binary.LittleEndian.Uint16(dp[2:]))
		if l < 4 || l > len(dp) {
			return "", fmt.Errorf("device path node of length %d (%d bytes left)", l, len(dp))
		}
		data := dp[4:l]
		switch {
		case typ == 0x7f:
			return nameOr(name, pci), nil
		case typ == 0x01 && sub == 0x01:
			pci = true
		case typ == 0x04 && sub == 0x04: // media file path
			u := make([]uint16, len(data)/2)
			for j := range u {
				u[j] = binary.LittleEndian.Uint16(data[2*j:])
			}
			name = strings.TrimRight(string(utf16.Decode(u)), "\x00")
		}
		dp = dp[l:]
	}
	return nameOr(name, pci), nil
}

func nameOr(name string, pci bool) string {
	if name == "" && pci {
		return "PCI option ROM"
	}
	return name
}

// CertSummary is what reports show of a certificate.
type CertSummary struct {
	Subject string `json:"subject"`
	SHA256  string `json:"sha256"`
	// GoParseError says why Go's x509 refuses the certificate (it is read
	// leniently all the same).
	GoParseError string `json:"go_parse_error,omitempty"`
}

func summarize(c *signing.Certificate) CertSummary {
	s := CertSummary{Subject: c.CommonName(), SHA256: hex.EncodeToString(c.SHA256[:])}
	if c.ParseError != nil {
		s.GoParseError = c.ParseError.Error()
	}
	return s
}
