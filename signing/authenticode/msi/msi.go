// Package msi is the Authenticode subject for Windows Installer packages
// (.msi, and the .msp and .mst files of the same structure): compound
// files (internal/binfmt/cfb) whose signature is the stream
// \x05DigitalSignature of the root storage, optionally with the stream
// \x05MsiDigitalSignatureEx, as signtool and osslsigncode (-add-msi-dse)
// write them. Windows Installer's SIP is msisip.dll, SIP GUID
// {000C10F1-0000-0000-C000-000000000046}.
//
// # The digest
//
// The digest Windows Installer computes ([Package.Digest]) hashes, storage
// by storage from the root, the content of every stream and the digest of
// every sub-storage, in the order of their names as stored (UTF-16LE,
// compared byte by byte, NUL terminator included), then the storage's
// CLSID; the root's two signature streams are left out. With
// \x05MsiDigitalSignatureEx the digest is taken over the "pre-hash" first
// ([Package.PreHash]: the hash of the entries' metadata, in the same
// order: for the root its CLSID and state bits, for every other storage
// its name, CLSID, state bits, creation and modification times, for every
// stream its name, the low 32 bits of its size, its state bits and times),
// then the content as above; the stream holds the pre-hash itself.
// osslsigncode 2.9's msi.c (msi_hash_dir, msi_prehash_dir) computes the
// same bytes; the tests check each digest against it.
//
// # Security
//
// The package is untrusted. The compound file is parsed by
// internal/binfmt/cfb (every chain checked once, loops and shared sectors
// refused). A signature stream over limits.MaxMSISignature bytes, a
// signature stream that is a storage, a \x05MsiDigitalSignatureEx without
// a \x05DigitalSignature, or one whose content is not the pre-hash of the
// package's metadata (for the signature's algorithm) make the package
// malformed, and so is a file with bytes after its last sector in use
// (appended data, which Windows once accepted in signed packages:
// CVE-2020-1464). Bytes outside every stream (free sectors, the unused ends of
// sectors, the directory's unused entries) are covered by no digest, as
// Windows Installer's own digest leaves them out: the streams are what
// Windows Installer reads.
package msi

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/cms"
)

// Format is how messages name the format.
const Format = "MSI"

// Names of the signature streams in the root storage.
const (
	SignatureStream   = "\x05DigitalSignature"
	SignatureExStream = "\x05MsiDigitalSignatureEx"
)

// Root storage CLSIDs (as stored: the first three fields little endian) of
// Windows Installer's kinds.
var (
	// CLSIDPackage is an installation package (.msi),
	// {000C1084-0000-0000-C000-000000000046}.
	CLSIDPackage = [16]byte{0x84, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46}
	// CLSIDPatch is a patch (.msp), {000C1086-0000-0000-C000-000000000046}.
	CLSIDPatch = [16]byte{0x86, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46}
	// CLSIDTransform is a transform (.mst),
	// {000C1082-0000-0000-C000-000000000046}.
	CLSIDTransform = [16]byte{0x82, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46}
)

// Kind names the kind of a root CLSID ("" if it is none of Windows
// Installer's).
func Kind(clsid [16]byte) string {
	switch clsid {
	case CLSIDPackage:
		return "installation package"
	case CLSIDPatch:
		return "patch"
	case CLSIDTransform:
		return "transform"
	}
	return ""
}

// SIPGUID is Windows Installer's SIP GUID
// {000C10F1-0000-0000-C000-000000000046} as an SpcSipInfo holds it.
var SIPGUID = []byte{0xf1, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46}

// OIDSpcSipInfo is SPC_SIPINFO_OBJID.
var OIDSpcSipInfo = authenticode.OIDSpcSipInfo

// Package is a parsed Windows Installer file.
type Package struct {
	CFB  *cfb.File
	Size int64
	// Ex is the content of \x05MsiDigitalSignatureEx (nil without it).
	Ex []byte

	sig, ex int // entry indexes of the signature streams, or -1
	stored  []authenticode.Stored
}

var _ authenticode.Subject = (*Package)(nil)

func malformed(off int64, format string, args ...any) *signing.MalformedError {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads the compound file and its signature streams.
func Parse(r io.ReaderAt, size int64) (*Package, error) {
	f, err := cfb.Parse(r, size)
	if err != nil {
		return nil, err
	}
	if f.End < size {
		return nil, malformed(f.End, "%d bytes after the last sector in use: data in no stream, which no signature covers", size-f.End)
	}
	p := &Package{CFB: f, Size: size, sig: -1, ex: -1}
	for _, c := range f.Entries[0].Children {
		e := &f.Entries[c]
		var at *int
		switch e.Name {
		case SignatureStream:
			at = &p.sig
		case SignatureExStream:
			at = &p.ex
		default:
			continue
		}
		if e.Type != cfb.TypeStream {
			return nil, malformed(e.Offset, "%+q is a storage, not a stream", e.Name)
		}
		*at = c
	}
	if p.ex >= 0 && p.sig < 0 {
		return nil, malformed(f.Entries[p.ex].Offset, "a \\x05MsiDigitalSignatureEx stream without a \\x05DigitalSignature stream")
	}
	if p.sig >= 0 {
		e := &f.Entries[p.sig]
		s, err := f.Open(p.sig)
		if err != nil {
			return nil, err
		}
		if e.Size > limits.MaxMSISignature {
			return nil, &signing.MalformedError{Format: Format, Offset: e.Offset, Err: signing.ErrLimit,
				Reason: fmt.Sprintf("limit exceeded: a signature stream of %d bytes (the cap is %d)", e.Size, limits.MaxMSISignature)}
		}
		der, err := s.ReadAll(limits.MaxMSISignature)
		if err != nil {
			return nil, err
		}
		p.stored = []authenticode.Stored{{Name: "\\x05DigitalSignature stream", Offset: e.Offset, DER: der}}
	}
	if p.ex >= 0 {
		e := &f.Entries[p.ex]
		if e.Size > 64 {
			return nil, malformed(e.Offset, "a \\x05MsiDigitalSignatureEx stream of %d bytes (a digest: at most 64)", e.Size)
		}
		s, err := f.Open(p.ex)
		if err != nil {
			return nil, err
		}
		if p.Ex, err = s.ReadAll(64); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Signed reports whether the package has a \x05DigitalSignature stream.
func (p *Package) Signed() bool { return p.sig >= 0 }

// Signature returns the \x05DigitalSignature stream's content (nil when
// unsigned).
func (p *Package) Signature() []byte {
	if len(p.stored) == 0 {
		return nil
	}
	return p.stored[0].DER
}

// Format implements authenticode.Subject.
func (p *Package) Format() string { return Format }

// DigestName names the digest in messages.
func (p *Package) DigestName() string { return "MSI digest" }

// Signatures implements authenticode.Subject.
func (p *Package) Signatures() []authenticode.Stored { return p.stored }

// IndirectData implements authenticode.Subject: SPC_SIPINFO_OBJID with
// an SpcSipInfo naming Windows Installer's SIP, as signtool and
// osslsigncode write it.
func (p *Package) IndirectData() authenticode.IndirectData { return indirectData }

// IndirectData is the data type MSI signatures name.
func IndirectData() authenticode.IndirectData { return indirectData }

// indirectData: SpcSipInfo ::= SEQUENCE { dwSIPversion INTEGER (1),
// gSIPguid OCTET STRING, five INTEGERs 0 }.
var indirectData = authenticode.SipInfo(1, SIPGUID)

// Why hosts do not count a package's signature.
const (
	whyUEFI   = "UEFI firmware runs no installers"
	whyNested = "csv cannot establish that Windows Installer reads the signatures nested in a package's signature, so it does not count them"
)

// Judge implements authenticode.Subject: UEFI counts none, Windows the
// primary signature only, and only if it names Windows Installer's SIP.
func (p *Package) Judge(sig, parent *signing.Signature, data authenticode.IndirectData) {
	sig.Ignore(signing.HostUEFI, whyUEFI)
	if len(sig.Path) > 0 {
		sig.Ignore(signing.HostWindows, whyNested)
	}
	if why := sipMismatch(data); why != "" {
		sig.Ignore(signing.HostWindows, why)
	}
}

func sipMismatch(data authenticode.IndirectData) string {
	guid, typeOK, ok := authenticode.SipGUID(data)
	if !typeOK {
		return fmt.Sprintf("its SpcIndirectDataContent data type is %s, not SPC_SIPINFO_OBJID: Windows verifies an installer with Windows Installer's SIP only", data.Type)
	}
	if !ok {
		return "its SpcSipInfo does not parse: Windows verifies an installer with Windows Installer's SIP only"
	}
	if !bytes.Equal(guid, SIPGUID) {
		return fmt.Sprintf("its SpcSipInfo names SIP %x, not Windows Installer's {000C10F1-0000-0000-C000-000000000046}", []byte(guid))
	}
	return ""
}

// sorted returns storage i's children in the digest's order, without the
// root's signature streams.
func (p *Package) sorted(i int) []int {
	f := p.CFB
	out := make([]int, 0, len(f.Entries[i].Children))
	for _, c := range f.Entries[i].Children {
		if i == 0 && (c == p.sig || c == p.ex) {
			continue
		}
		out = append(out, c)
	}
	key := func(c int) []byte { return append(slices.Clip(f.Entries[c].RawName), 0, 0) }
	slices.SortFunc(out, func(a, b int) int { return bytes.Compare(key(a), key(b)) })
	return out
}

// PreHash returns the pre-hash \x05MsiDigitalSignatureEx holds, with h.
func (p *Package) PreHash(h crypto.Hash) []byte {
	w := h.New()
	p.prehash(0, w)
	return w.Sum(nil)
}

func (p *Package) prehash(i int, w io.Writer) {
	f := p.CFB
	meta := func(e *cfb.Entry) {
		var b [4]byte
		if e.Type != cfb.TypeRoot {
			w.Write(e.RawName)
		}
		if e.Type != cfb.TypeStream {
			w.Write(e.CLSID[:])
		} else {
			binary.LittleEndian.PutUint32(b[:], uint32(e.Size))
			w.Write(b[:])
		}
		binary.LittleEndian.PutUint32(b[:], e.StateBits)
		w.Write(b[:])
		if e.Type != cfb.TypeRoot {
			w.Write(e.Created[:])
			w.Write(e.Modified[:])
		}
	}
	meta(&f.Entries[i])
	for _, c := range p.sorted(i) {
		switch f.Entries[c].Type {
		case cfb.TypeStream:
			meta(&f.Entries[c])
		case cfb.TypeStorage:
			p.prehash(c, w)
		}
	}
}

// Digest computes the package's digest with each of hs, reading every
// stream once by random access (see the package documentation). With a
// \x05MsiDigitalSignatureEx stream, each digest starts with the
// pre-hash of its algorithm.
func (p *Package) Digest(hs ...crypto.Hash) (map[crypto.Hash][]byte, error) {
	ws := make([]hash.Hash, len(hs))
	list := make([]io.Writer, len(hs))
	for i, h := range hs {
		if !h.Available() {
			return nil, fmt.Errorf("msi: hash %v is not available", h)
		}
		ws[i] = h.New()
		list[i] = ws[i]
		if p.ex >= 0 {
			ws[i].Write(p.PreHash(h))
		}
	}
	buf := make([]byte, 64<<10)
	if err := p.hashDir(0, io.MultiWriter(list...), buf); err != nil {
		return nil, err
	}
	out := make(map[crypto.Hash][]byte, len(hs))
	for i, h := range hs {
		out[h] = ws[i].Sum(nil)
	}
	return out, nil
}

func (p *Package) hashDir(i int, w io.Writer, buf []byte) error {
	f := p.CFB
	for _, c := range p.sorted(i) {
		switch f.Entries[c].Type {
		case cfb.TypeStream:
			s, err := f.Open(c)
			if err != nil {
				return err
			}
			if _, err := io.CopyBuffer(w, s, buf); err != nil {
				return fmt.Errorf("msi: reading stream %+q: %w", f.Entries[c].Name, err)
			}
		case cfb.TypeStorage:
			if err := p.hashDir(c, w, buf); err != nil {
				return err
			}
		}
	}
	w.Write(f.Entries[i].CLSID[:])
	return nil
}

// ErrPreHash (wrapping signing.ErrMalformed): \x05MsiDigitalSignatureEx
// does not hold the pre-hash of the package's metadata.
var ErrPreHash = errors.New("msi: \\x05MsiDigitalSignatureEx does not hold the pre-hash of the package's metadata")

// CheckEx checks \x05MsiDigitalSignatureEx against the package's
// metadata: its content must be the pre-hash with the algorithm of its
// size (SHA-1, SHA-256, SHA-384 or SHA-512), and every signature (nested
// ones included) must be made with that algorithm. Without the stream it
// does nothing.
func (p *Package) CheckEx() error {
	if p.ex < 0 {
		return nil
	}
	off := p.CFB.Entries[p.ex].Offset
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		if h.Size() == len(p.Ex) {
			if !bytes.Equal(p.PreHash(h), p.Ex) {
				return &signing.MalformedError{Format: Format, Offset: off, Reason: "\\x05MsiDigitalSignatureEx does not hold the pre-hash of the package's metadata (names, sizes, times, CLSIDs)", Err: ErrPreHash}
			}
			// The pre-hash is the signatures': each is over the pre-hash
			// of its own algorithm, which the stream must hold (as
			// osslsigncode requires; csv signs no other way).
			var other crypto.Hash
			authenticode.EachSignature(p.stored, func(sp *authenticode.Parsed) {
				if sh, err := cms.DigestHash(sp.DigestAlgorithm.OID); err == nil && sh != h && other == 0 {
					other = sh
				}
			})
			if other != 0 {
				return &signing.MalformedError{Format: Format, Offset: off, Err: ErrPreHash,
					Reason: fmt.Sprintf("\\x05MsiDigitalSignatureEx holds the %v pre-hash of the package's metadata, and a signature is made with %v: each signature is over the pre-hash of its own algorithm, which the stream must hold", h, other)}
			}
			return nil
		}
	}
	return malformed(off, "a \\x05MsiDigitalSignatureEx stream of %d bytes, the size of no digest", len(p.Ex))
}

// Verify checks the package's \x05MsiDigitalSignatureEx (CheckEx), then
// verifies its signatures against digests (by algorithm, as
// [Package.Digest] computes them): authenticode.Verify, whose
// documentation lists the checks.
func Verify(p *Package, digests map[crypto.Hash][]byte, opts authenticode.VerifyOptions) ([]*signing.Signature, error) {
	if err := p.CheckEx(); err != nil {
		return nil, err
	}
	return authenticode.Verify(p, digests, opts)
}
