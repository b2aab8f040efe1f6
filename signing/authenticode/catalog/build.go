package catalog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
	"github.com/codesignval/csv/signing/cms"
)

// Kind is how a member's hash is computed, and so the data type and SIP
// its entry names.
type Kind int

// Member kinds.
const (
	// KindFlat: the hash of the whole file (SPC_CAB_DATA_OBJID, the flat
	// SIP), as makecat writes for files without a SIP of their own.
	KindFlat Kind = iota
	// KindPE: the Authenticode image hash (SPC_PE_IMAGE_DATAOBJ, the PE
	// SIP).
	KindPE
	// KindSIP: the digest another SIP computes (a PowerShell script's),
	// with the data type and SIP the Entry names (Data, SIP).
	KindSIP
)

func (k Kind) String() string {
	switch k {
	case KindPE:
		return "PE"
	case KindSIP:
		return "SIP"
	}
	return "flat"
}

// Entry is a member to write: a file's hash and name.
type Entry struct {
	// Name is the member's "File" name/value attribute (a base name, as
	// makecat writes it); "" writes none.
	Name   string
	Kind   Kind
	Hash   crypto.Hash
	Digest []byte
	// Data and SIP, for KindSIP, are the data type the member's
	// SPC_INDIRECT_DATA names (as the SIP's own signatures name it: a
	// PowerShell script's SpcSipInfo) and the SIP's GUID in braces, which
	// CAT_MEMBERINFO_OBJID names.
	Data authenticode.IndirectData
	SIP  string
}

// BuildOptions configure Build. The zero value writes a v2 (SHA256)
// catalog with a random list identifier, dated now.
type BuildOptions struct {
	// Version is 1 (SHA1 members, catalog member v1) or 2 (SHA256
	// members, catalog member v2); 0 is 2.
	Version int
	// ListIdentifier is the 16-byte listIdentifier; nil draws one.
	ListIdentifier []byte
	// ThisUpdate dates the list; zero is now.
	ThisUpdate time.Time
	// Attributes are catalog attributes (CAT_NAMEVALUE_OBJID extensions)
	// written with flags 0x10010001 (authenticated, ASCII name and value)
	// unless Flags is set.
	Attributes []NameValue
}

// CRYPTCAT_ATTR flags makecat writes on name/value attributes:
// authenticated, value and name in ASCII.
const defaultFlags = 0x10010001

// Build returns a certificate trust list (the DER element a catalog's
// signature signs) listing entries, as makecat lays one out (see the
// package documentation): each member's tag is its digest in upper-case
// hex (UTF-16LE, NUL-terminated), its attributes SPC_INDIRECT_DATA_OBJID
// (data type and DigestInfo), CAT_MEMBERINFO_OBJID (the SIP GUID, version
// 512) and, when the entry has a name, CAT_NAMEVALUE_OBJID "File". Every
// entry's hash must be the catalog version's (SHA1 for v1, SHA256 for v2).
// Members are written sorted by tag, one per digest: entries with the
// same digest (two copies of a file) become one member, named after the
// first.
func Build(entries []Entry, opts BuildOptions) ([]byte, error) {
	version := opts.Version
	if version == 0 {
		version = 2
	}
	var want crypto.Hash
	var alg cms.OID
	switch version {
	case 1:
		want, alg = crypto.SHA1, OIDCatalogMemberV1
	case 2:
		want, alg = crypto.SHA256, OIDCatalogMemberV2
	default:
		return nil, fmt.Errorf("catalog: build: version %d (want 1 or 2)", version)
	}
	if len(entries) > limits.MaxCatalogMembers {
		return nil, signing.Errorf(signing.ErrLimit, "catalog: build: %d members (at most %d)", len(entries), limits.MaxCatalogMembers)
	}
	id := opts.ListIdentifier
	if id == nil {
		id = make([]byte, 16)
		if _, err := io.ReadFull(rand.Reader, id); err != nil {
			return nil, fmt.Errorf("catalog: build: %w", err)
		}
	}
	when := opts.ThisUpdate
	if when.IsZero() {
		when = time.Now()
	}
	when = when.UTC().Truncate(time.Second)
	hashOID, ok := signing.OIDForHash(want)
	if !ok {
		return nil, fmt.Errorf("catalog: build: no OID for %v", want)
	}
	digestAlg := cms.AlgorithmIdentifier{OID: cms.NewOID(hashOID...), Params: cms.NULL}

	type member struct {
		tag string
		e   Entry
	}
	seen := map[string]bool{}
	members := make([]member, 0, len(entries))
	for _, e := range entries {
		if e.Kind == KindSIP && (len(e.Data.Type) == 0 || e.SIP == "") {
			return nil, fmt.Errorf("catalog: build: entry %q: a SIP member needs its data type and SIP GUID", e.Name)
		}
		if e.Hash != want || len(e.Digest) != want.Size() {
			return nil, fmt.Errorf("catalog: build: entry %q: a v%d catalog lists %s digests, not a %d-byte %s digest", e.Name, version, cms.HashName(want), len(e.Digest), cms.HashName(e.Hash))
		}
		tag := strings.ToUpper(hex.EncodeToString(e.Digest))
		if seen[tag] {
			continue
		}
		seen[tag] = true
		members = append(members, member{tag, e})
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.tag, b.tag) })

	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(OIDCatalogList) })
		b.AddASN1OctetString(id)
		b.AddASN1UTCTime(when)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(alg)
			b.AddBytes(cms.NULL)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, m := range members {
				attrs := [][]byte{indirect(m.e, digestAlg), memberInfo(m.e)}
				if m.e.Name != "" {
					attrs = append(attrs, attribute(OIDNameValue, nameValueDER(NameValue{Name: "File", Flags: defaultFlags, Value: m.e.Name})))
				}
				slices.SortFunc(attrs, bytes.Compare) // DER: a SET OF in encoding order
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(utf16leZ(m.tag))
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						for _, a := range attrs {
							b.AddBytes(a)
						}
					})
				})
			}
		})
		if len(opts.Attributes) > 0 {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, a := range opts.Attributes {
						if a.Flags == 0 {
							a.Flags = defaultFlags
						}
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(OIDNameValue)
							b.AddASN1OctetString(nameValueDER(a))
						})
					}
				})
			})
		}
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("catalog: build: %w", err)
	}
	return der, nil
}

// indirect is a member's SPC_INDIRECT_DATA_OBJID attribute.
func indirect(e Entry, digestAlg cms.AlgorithmIdentifier) []byte {
	var data authenticode.IndirectData
	switch e.Kind {
	case KindPE:
		data = new(pe.Table).IndirectData()
	case KindSIP:
		data = e.Data
	default:
		// SPC_CAB_DATA_OBJID with an SpcLink file "<<<Obsolete>>>", as
		// makecat writes for flat files.
		data = authenticode.IndirectData{Type: OIDSpcCabData, Value: obsoleteLink}
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(data.Type)
			b.AddBytes(data.Value)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			digestAlg.Marshal(b)
			b.AddASN1OctetString(e.Digest)
		})
	})
	return attribute(authenticode.OIDSpcIndirectData, b.BytesOrPanic())
}

// obsoleteLink is SpcLink file [2] SpcString unicode [0] "<<<Obsolete>>>".
var obsoleteLink = func() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(authenticode.BMPString("<<<Obsolete>>>")) })
	})
	return b.BytesOrPanic()
}()

// memberInfo is CAT_MEMBERINFO_OBJID: the SIP GUID and version 512.
func memberInfo(e Entry) []byte {
	guid := SIPFlat
	switch e.Kind {
	case KindPE:
		guid = SIPPE
	case KindSIP:
		guid = e.SIP
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(30), func(b *cryptobyte.Builder) { b.AddBytes(authenticode.BMPString(guid)) })
		b.AddASN1Int64(512)
	})
	return attribute(OIDMemberInfo, b.BytesOrPanic())
}

func nameValueDER(nv NameValue) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(30), func(b *cryptobyte.Builder) { b.AddBytes(authenticode.BMPString(nv.Name)) })
		b.AddASN1Int64(int64(nv.Flags))
		b.AddASN1OctetString(utf16leZ(nv.Value))
	})
	return b.BytesOrPanic()
}

func attribute(oid cms.OID, value []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(oid)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(value) })
	})
	return b.BytesOrPanic()
}

// utf16leZ encodes s as UTF-16LE with a terminating NUL.
func utf16leZ(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		out = append(out, byte(c), byte(c>>8))
	}
	return append(out, 0, 0)
}

// Unsigned returns an unsigned catalog file holding ctl: a SignedData with
// no SignerInfo, which signers (osslsigncode, signtool) sign.
func Unsigned(ctl []byte) ([]byte, error) {
	return cms.MarshalSignedData(cms.SignedDataTemplate{Version: 1, ContentType: authenticode.OIDCTL, Content: ctl})
}

// Sign returns the catalog file of ctl signed by s (its key, chain, hash
// and timestamp authority): authenticode's Signer.SignCTL.
func Sign(ctx context.Context, s *authenticode.Signer, ctl []byte) ([]byte, error) {
	der, err := s.SignCTL(ctx, ctl)
	if err != nil {
		return nil, fmt.Errorf("catalog: sign: %w", err)
	}
	return der, nil
}

// HashFile returns the member hash of the file r holds (size bytes) with
// h: the Authenticode image hash if the file is a PE image (it starts with
// "MZ"; a malformed one is an error, never hashed flat), else the flat
// hash of its bytes.
func HashFile(r io.ReaderAt, size int64, h crypto.Hash) (Kind, []byte, error) {
	if !h.Available() {
		return 0, nil, fmt.Errorf("catalog: hash %v is not available", h)
	}
	var magic [2]byte
	if size >= 2 {
		if _, err := r.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("catalog: %w", err)
		}
	}
	if string(magic[:]) == "MZ" {
		im, err := pe.Parse(r, size)
		if err != nil {
			return 0, nil, fmt.Errorf("catalog: a PE file that cannot be hashed: %w", err)
		}
		d, err := im.Digest(r, h)
		if err != nil {
			return 0, nil, fmt.Errorf("catalog: %w", err)
		}
		return KindPE, d, nil
	}
	hh := h.New()
	if _, err := io.Copy(hh, io.NewSectionReader(r, 0, size)); err != nil {
		return 0, nil, fmt.Errorf("catalog: %w", err)
	}
	return KindFlat, hh.Sum(nil), nil
}
