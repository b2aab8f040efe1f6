// Package appx is the Authenticode subject for MSIX and APPX packages
// (.msix, .appx) and bundles (.msixbundle, .appxbundle): zip archives
// whose signature is the member AppxSignature.p7x, "PKCX" followed by a
// DER PKCS#7 SignedData, as MakeAppx/signtool and osslsigncode write it.
// The signature's SpcIndirectDataContent names SPC_SIPINFO_OBJID with the
// APPX SIP's GUID {0AC5DF4B-CE07-4DE2-B76E-23C839A09FD1} (bundles:
// {0F5F58B3-AADE-4B9A-A434-95742D92ECEB}), and its digest is not one hash
// but a blob: "APPX", then tagged digests with the block map's hash
// method:
//
//   - AXPC: the zip's local file records (headers, data, descriptors) of
//     every member but the signature, as they lie in the file;
//   - AXCD: the central directory without the signature's record, then
//     the end records as they would be without it (entry counts, size
//     and offset of that directory; the end record's disk numbers 0);
//   - AXCT: [Content_Types].xml, uncompressed;
//   - AXBM: AppxBlockMap.xml, uncompressed;
//   - AXCI: AppxMetadata/CodeIntegrity.cat, uncompressed, when present.
//
// osslsigncode 2.9's appx.c computes the same digests (the tests compare
// each with the ones its verify prints). The block map, which AXBM
// covers, holds the hash of every 64 KiB of every other member
// ([Package.CheckBlockMap]): that is how the signature covers the
// payload's content; AXPC covers its stored bytes.
//
// # What csv requires of the zip
//
// So that the digests are those of the bytes in the file, and every byte
// is covered by one: the local records follow one another from the
// file's start to the central directory in the central directory's order,
// with nothing between them; the signature, when present, is the last
// member; the central directory holds no extra field but the zip64 one
// its records need; members are stored or deflated, not encrypted;
// a data descriptor has its signature (and zip64 sizes in a zip64
// archive), and a local header with one has zero CRC and sizes; no name
// repeats; nothing follows the end record's comment. A package that
// breaks one of these is malformed.
//
// # Security
//
// The package is untrusted. Every length is checked against the bytes
// that hold it and a cap (internal/limits: MaxContainerMembers,
// MaxAPPXSignature, MaxAPPXBlockMap, MaxAPPXPart, MaxAPPXCodeIntegrity);
// members are decompressed as streams checked against their size and
// CRC-32. The block map and the manifest are parsed by encoding/xml
// without DTDs or entities. The signer certificate's subject must be the
// manifest's Identity Publisher, or Windows does not install the package:
// a signature whose subject differs is not counted for Windows
// ([Package.Judge]).
package appx

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// Format is how messages name the format.
const Format = "APPX"

// The package's own parts.
const (
	SignatureName      = "AppxSignature.p7x"
	BlockMapName       = "AppxBlockMap.xml"
	ContentTypesName   = "[Content_Types].xml"
	ManifestName       = "AppxManifest.xml"
	CodeIntegrityName  = "AppxMetadata/CodeIntegrity.cat"
	BundleManifestName = "AppxMetadata/AppxBundleManifest.xml"
)

// SIP GUIDs, as an SpcSipInfo holds them.
var (
	// SIPGUID is the APPX SIP's {0AC5DF4B-CE07-4DE2-B76E-23C839A09FD1}.
	SIPGUID = []byte{0x4b, 0xdf, 0xc5, 0x0a, 0x07, 0xce, 0xe2, 0x4d, 0xb7, 0x6e, 0x23, 0xc8, 0x39, 0xa0, 0x9f, 0xd1}
	// BundleSIPGUID is the bundle SIP's
	// {0F5F58B3-AADE-4B9A-A434-95742D92ECEB}.
	BundleSIPGUID = []byte{0xb3, 0x58, 0x5f, 0x0f, 0xde, 0xaa, 0x9a, 0x4b, 0xa4, 0x34, 0x95, 0x74, 0x2d, 0x92, 0xec, 0xeb}
)

// sipVersion is the SpcSipInfo version APPX signatures carry.
const sipVersion = 0x01010000

// magic is the signature member's header.
const magic = "PKCX"

// Package is a parsed MSIX/APPX package or bundle.
type Package struct {
	r    io.ReaderAt
	Size int64
	// Entries are the zip's members in the central directory's order
	// (which is the file's).
	Entries []Entry
	// Bundle says the package is a bundle (it has
	// AppxMetadata/AppxBundleManifest.xml).
	Bundle bool
	// BlockMap is the parsed AppxBlockMap.xml (nil without one).
	BlockMap *BlockMap
	// Publisher is the manifest's Identity Publisher ("" if the package
	// has no manifest, or it names none).
	Publisher string

	zip    *archive
	index  map[string]int
	stored []authenticode.Stored
}

var (
	_ authenticode.Subject     = (*Package)(nil)
	_ authenticode.DigestSizer = (*Package)(nil)
)

// Entry returns the member named name (as stored), or nil.
func (p *Package) Entry(name string) *Entry {
	if i, ok := p.index[name]; ok {
		return &p.Entries[i]
	}
	return nil
}

// Parse reads the package's zip structure, its signature (if any), its
// block map and its manifest's publisher. It does not read the members'
// data otherwise: [Package.CheckBlockMap] and [Package.Digests] do.
func Parse(r io.ReaderAt, size int64) (*Package, error) {
	a, err := readArchive(r, size)
	if err != nil {
		return nil, err
	}
	p := &Package{r: r, Size: size, Entries: a.entries, zip: a, index: make(map[string]int, len(a.entries))}
	for i := range a.entries {
		p.index[a.entries[i].Name] = i
	}
	p.Bundle = p.Entry(BundleManifestName) != nil
	if e := p.Entry(SignatureName); e != nil {
		if e != &p.Entries[len(p.Entries)-1] {
			return nil, malformed(e.Local, "%s is not the last member (signtool and osslsigncode append it; the digests leave out the last record only)", SignatureName)
		}
		b, err := readAll(r, e, limits.MaxAPPXSignature)
		if err != nil {
			return nil, err
		}
		if len(b) < len(magic) || string(b[:len(magic)]) != magic {
			return nil, malformed(e.Data, "%s does not start with %q", SignatureName, magic)
		}
		p.stored = []authenticode.Stored{{Name: SignatureName, Offset: e.Local, DER: b[len(magic):], DEROffset: e.Data + int64(len(magic))}}
	}
	if e := p.Entry(BlockMapName); e != nil {
		b, err := readAll(r, e, limits.MaxAPPXBlockMap)
		if err != nil {
			return nil, err
		}
		if p.BlockMap, err = ParseBlockMap(b); err != nil {
			return nil, err
		}
	}
	manifest := ManifestName
	if p.Bundle {
		manifest = BundleManifestName
	}
	if e := p.Entry(manifest); e != nil {
		b, err := readAll(r, e, limits.MaxAPPXPart)
		if err != nil {
			return nil, err
		}
		if p.Publisher, err = publisher(b); err != nil {
			return nil, &signing.MalformedError{Format: Format, Offset: e.Local, Reason: manifest + ": " + err.Error(), Err: err}
		}
	}
	return p, nil
}

// Signed reports whether the package has an AppxSignature.p7x.
func (p *Package) Signed() bool { return len(p.stored) > 0 }

// Signature returns the signature's DER (without "PKCX"), nil when
// unsigned.
func (p *Package) Signature() []byte {
	if len(p.stored) == 0 {
		return nil
	}
	return p.stored[0].DER
}

// Format implements authenticode.Subject.
func (p *Package) Format() string { return Format }

// DigestName names the digest in messages.
func (p *Package) DigestName() string { return "APPX digest" }

// Signatures implements authenticode.Subject.
func (p *Package) Signatures() []authenticode.Stored { return p.stored }

// IndirectData implements authenticode.Subject: SPC_SIPINFO_OBJID with
// the APPX (or bundle) SIP, as signtool and osslsigncode write it.
func (p *Package) IndirectData() authenticode.IndirectData {
	if p.Bundle {
		return authenticode.SipInfo(sipVersion, BundleSIPGUID)
	}
	return authenticode.SipInfo(sipVersion, SIPGUID)
}

// DigestSize implements authenticode.DigestSizer: the blob's length.
func (p *Package) DigestSize(h crypto.Hash) int {
	n := 4
	if p.Entry(CodeIntegrityName) != nil {
		n++
	}
	return 4 + n*(4+h.Size())
}

// Why hosts do not count a package's signature.
const (
	whyUEFI   = "UEFI firmware runs no app packages"
	whyNested = "Windows verifies a package's primary signature only"
)

// Judge implements authenticode.Subject: UEFI counts none; Windows the
// primary signature only, if it names the APPX SIP (the bundle SIP for a
// bundle), with the block map's HashMethod, and only if its signer's
// subject is the manifest's Identity Publisher (Windows refuses to
// install the package otherwise).
func (p *Package) Judge(sig, parent *signing.Signature, data authenticode.IndirectData) {
	sig.Ignore(signing.HostUEFI, whyUEFI)
	if len(sig.Path) > 0 {
		sig.Ignore(signing.HostWindows, whyNested)
		return
	}
	want, name := SIPGUID, "the APPX SIP {0AC5DF4B-CE07-4DE2-B76E-23C839A09FD1}"
	if p.Bundle {
		want, name = BundleSIPGUID, "the bundle SIP {0F5F58B3-AADE-4B9A-A434-95742D92ECEB}"
	}
	guid, typeOK, ok := authenticode.SipGUID(data)
	switch {
	case !typeOK:
		sig.Ignore(signing.HostWindows, fmt.Sprintf("its SpcIndirectDataContent data type is %s, not SPC_SIPINFO_OBJID", data.Type))
	case !ok:
		sig.Ignore(signing.HostWindows, "its SpcSipInfo does not parse")
	case !bytes.Equal(guid, want):
		sig.Ignore(signing.HostWindows, fmt.Sprintf("its SpcSipInfo names SIP %x, not %s", []byte(guid), name))
	}
	if bm := p.BlockMap; bm != nil && sig.DigestAlgorithm != bm.HashMethod {
		sig.Ignore(signing.HostWindows, fmt.Sprintf("its digests are %v, and the block map's HashMethod is %v: Windows computes them with the block map's", sig.DigestAlgorithm, bm.HashMethod))
	}
	if why := p.publisherMismatch(sig); why != "" {
		sig.Ignore(signing.HostWindows, why)
	}
}

// publisherMismatch says why the signer is not the manifest's publisher
// ("" when it is).
func (p *Package) publisherMismatch(sig *signing.Signature) string {
	if p.Publisher == "" {
		return "the package has no manifest Identity Publisher: Windows installs a package only when its signer's subject is the Publisher"
	}
	leaf := sig.Signer()
	if leaf == nil {
		return "" // the signature's own problem says why
	}
	if !PublisherMatches(p.Publisher, leaf.RawSubject) {
		return fmt.Sprintf("the signer's subject %q is not the manifest's Identity Publisher %q: Windows refuses to install the package", leaf.Subject, p.Publisher)
	}
	return ""
}

// Digests returns the APPX digest blob with each of hs (see the package
// documentation), reading the members it covers by random access.
func (p *Package) Digests(hs ...crypto.Hash) (map[crypto.Hash][]byte, error) {
	out := make(map[crypto.Hash][]byte, len(hs))
	for _, h := range hs {
		if !h.Available() {
			return nil, fmt.Errorf("appx: hash %v is not available", h)
		}
		b, err := p.blob(h)
		if err != nil {
			return nil, err
		}
		out[h] = b
	}
	return out, nil
}

// dataEnd is where the records the digests cover end: the signature's
// local header, or the central directory.
func (p *Package) dataEnd() (records int64, central int64, n int) {
	a := p.zip
	if e := p.Entry(SignatureName); e != nil {
		return e.Local, e.central, len(p.Entries) - 1
	}
	return a.cdOff, a.cdOff + a.cdSize, len(p.Entries)
}

func (p *Package) blob(h crypto.Hash) ([]byte, error) {
	a := p.zip
	recEnd, cdEnd, n := p.dataEnd()
	blob := []byte("APPX")
	add := func(tag string, sum []byte) { blob = append(append(blob, tag...), sum...) }
	w := h.New()
	if _, err := io.Copy(w, io.NewSectionReader(p.r, 0, recEnd)); err != nil {
		return nil, fmt.Errorf("appx: reading the members: %w", err)
	}
	add("AXPC", w.Sum(nil))
	w.Reset()
	if _, err := io.Copy(w, io.NewSectionReader(p.r, a.cdOff, cdEnd-a.cdOff)); err != nil {
		return nil, fmt.Errorf("appx: reading the central directory: %w", err)
	}
	w.Write(a.endRecords(uint64(n), uint64(cdEnd-a.cdOff), uint64(recEnd)))
	add("AXCD", w.Sum(nil))
	for _, part := range []struct {
		tag, name string
		max       int64
		optional  bool
	}{
		{"AXCT", ContentTypesName, limits.MaxAPPXPart, false},
		{"AXBM", BlockMapName, limits.MaxAPPXBlockMap, false},
		{"AXCI", CodeIntegrityName, limits.MaxAPPXCodeIntegrity, true},
	} {
		e := p.Entry(part.name)
		if e == nil {
			if part.optional {
				continue
			}
			return nil, malformed(-1, "the package has no %s, which its digest covers", part.name)
		}
		if e.Size > part.max {
			return nil, limitErr(e.Local, "%s of %d bytes (the cap is %d)", part.name, e.Size, part.max)
		}
		w.Reset()
		if _, err := io.Copy(w, open(p.r, e)); err != nil {
			return nil, err
		}
		add(part.tag, w.Sum(nil))
	}
	return blob, nil
}

// endRecords are the end records as they would be for a central
// directory of n entries and size bytes at offset: the zip64 end record
// and locator (when the archive has them), then the end record with its
// disk numbers 0, as the APPX digest (and osslsigncode) takes them.
func (a *archive) endRecords(n, size, offset uint64) []byte {
	le := binary.LittleEndian
	var b []byte
	if a.zip64 {
		z := bytes.Clone(a.end64)
		le.PutUint64(z[24:], n)
		le.PutUint64(z[32:], n)
		le.PutUint64(z[40:], size)
		le.PutUint64(z[48:], offset)
		b = append(b, z...)
		l := bytes.Clone(a.locator)
		le.PutUint64(l[8:], offset+size)
		b = append(b, l...)
	}
	e := bytes.Clone(a.end)
	le.PutUint16(e[4:], 0)
	le.PutUint16(e[6:], 0)
	if !a.endFFFF[0] {
		le.PutUint16(e[8:], uint16(n))
	}
	if !a.endFFFF[1] {
		le.PutUint16(e[10:], uint16(n))
	}
	if !a.endFFFF[2] {
		le.PutUint32(e[12:], uint32(size))
	}
	if !a.endFFFF[3] {
		le.PutUint32(e[16:], uint32(offset))
	}
	return append(b, e...)
}

// Verify verifies the package's signature against digests (by algorithm,
// as [Package.Digests] computes them): authenticode.Verify, whose
// documentation lists the checks, with [Package.Judge] deciding which
// hosts count it. It does not check the block map against the members:
// call [Package.CheckBlockMap] too.
func Verify(p *Package, digests map[crypto.Hash][]byte, opts authenticode.VerifyOptions) ([]*signing.Signature, error) {
	return authenticode.Verify(p, digests, opts)
}

// Kind names what the package is, for messages.
func (p *Package) Kind() string {
	if p.Bundle {
		return "bundle"
	}
	return "package"
}

// HasPart reports whether a member of the name is in the package,
// matching case-insensitively as OPC part names do.
func (p *Package) HasPart(name string) bool {
	for i := range p.Entries {
		if strings.EqualFold(p.Entries[i].Name, name) {
			return true
		}
	}
	return false
}
