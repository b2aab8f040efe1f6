// Package cab is the Authenticode subject for Microsoft cabinet files
// (.cab): where a cabinet's signature lies, which of its bytes are hashed,
// and how a cabinet is signed. The cabinet's structure is read by
// container/cab ([ccab.ReadHeader]); its members are judged as members.
//
// # Where the signature lies
//
// A signed cabinet's header is flagged RESERVE_PRESENT with a 20-byte
// header reserve (cbCFHeader 20, cbCFFolder and cbCFData 0): four bytes
// (00 00 10 00, as osslsigncode and signtool write them), the signature's
// offset and size (32-bit little endian), eight zero bytes. The signature
// (a DER PKCS#7 ContentInfo, zero-padded to a multiple of 8 bytes) lies
// after the cabinet's cbCabinet bytes and ends the file.
//
// # The digest
//
// The digest is osslsigncode's (cab.c): the hash of the file's bytes 0-3
// ("MSCF"), 8-33 (the header from cbCabinet to setID), 56-59 (the last
// four bytes of the reserve), then 60 to cbCabinet (the set's names, the
// folders, the files and their data), in that order. Bytes 4-7
// (reserved1), 34-35 (iCabinet), 36-55 (the reserve's sizes, its first
// four bytes, the signature's offset and size, four bytes more) and the
// signature are not hashed. A cabinet csv checks holds only the values
// signers write in the bytes not hashed (reserved1 zero, the reserve's
// first four bytes 00 00 10 00 and its bytes 12-15 zero, iCabinet zero
// when the cabinet is not part of a set), so that no byte rides along
// outside what the signature covers. An unsigned cabinet's digest is that
// of the cabinet it becomes when it is signed (the 24 bytes of reserve
// inserted after the header, its offsets moved by 24), so that a hash rule
// written before signing matches after.
//
// A cabinet with a header reserve of another size, or with folder or data
// reserves, has no Authenticode digest csv computes, and csv does not sign
// it (osslsigncode refuses it too).
//
// # Which signatures count
//
// A signature counts for Windows when its SpcIndirectDataContent names
// SPC_CAB_DATA_OBJID. csv cannot establish that Windows reads the
// signatures nested in a cabinet's signature, so it verifies and reports
// them, and deny rules match them, but they do not count for Windows. UEFI
// firmware reads no cabinets.
package cab

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	ccab "github.com/codesignval/csv/container/cab"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/cms"
)

// Format is how messages name the format.
const Format = "cabinet"

// OIDSpcCabData is SPC_CAB_DATA_OBJID, the data type cabinet signatures
// name.
var OIDSpcCabData = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 25)

// Layout of a signed cabinet's header.
const (
	headerLen  = 36
	reserveLen = 20
	// grow is what signing adds to an unsigned cabinet without a
	// reserve: cbCFHeader, cbCFFolder, cbCFData and the 20-byte reserve.
	grow     = 4 + reserveLen
	sigField = 44 // the signature's offset (then its size, at 48)
	hashed   = 60 // where the bytes hashed to the end start
)

// reserveMagic is the first four bytes of a signed cabinet's reserve.
var reserveMagic = []byte{0, 0, 0x10, 0}

// Cabinet is a cabinet's layout for Authenticode: its header and its
// signature. It is the Authenticode subject of the cabinet.
type Cabinet struct {
	Header *ccab.Header
	// Size is the file's size.
	Size int64
	// Digestable reports whether csv computes the cabinet's digest (its
	// reserves are those of a signed cabinet, or it has none); Why says
	// why not.
	Digestable bool
	Why        string

	stored []authenticode.Stored
}

var _ authenticode.Subject = (*Cabinet)(nil)

func malformed(off int64, format string, args ...any) *signing.MalformedError {
	return &signing.MalformedError{Format: Format, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads the cabinet in r (size bytes): its header (checked by
// container/cab) and its signature, if any. Errors are
// *signing.MalformedError values (wrapping signing.ErrLimit for a cap).
func Parse(r io.ReaderAt, size int64) (*Cabinet, error) {
	h, err := ccab.ReadHeader(r, size)
	if err != nil {
		return nil, err
	}
	c := &Cabinet{Header: h, Size: size, Digestable: true}
	switch {
	case h.ReserveHeader != nil && len(h.ReserveHeader) != reserveLen:
		c.Digestable, c.Why = false, fmt.Sprintf("a header reserve of %d bytes, not the %d of a signed cabinet", len(h.ReserveHeader), reserveLen)
	case h.ReserveFolder != 0 || h.ReserveData != 0:
		c.Digestable, c.Why = false, fmt.Sprintf("folder and data reserves (%d and %d bytes), which signed cabinets do not have", h.ReserveFolder, h.ReserveData)
	}
	if !h.Signed() {
		return c, nil
	}
	if !c.Digestable {
		return nil, malformed(36, "a signature in a cabinet with %s: csv cannot compute its digest", c.Why)
	}
	// The bytes the digest leaves out hold what signers write.
	var b [4]byte
	if _, err := r.ReadAt(b[:], 4); err != nil {
		return nil, &signing.MalformedError{Format: Format, Offset: 4, Reason: "cannot read the header", Err: err}
	}
	switch {
	case !bytes.Equal(b[:], []byte{0, 0, 0, 0}):
		return nil, malformed(4, "reserved1 is %x, not zero: the signature does not cover it", b)
	case !bytes.Equal(h.ReserveHeader[:4], reserveMagic):
		return nil, malformed(40, "the reserve starts with %x, not 00001000: the signature does not cover it", h.ReserveHeader[:4])
	case !bytes.Equal(h.ReserveHeader[12:16], []byte{0, 0, 0, 0}):
		return nil, malformed(52, "the reserve's bytes 12-15 are %x, not zero: the signature does not cover them", h.ReserveHeader[12:16])
	case h.Index != 0 && !h.InSet():
		return nil, malformed(34, "iCabinet is %d in a cabinet that is not part of a set: the signature does not cover it", h.Index)
	case h.SigSize > limits.MaxCabSignature:
		return nil, &signing.MalformedError{Format: Format, Offset: 48, Err: signing.ErrLimit,
			Reason: fmt.Sprintf("limit exceeded: a signature of %d bytes, over %d", h.SigSize, limits.MaxCabSignature)}
	}
	der := make([]byte, h.SigSize)
	if _, err := r.ReadAt(der, h.SigOffset); err != nil {
		return nil, &signing.MalformedError{Format: Format, Offset: h.SigOffset, Reason: "cannot read the signature", Err: err}
	}
	c.stored = []authenticode.Stored{{Name: "signature", Offset: h.SigOffset, DER: der, DEROffset: h.SigOffset, ZeroPadding: true}}
	return c, nil
}

// Signed reports whether the cabinet stores a signature.
func (c *Cabinet) Signed() bool { return len(c.stored) > 0 }

// Format implements authenticode.Subject.
func (c *Cabinet) Format() string { return Format }

// DigestName names the digest in messages.
func (c *Cabinet) DigestName() string { return "cabinet digest" }

// Signatures returns the cabinet's signature (none when unsigned).
func (c *Cabinet) Signatures() []authenticode.Stored { return c.stored }

// IndirectData is SPC_CAB_DATA_OBJID with an SpcLink naming the file
// "<<<Obsolete>>>", as signtool and osslsigncode write it.
func (c *Cabinet) IndirectData() authenticode.IndirectData { return indirectData }

var indirectData = func() authenticode.IndirectData {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddBytes(authenticode.BMPString("<<<Obsolete>>>"))
		})
	})
	return authenticode.IndirectData{Type: OIDSpcCabData, Value: b.BytesOrPanic()}
}()

// Why hosts do not count a cabinet's signature.
const (
	whyUEFI   = "UEFI firmware reads no cabinets"
	whyNested = "csv cannot establish that Windows reads the signatures nested in a cabinet's signature, so it does not count them"
)

// Judge records which hosts do not count sig: UEFI none, Windows none but
// the primary signature, and only if it names SPC_CAB_DATA_OBJID.
func (c *Cabinet) Judge(sig, parent *signing.Signature, data authenticode.IndirectData) {
	sig.Ignore(signing.HostUEFI, whyUEFI)
	if len(sig.Path) > 0 {
		sig.Ignore(signing.HostWindows, whyNested)
	}
	if !data.Type.Equal(OIDSpcCabData) {
		sig.Ignore(signing.HostWindows, fmt.Sprintf("its SpcIndirectDataContent data type is %s, not SPC_CAB_DATA_OBJID (1.3.6.1.4.1.311.2.1.25)", data.Type))
	}
}

// Verify verifies the cabinet's signatures against digests, its digests by
// algorithm as [Digester] computes them: authenticode.Verify, whose
// documentation lists the checks.
func Verify(c *Cabinet, digests map[crypto.Hash][]byte, opts authenticode.VerifyOptions) ([]*signing.Signature, error) {
	return authenticode.Verify(c, digests, opts)
}

// signedPrefix returns the bytes a signed copy of the cabinet holds before
// its files, made from the cabinet's own (prefix: its bytes before the
// files): the same bytes for a cabinet that has the 20-byte reserve (the
// signature's size zeroed, as Embed writes it later), the header moved
// and the reserve inserted for one without.
func (c *Cabinet) signedPrefix(prefix []byte) ([]byte, error) {
	h := c.Header
	if h.ReserveHeader != nil {
		out := bytes.Clone(prefix)
		binary.LittleEndian.PutUint32(out[sigField:], uint32(h.Size))
		binary.LittleEndian.PutUint32(out[sigField+4:], 0)
		copy(out[headerLen+4:], reserveMagic)
		return out, nil
	}
	if h.Size+grow > 0xffffffff {
		return nil, malformed(8, "a cabinet of %d bytes: with its signature's reserve it would be over 4 GiB", h.Size)
	}
	le := binary.LittleEndian
	out := make([]byte, 0, len(prefix)+grow)
	out = append(out, prefix[:headerLen]...)
	le.PutUint32(out[8:], uint32(h.Size+grow))
	le.PutUint32(out[16:], uint32(h.FilesOffset+grow))
	le.PutUint16(out[30:], h.Flags|0x0004)
	out = le.AppendUint16(out, reserveLen)
	out = append(out, 0, 0)
	out = append(out, reserveMagic...)
	out = le.AppendUint32(out, uint32(h.Size+grow)) // the signature's offset
	out = le.AppendUint32(out, 0)                   // its size, by Embed
	out = append(out, make([]byte, 8)...)
	folders := len(out) + int(h.FoldersOffset-headerLen)
	out = append(out, prefix[headerLen:]...)
	for i := range h.Folders {
		p := out[folders+8*i:]
		le.PutUint32(p, le.Uint32(p)+grow)
	}
	return out, nil
}

// Digester computes a cabinet's digest while the file's bytes are written
// to it in order, from offset 0 to the end. It holds the bytes before the
// files (at most a few hundred KiB: 65,535 folders of 8 bytes) to hash
// them as the signed cabinet holds them, then hashes the rest as it
// flows, up to the signature. A Digester is not safe for concurrent use.
type Digester struct {
	c      *Cabinet
	w      io.Writer
	pos    int64
	prefix []byte
	err    error
	// out, when set, receives the signed copy's bytes (Sign).
	out io.Writer
}

// NewDigester returns a Digester of the cabinet that feeds its digest to
// each of hashes, which should be fresh. It computes nothing (Err says
// why) for a cabinet that is not Digestable.
func (c *Cabinet) NewDigester(hashes ...hash.Hash) *Digester {
	ws := make([]io.Writer, len(hashes))
	for i, h := range hashes {
		ws[i] = h
	}
	d := &Digester{c: c, w: io.MultiWriter(ws...)}
	if !c.Digestable {
		d.err = malformed(36, "no Authenticode digest: %s", c.Why)
	}
	return d
}

// Err returns why the digest is not computed, or nil.
func (d *Digester) Err() error { return d.err }

// Write implements io.Writer.
func (d *Digester) Write(p []byte) (int, error) {
	n := len(p)
	if d.err != nil {
		return n, nil
	}
	h := d.c.Header
	for len(p) > 0 {
		switch {
		case d.pos < h.FilesOffset:
			k := min(int64(len(p)), h.FilesOffset-d.pos)
			d.prefix = append(d.prefix, p[:k]...)
			d.pos += k
			p = p[k:]
			if d.pos == h.FilesOffset {
				if err := d.flushPrefix(); err != nil {
					d.err = err
					return n, nil
				}
			}
		case d.pos < h.Size:
			k := min(int64(len(p)), h.Size-d.pos)
			d.w.Write(p[:k])
			if d.out != nil {
				if _, err := d.out.Write(p[:k]); err != nil {
					d.err = err
					return n, err
				}
			}
			d.pos += k
			p = p[k:]
		default:
			d.pos += int64(len(p))
			return n, nil
		}
	}
	return n, nil
}

// flushPrefix hashes the signed prefix: bytes 0-3, 8-33, 56-59, 60 on.
func (d *Digester) flushPrefix() error {
	sp, err := d.c.signedPrefix(d.prefix)
	if err != nil {
		return err
	}
	if len(sp) < hashed {
		return malformed(0, "the cabinet's header ends before its reserve")
	}
	d.w.Write(sp[0:4])
	d.w.Write(sp[8:34])
	d.w.Write(sp[56:60])
	d.w.Write(sp[60:])
	if d.out != nil {
		if _, err := d.out.Write(sp); err != nil {
			return err
		}
	}
	d.prefix = nil
	return nil
}

// Close reports whether the whole file was written.
func (d *Digester) Close() error {
	if d.err == nil && d.pos != d.c.Size {
		d.err = malformed(d.pos, "the cabinet ends after %d of its %d bytes", d.pos, d.c.Size)
	}
	return d.err
}

// Output is where Sign writes the signed cabinet: sequentially, then the
// signature's size patched in with WriteAt. *os.File satisfies it.
type Output interface {
	io.Writer
	io.WriterAt
}

// Sign reads the cabinet in (size bytes) once, streaming its signed copy
// into out while computing its digest, then writes the signature after it
// and patches its size into the header reserve: authenticode.Signer.Sign
// over the cabinet subject. A cabinet without a reserve gets one (the
// header's offsets moved by 24 bytes), as osslsigncode does; a signed
// cabinet's signature is replaced, or with the signer's Append kept with
// the new one nested in it.
//
// # Security
//
// in is untrusted. A cabinet that [Parse] refuses, or that is not
// Digestable, is refused, never signed. On error out holds a partial file:
// the caller must discard it.
func Sign(ctx context.Context, in io.ReaderAt, size int64, out Output, s *authenticode.Signer) (res *authenticode.SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, signing.Errorf(signing.ErrInternal, "cab: sign: internal error: %v (please report this)", r)
		}
	}()
	c, err := Parse(in, size)
	if err != nil {
		return nil, fmt.Errorf("cab: sign: %w", err)
	}
	if !c.Digestable {
		return nil, fmt.Errorf("cab: sign: %w", malformed(36, "csv does not sign a cabinet with %s", c.Why))
	}
	return s.Sign(ctx, &target{Cabinet: c, in: in, out: out, cache: s.Cache()})
}

type target struct {
	cache *authenticode.CertCache // the signer's, for the check of the new signature
	*Cabinet
	in      io.ReaderAt
	out     Output
	written int64
}

// Stream writes the signed copy up to its signature, feeding its digest
// to h, and the whole input to tee.
func (t *target) Stream(ctx context.Context, h hash.Hash, tee io.Writer) error {
	cw := &countWriter{w: t.out}
	d := t.NewDigester(h)
	d.out = cw
	buf := make([]byte, 256<<10)
	for pos := int64(0); pos < t.Size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), t.Size-pos)]
		n, err := t.in.ReadAt(chunk, pos)
		if n < len(chunk) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the cabinet at offset %#x: %w", pos+int64(n), err)
		}
		if tee != nil {
			if _, err := tee.Write(chunk); err != nil {
				return err
			}
		}
		if _, err := d.Write(chunk); err != nil {
			return fmt.Errorf("writing the output: %w", err)
		}
		if err := d.Err(); err != nil {
			return err
		}
		pos += int64(n)
	}
	if err := d.Close(); err != nil {
		return err
	}
	t.written = cw.n
	return nil
}

// Embed writes the signature after the cabinet, zero-padded to a multiple
// of 8 bytes, and its size into the header reserve (a cabinet stores one
// signature: with Append, primary nests the old one).
func (t *target) Embed(primary []byte, _ bool) (int64, error) {
	sig := append(bytes.Clone(primary), make([]byte, (8-len(primary)%8)%8)...)
	if int64(len(sig)) > limits.MaxCabSignature {
		return 0, fmt.Errorf("a signature of %d bytes, over the %d-byte limit", len(sig), limits.MaxCabSignature)
	}
	check := &Cabinet{Header: t.Header, stored: []authenticode.Stored{{Name: "signature", Offset: t.written, DER: sig, DEROffset: t.written, ZeroPadding: true}}}
	if err := authenticode.CheckStructure(check, t.cache); err != nil {
		return 0, fmt.Errorf("the new signature would be malformed: %w", err)
	}
	if _, err := t.out.Write(sig); err != nil {
		return 0, fmt.Errorf("writing the signature: %w", err)
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(sig)))
	if _, err := t.out.WriteAt(n[:], sigField+4); err != nil {
		return 0, fmt.Errorf("writing the signature's size: %w", err)
	}
	return t.written + int64(len(sig)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
