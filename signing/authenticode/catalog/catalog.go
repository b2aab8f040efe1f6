// Package catalog reads, verifies and makes Windows security catalogs
// (.cat files): a PKCS#7 SignedData whose content is a certificate trust
// list (szOID_CTL, 1.3.6.1.4.1.311.10.1) of member hashes. Windows counts a
// file as signed by a catalog's signer when the file's hash (the
// Authenticode image hash of a PE file, the SIP hash of a script, the flat
// hash of other files) is a member of a catalog whose signature verifies.
//
// # Layout
//
// The layout is the one Microsoft's makecat writes and Wine's wintrust and
// osslsigncode read (checked against a catalog Microsoft signed and against
// osslsigncode 2.9):
//
//	CertificateTrustList ::= SEQUENCE {
//	  version          INTEGER OPTIONAL,          -- v1 (0) when absent
//	  subjectUsage     SEQUENCE OF OID,           -- szOID_CATALOG_LIST 1.3.6.1.4.1.311.12.1.1
//	  listIdentifier   OCTET STRING OPTIONAL,     -- 16 bytes
//	  sequenceNumber   INTEGER OPTIONAL,
//	  thisUpdate       UTCTime | GeneralizedTime,
//	  nextUpdate       UTCTime | GeneralizedTime OPTIONAL,
//	  subjectAlgorithm AlgorithmIdentifier,       -- catalog member v1 (12.1.2) or v2 (12.1.3)
//	  trustedSubjects  SEQUENCE OF SEQUENCE {
//	    subjectIdentifier OCTET STRING,           -- the member's tag: its hash in hex, UTF-16LE, NUL-terminated
//	    attributes        SET OF Attribute OPTIONAL } OPTIONAL,
//	  extensions       [0] EXPLICIT SEQUENCE OF Extension OPTIONAL }  -- catalog attributes
//
// A member's attributes are SPC_INDIRECT_DATA_OBJID (1.3.6.1.4.1.311.2.1.4:
// an SpcIndirectDataContent naming the member's data type, SPC_PE_IMAGE_DATAOBJ
// for PE files or SPC_CAB_DATA_OBJID for flat files, and its DigestInfo:
// the hash algorithm and digest), CAT_MEMBERINFO_OBJID
// (1.3.6.1.4.1.311.12.2.2: the SIP's GUID and a version) and
// CAT_NAMEVALUE_OBJID (1.3.6.1.4.1.311.12.2.1: a name, flags and a
// UTF-16LE value, such as "File"). A catalog attribute is an extension
// CAT_NAMEVALUE_OBJID whose value is that name/value SEQUENCE.
//
// The catalog's signature is an Authenticode signature whose content is the
// list itself (authenticode.CTLSubject): its messageDigest is over the
// list's content octets, as for SpcIndirectDataContent. [Catalog.Verify]
// checks it with package authenticode (chain, timestamps, nested
// signatures, MD5 refused) and returns, only when it verifies, a
// [Verified] catalog whose [Verified.Lookup] finds members by hash.
//
// # Security
//
// A catalog is untrusted until its signature verifies. [Parse] reads it as
// strict DER with cryptobyte within the caps of internal/limits (the file,
// the members, the attributes of a member and an attribute's size), never
// allocating from a length field, and returns a *signing.MalformedError
// naming the offset of what is wrong; a panic is turned into an error
// wrapping signing.ErrInternal. Every byte of the list is covered by the
// signature; Parse still refuses a list whose members are not what a
// catalog holds (a member with two digests, a digest that is not its
// algorithm's size, an attribute over the caps), so that what csv reports
// of a catalog is what Windows reads. A catalog whose signature does not
// verify admits nothing: no [Verified] value exists for it.
package catalog

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/cms"
)

// Format is how messages name the format.
const Format = "catalog"

// OIDs of catalogs (complete DER elements).
var (
	OIDCatalogList     = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 1, 1) // szOID_CATALOG_LIST
	OIDCatalogMemberV1 = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 1, 2) // szOID_CATALOG_LIST_MEMBER
	OIDCatalogMemberV2 = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 1, 3) // szOID_CATALOG_LIST_MEMBER2
	OIDNameValue       = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 2, 1) // CAT_NAMEVALUE_OBJID
	OIDMemberInfo      = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 2, 2) // CAT_MEMBERINFO_OBJID
	OIDMemberInfo2     = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 2, 3) // CAT_MEMBERINFO2_OBJID
	OIDSpcCabData      = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 25) // SPC_CAB_DATA_OBJID: flat files
	OIDSpcPEImageData  = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 15) // SPC_PE_IMAGE_DATAOBJ
	OIDSpcSIPInfo      = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 30) // SPC_SIPINFO_OBJID: scripts and other SIPs
)

// SIP GUIDs a catalog names in CAT_MEMBERINFO_OBJID.
const (
	SIPPE   = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}" // PE images
	SIPFlat = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}" // flat files
)

// NameValue is a CAT_NAMEVALUE_OBJID attribute: a name, its CRYPTCAT_ATTR
// flags and its value (decoded from UTF-16LE, without the terminating NUL;
// Raw holds the octets as stored).
type NameValue struct {
	Name  string `json:"name"`
	Flags uint32 `json:"flags"`
	Value string `json:"value"`
	Raw   []byte `json:"-"`
}

// Member is one entry of a catalog's list.
type Member struct {
	// Tag is the subjectIdentifier, decoded from UTF-16LE where it is
	// (makecat writes the hash in upper-case hex), else in hex; RawTag is
	// as stored.
	Tag    string `json:"tag"`
	RawTag []byte `json:"-"`
	// Algorithm and Digest are the member's hash, from its
	// SpcIndirectDataContent (0 and nil when it has none: it then admits
	// nothing). DataType is the data type it names (SPC_PE_IMAGE_DATAOBJ,
	// SPC_CAB_DATA_OBJID, ...).
	Algorithm crypto.Hash `json:"-"`
	Digest    []byte      `json:"-"`
	DataType  cms.OID     `json:"-"`
	// SIP is the CAT_MEMBERINFO_OBJID GUID ("" when absent).
	SIP string `json:"sip,omitempty"`
	// Names are the CAT_NAMEVALUE_OBJID attributes; File is the value of
	// the one named "File", if any.
	Names []NameValue `json:"names,omitempty"`
	File  string      `json:"file,omitempty"`
	// Offset is the member's file offset (for messages).
	Offset int64 `json:"-"`
}

// Catalog is a parsed security catalog: its list and its signature, not
// yet verified.
type Catalog struct {
	// Version is 1 or 2: the catalog member version its subjectAlgorithm
	// names.
	Version        int
	ListIdentifier []byte
	ThisUpdate     time.Time
	Members        []Member
	// Attributes are the catalog's own CAT_NAMEVALUE_OBJID extensions.
	Attributes []NameValue
	// Signed reports whether the SignedData has a SignerInfo (a catalog
	// with none is unsigned and admits nothing).
	Signed bool

	der    []byte
	ctl    []byte
	stored []authenticode.Stored
}

var _ authenticode.CTLSubject = (*Catalog)(nil)

// malformed returns a *signing.MalformedError at offset off of the file.
func malformed(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func limitf(off int64, format string, args ...any) error {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...), Err: signing.ErrLimit}
}

// Parse reads a catalog file: a ContentInfo holding a SignedData (read as
// authenticode reads signatures, with at most one SignerInfo) whose content
// is a certificate trust list that lists catalog members, as the package
// documentation lays out. It checks the structure only (Verify checks the
// signature). Errors are *signing.MalformedError values (wrapping
// signing.ErrLimit for a cap).
func Parse(der []byte) (c *Catalog, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, signing.Errorf(signing.ErrInternal, "catalog: internal error: %w (please report this)", panicerr.New(r))
		}
	}()
	if len(der) > limits.MaxCatalogFile {
		return nil, limitf(0, "a %d-byte catalog (at most %d)", len(der), limits.MaxCatalogFile)
	}
	sd, err := cms.Parse(der, authenticode.ParseOptions(0, false))
	if err != nil {
		return nil, err
	}
	switch {
	case !sd.ContentType.Equal(authenticode.OIDCTL):
		return nil, malformed(sd.OffsetOf(sd.EncapContentInfo), "content type is %s, want szOID_CTL (1.3.6.1.4.1.311.10.1): not a catalog", sd.ContentType)
	case sd.Content == nil:
		return nil, malformed(sd.OffsetOf(sd.EncapContentInfo), "no certificate trust list")
	case sd.OctetString:
		return nil, malformed(sd.OffsetOf(sd.EncapContentInfo), "the certificate trust list is wrapped in an OCTET STRING (catalogs encapsulate it directly)")
	case len(sd.SignerInfos) > 1:
		return nil, malformed(sd.OffsetOf(sd.SignerInfos[1].Raw), "%d SignerInfos (Authenticode requires exactly one)", len(sd.SignerInfos))
	}
	c = &Catalog{der: der, ctl: sd.Content, Signed: len(sd.SignerInfos) == 1}
	if c.Signed {
		c.stored = []authenticode.Stored{{Name: "catalog signature", Offset: 0, DER: der, DEROffset: 0}}
	}
	p := &ctlParser{sd: sd}
	if err := p.parse(c, sd.Content); err != nil {
		return nil, err
	}
	return c, nil
}

type ctlParser struct{ sd *cms.SignedData }

func (p *ctlParser) off(b []byte) int64 { return p.sd.OffsetOf(b) }

func (p *ctlParser) parse(c *Catalog, ctl cryptobyte.String) error {
	at := ctl
	var body cryptobyte.String
	if !ctl.ReadASN1(&body, cbasn1.SEQUENCE) || !ctl.Empty() {
		return malformed(p.off(at), "the certificate trust list is not a DER SEQUENCE")
	}
	if body.PeekASN1Tag(cbasn1.INTEGER) {
		var v int64
		at = body
		if !body.ReadASN1Integer(&v) || v != 0 {
			return malformed(p.off(at), "certificate trust list version is not v1 (0)")
		}
	}
	// subjectUsage: the list is a catalog.
	var usage cryptobyte.String
	at = body
	if !body.ReadASN1(&usage, cbasn1.SEQUENCE) {
		return malformed(p.off(at), "the certificate trust list has no subjectUsage")
	}
	catalog := false
	for n := 0; !usage.Empty(); n++ {
		var oid cryptobyte.String
		if n == limits.MaxCatalogAttributes || !usage.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
			return malformed(p.off(at), "bad subjectUsage")
		}
		catalog = catalog || cms.OID(oid).Equal(OIDCatalogList)
	}
	if !catalog {
		return malformed(p.off(at), "subjectUsage does not name szOID_CATALOG_LIST (1.3.6.1.4.1.311.12.1.1): a certificate trust list, not a catalog")
	}
	if body.PeekASN1Tag(cbasn1.OCTET_STRING) {
		var id cryptobyte.String
		at = body
		if !body.ReadASN1(&id, cbasn1.OCTET_STRING) || len(id) > 256 {
			return malformed(p.off(at), "bad listIdentifier")
		}
		c.ListIdentifier = bytes.Clone(id)
	}
	if body.PeekASN1Tag(cbasn1.INTEGER) {
		var seq cryptobyte.String
		at = body
		if !body.ReadASN1(&seq, cbasn1.INTEGER) || len(seq) > 32 {
			return malformed(p.off(at), "bad sequenceNumber")
		}
	}
	var err error
	at = body
	if c.ThisUpdate, err = readTime(&body); err != nil {
		return malformed(p.off(at), "bad thisUpdate: %v", err)
	}
	if body.PeekASN1Tag(cbasn1.UTCTime) || body.PeekASN1Tag(cbasn1.GeneralizedTime) {
		at = body
		if _, err := readTime(&body); err != nil {
			return malformed(p.off(at), "bad nextUpdate: %v", err)
		}
	}
	var alg, algOID cryptobyte.String
	at = body
	if !body.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1Element(&algOID, cbasn1.OBJECT_IDENTIFIER) {
		return malformed(p.off(at), "bad subjectAlgorithm")
	}
	switch {
	case cms.OID(algOID).Equal(OIDCatalogMemberV1):
		c.Version = 1
	case cms.OID(algOID).Equal(OIDCatalogMemberV2):
		c.Version = 2
	default:
		return malformed(p.off(at), "subjectAlgorithm is %s, want a catalog member v1 (1.3.6.1.4.1.311.12.1.2) or v2 (1.3.6.1.4.1.311.12.1.3)", cms.OID(algOID))
	}
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || len(null) != 0 || !alg.Empty() {
			return malformed(p.off(at), "subjectAlgorithm parameters are not NULL")
		}
	}
	if body.PeekASN1Tag(cbasn1.SEQUENCE) {
		var subjects cryptobyte.String
		at = body
		if !body.ReadASN1(&subjects, cbasn1.SEQUENCE) {
			return malformed(p.off(at), "bad trustedSubjects")
		}
		for !subjects.Empty() {
			at := subjects
			if len(c.Members) == limits.MaxCatalogMembers {
				return limitf(p.off(at), "more than %d members", limits.MaxCatalogMembers)
			}
			var elem cryptobyte.String
			if !subjects.ReadASN1(&elem, cbasn1.SEQUENCE) {
				return malformed(p.off(at), "member %d is not a DER SEQUENCE", len(c.Members))
			}
			m, err := p.member(elem, len(c.Members))
			if err != nil {
				return err
			}
			m.Offset = p.off(at)
			c.Members = append(c.Members, m)
		}
	}
	extTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if body.PeekASN1Tag(extTag) {
		var explicit, exts cryptobyte.String
		at = body
		if !body.ReadASN1(&explicit, extTag) || !explicit.ReadASN1(&exts, cbasn1.SEQUENCE) || !explicit.Empty() {
			return malformed(p.off(at), "bad catalog attributes (ctlExtensions)")
		}
		for n := 0; !exts.Empty(); n++ {
			at := exts
			if n == limits.MaxCatalogAttributes {
				return limitf(p.off(at), "more than %d catalog attributes", limits.MaxCatalogAttributes)
			}
			var ext, oid, value cryptobyte.String
			if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
				return malformed(p.off(at), "catalog attribute %d is not an Extension", n)
			}
			if ext.PeekASN1Tag(cbasn1.BOOLEAN) {
				var critical bool
				if !ext.ReadASN1Boolean(&critical) {
					return malformed(p.off(at), "catalog attribute %d has a bad critical flag", n)
				}
			}
			if !ext.ReadASN1(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
				return malformed(p.off(at), "catalog attribute %d has no value", n)
			}
			if len(value) > limits.MaxCatalogAttribute {
				return limitf(p.off(at), "catalog attribute %d has %d bytes (at most %d)", n, len(value), limits.MaxCatalogAttribute)
			}
			if !cms.OID(oid).Equal(OIDNameValue) {
				continue // signed, and read by nobody csv knows of
			}
			nv, err := nameValue(value)
			if err != nil {
				return malformed(p.off(at), "catalog attribute %d: %v", n, err)
			}
			c.Attributes = append(c.Attributes, nv)
		}
	}
	if !body.Empty() {
		return malformed(p.off(body), "trailing data in the certificate trust list")
	}
	return nil
}

// member reads one TrustedSubject's contents.
func (p *ctlParser) member(s cryptobyte.String, n int) (Member, error) {
	var m Member
	at := s
	var tag cryptobyte.String
	if !s.ReadASN1(&tag, cbasn1.OCTET_STRING) || len(tag) > 1024 {
		return m, malformed(p.off(at), "member %d has no subjectIdentifier (its tag)", n)
	}
	m.RawTag = bytes.Clone(tag)
	m.Tag = decodeTag(tag)
	if s.Empty() {
		return m, nil
	}
	var attrs cryptobyte.String
	at = s
	if !s.ReadASN1(&attrs, cbasn1.SET) || !s.Empty() {
		return m, malformed(p.off(at), "member %d (%s): bad attributes", n, m.Tag)
	}
	for k := 0; !attrs.Empty(); k++ {
		at := attrs
		if k == limits.MaxCatalogAttributes {
			return m, limitf(p.off(at), "member %d (%s): more than %d attributes", n, m.Tag, limits.MaxCatalogAttributes)
		}
		var attr, oid, values, value cryptobyte.String
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return m, malformed(p.off(at), "member %d (%s): attribute %d is not an Attribute", n, m.Tag, k)
		}
		if len(values) > limits.MaxCatalogAttribute {
			return m, limitf(p.off(at), "member %d (%s): attribute %d has %d bytes (at most %d)", n, m.Tag, k, len(values), limits.MaxCatalogAttribute)
		}
		one := func() bool {
			return values.ReadAnyASN1Element(&value, nil) && values.Empty()
		}
		bad := func(format string, args ...any) error {
			return malformed(p.off(at), "member %d (%s): %s", n, m.Tag, fmt.Sprintf(format, args...))
		}
		switch {
		case cms.OID(oid).Equal(authenticode.OIDSpcIndirectData):
			if m.Digest != nil {
				return m, bad("two SPC_INDIRECT_DATA_OBJID attributes")
			}
			if !one() {
				return m, bad("SPC_INDIRECT_DATA_OBJID does not hold one value")
			}
			if err := readIndirect(value, &m); err != nil {
				return m, bad("%v", err)
			}
		case cms.OID(oid).Equal(OIDMemberInfo):
			var seq, guid cryptobyte.String
			var version int64
			if !one() || !value.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&guid, cbasn1.Tag(30)) ||
				!seq.ReadASN1Integer(&version) || !seq.Empty() || !value.Empty() {
				return m, bad("bad CAT_MEMBERINFO_OBJID")
			}
			s, ok := bmp(guid)
			if !ok {
				return m, bad("CAT_MEMBERINFO_OBJID's SIP GUID is not a BMPString")
			}
			m.SIP = s
		case cms.OID(oid).Equal(OIDNameValue):
			if !one() {
				return m, bad("CAT_NAMEVALUE_OBJID does not hold one value")
			}
			nv, err := nameValue(value)
			if err != nil {
				return m, bad("%v", err)
			}
			m.Names = append(m.Names, nv)
			if strings.EqualFold(nv.Name, "File") && m.File == "" {
				m.File = nv.Value
			}
		default:
			// Other attributes (CAT_MEMBERINFO2_OBJID, page hashes) are
			// signed and carry nothing csv reads.
		}
	}
	return m, nil
}

// readIndirect reads a member's SpcIndirectDataContent: its data type and
// DigestInfo.
func readIndirect(der cryptobyte.String, m *Member) error {
	var body, data, typ, di, alg, algOID, digest cryptobyte.String
	if !der.ReadASN1(&body, cbasn1.SEQUENCE) || !der.Empty() ||
		!body.ReadASN1(&data, cbasn1.SEQUENCE) || !data.ReadASN1Element(&typ, cbasn1.OBJECT_IDENTIFIER) ||
		!body.ReadASN1(&di, cbasn1.SEQUENCE) || !body.Empty() {
		return fmt.Errorf("bad SpcIndirectDataContent")
	}
	if !di.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1Element(&algOID, cbasn1.OBJECT_IDENTIFIER) ||
		!di.ReadASN1(&digest, cbasn1.OCTET_STRING) || !di.Empty() {
		return fmt.Errorf("bad DigestInfo in SPC_INDIRECT_DATA_OBJID")
	}
	h, err := cms.DigestHash(cms.OID(algOID))
	if err != nil {
		return fmt.Errorf("digest algorithm %s: %w", cms.OID(algOID), err)
	}
	if len(digest) != h.Size() {
		return fmt.Errorf("a %d-byte %s digest", len(digest), cms.HashName(h))
	}
	m.Algorithm, m.Digest, m.DataType = h, bytes.Clone(digest), cms.OID(bytes.Clone(typ))
	return nil
}

// nameValue reads a CAT_NAMEVALUE_OBJID value: SEQUENCE { tag BMPString,
// flags INTEGER, value OCTET STRING (UTF-16LE) }.
func nameValue(der cryptobyte.String) (NameValue, error) {
	var nv NameValue
	var seq, name, value cryptobyte.String
	var flags int64
	if !der.ReadASN1(&seq, cbasn1.SEQUENCE) || !der.Empty() || !seq.ReadASN1(&name, cbasn1.Tag(30)) ||
		!seq.ReadASN1Integer(&flags) || !seq.ReadASN1(&value, cbasn1.OCTET_STRING) || !seq.Empty() {
		return nv, fmt.Errorf("bad CAT_NAMEVALUE_OBJID")
	}
	if flags < 0 || flags > 0xffffffff {
		return nv, fmt.Errorf("CAT_NAMEVALUE_OBJID flags %d are not a 32-bit value", flags)
	}
	s, ok := bmp(name)
	if !ok {
		return nv, fmt.Errorf("CAT_NAMEVALUE_OBJID name is not a BMPString")
	}
	nv.Name, nv.Flags, nv.Raw = s, uint32(flags), bytes.Clone(value)
	nv.Value, _ = utf16le(value)
	return nv, nil
}

// bmp decodes a BMPString's contents (UTF-16 big endian).
func bmp(b []byte) (string, bool) {
	if len(b)%2 != 0 {
		return "", false
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u)), true
}

// utf16le decodes UTF-16LE text without its terminating NUL; ok is false
// when b is not such text (odd length, or a NUL before the end), and the
// text is then b in hex.
func utf16le(b []byte) (string, bool) {
	if len(b)%2 != 0 {
		return strings.ToUpper(hex.EncodeToString(b)), false
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i < len(b); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	if len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	for _, c := range u {
		if c == 0 {
			return strings.ToUpper(hex.EncodeToString(b)), false
		}
	}
	return string(utf16.Decode(u)), true
}

// decodeTag renders a subjectIdentifier: its UTF-16LE text when it is
// printable text, else its hex.
func decodeTag(b []byte) string {
	s, ok := utf16le(b)
	if !ok || s == "" {
		return strings.ToUpper(hex.EncodeToString(b))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return strings.ToUpper(hex.EncodeToString(b))
		}
	}
	return s
}

func readTime(s *cryptobyte.String) (time.Time, error) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1UTCTime(&t) {
			return t, fmt.Errorf("not a UTCTime")
		}
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, fmt.Errorf("not a GeneralizedTime")
		}
	default:
		return t, fmt.Errorf("not a time")
	}
	return t, nil
}

// Format is "catalog".
func (c *Catalog) Format() string { return Format }

// DigestName is what messages call what a catalog's signature signs.
func (c *Catalog) DigestName() string { return "certificate trust list digest" }

// Signatures returns the catalog's signature (none if it is unsigned).
func (c *Catalog) Signatures() []authenticode.Stored { return c.stored }

// CTL returns the certificate trust list the signature must sign.
func (c *Catalog) CTL() []byte { return c.ctl }

// IndirectData is empty: a catalog's signature signs its list, not an
// SpcIndirectDataContent.
func (c *Catalog) IndirectData() authenticode.IndirectData { return authenticode.IndirectData{} }

// Why Windows does not count a catalog's nested signatures.
const (
	whyDepth  = "Windows reads the signatures nested in a catalog's signature one level deep; csv cannot establish that it reads deeper ones"
	whyParent = "the catalog signature it is nested in does not verify, and csv cannot establish that Windows reads the signatures nested in one that fails"
)

// Judge records which hosts do not count sig: UEFI firmware reads no
// catalog, and Windows reads the catalog's signature and those nested in
// it one level deep, under one that verifies.
func (c *Catalog) Judge(sig, parent *signing.Signature, _ authenticode.IndirectData) {
	sig.Ignore(signing.HostUEFI, "UEFI firmware and shim do not read security catalogs")
	if len(sig.Path) > 1 {
		sig.Ignore(signing.HostWindows, whyDepth)
	}
	if parent != nil && (parent.Problem != nil || parent.IgnoredBy[signing.HostWindows] != "") {
		sig.Ignore(signing.HostWindows, whyParent)
	}
}
