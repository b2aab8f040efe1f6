package appx

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// SignatureOverride is the [Content_Types].xml entry of the signature
// part, as signtool and osslsigncode write it.
const SignatureOverride = `<Override PartName="/AppxSignature.p7x" ContentType="application/vnd.ms-appx.signature"/>`

// Errors of signing.
var (
	// ErrAppend: csv does not nest a signature in a package's (Windows
	// reads the primary one only).
	ErrAppend = errors.New("appx: sign: packages carry one signature: a signature cannot be appended")
	// ErrSignHash: the signer's hash is not the block map's HashMethod.
	ErrSignHash = errors.New("appx: sign: the signer's hash is not the block map's HashMethod")
	// ErrPublisher: the signing certificate's subject is not the
	// manifest's Identity Publisher, so Windows would not install the
	// package.
	ErrPublisher = errors.New("appx: sign: the signing certificate's subject is not the manifest's Identity Publisher")
)

// SignOptions configure Sign.
type SignOptions struct {
	// Append is refused (ErrAppend).
	Append bool
	// UnsafeIgnorePublisher signs a package whose manifest's Publisher
	// is not the certificate's subject (Windows will not install it).
	UnsafeIgnorePublisher bool
}

// Sign reads the package in (size bytes) and writes it, signed, to out,
// as signtool and osslsigncode do: every member's record as it is, but
// [Content_Types].xml, which gains SignatureOverride (recompressed; its
// record rewritten), and the old AppxSignature.p7x, which is dropped;
// then the new AppxSignature.p7x ("PKCX" and the signature, deflated),
// the central directory with the new offsets, and the end records. The
// signature is over the APPX blob of the written package (see the package
// documentation), with the signer's hash, which must be the block map's
// HashMethod (ErrSignHash). Before anything is signed the block map is
// checked against every member (CheckBlockMap) and the manifest's
// Publisher against the signing certificate (ErrPublisher).
//
// # Security
//
// in is untrusted: a package Parse or CheckBlockMap refuses is not
// signed. On error out holds a partial file: the caller must discard it.
func Sign(ctx context.Context, in io.ReaderAt, size int64, out io.Writer, s *authenticode.Signer, chainLeaf []byte, opts SignOptions) (res *authenticode.SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, signing.Errorf(signing.ErrInternal, "appx: sign: internal error: %v (please report this)", r)
		}
	}()
	if opts.Append {
		return nil, ErrAppend
	}
	p, err := Parse(in, size)
	if err != nil {
		return nil, fmt.Errorf("appx: sign: %w", err)
	}
	if p.BlockMap == nil {
		return nil, fmt.Errorf("appx: sign: %w", malformed(-1, "the package has no %s", BlockMapName))
	}
	if s.Hash() != p.BlockMap.HashMethod {
		return nil, fmt.Errorf("%w: %v, the block map's is %v", ErrSignHash, s.Hash(), p.BlockMap.HashMethod)
	}
	if !opts.UnsafeIgnorePublisher && !PublisherMatches(p.Publisher, chainLeaf) {
		return nil, fmt.Errorf("%w: the manifest names %q", ErrPublisher, p.Publisher)
	}
	if err := p.CheckBlockMap(); err != nil {
		return nil, fmt.Errorf("appx: sign: %w", err)
	}
	ctEntry := p.Entry(ContentTypesName)
	if ctEntry == nil {
		return nil, fmt.Errorf("appx: sign: %w", malformed(-1, "the package has no %s", ContentTypesName))
	}
	ct, err := readAll(in, ctEntry, limits.MaxAPPXPart)
	if err != nil {
		return nil, fmt.Errorf("appx: sign: %w", err)
	}
	if !bytes.Contains(ct, []byte(SignatureOverride)) {
		i := bytes.Index(ct, []byte("</Types>"))
		if i < 0 {
			return nil, fmt.Errorf("appx: sign: %w", malformed(ctEntry.Local, "%s has no </Types>", ContentTypesName))
		}
		ct = append(append(append([]byte{}, ct[:i]...), SignatureOverride...), ct[i:]...)
	}
	h := s.Hash()
	w := &countWriter{w: out}
	pc := h.New()
	rec := io.MultiWriter(w, pc)
	var central bytes.Buffer
	n := 0
	for i := range p.Entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := &p.Entries[i]
		if e.Name == SignatureName {
			continue
		}
		at := w.n
		crc, csize, usize := e.CRC, e.CompressedSize, e.Size
		if e == ctEntry {
			if csize, err = p.writeRecord(rec, e, ct); err != nil {
				return nil, fmt.Errorf("appx: sign: %w", err)
			}
			crc, usize = crc32.ChecksumIEEE(ct), int64(len(ct))
		} else if _, err := io.Copy(rec, io.NewSectionReader(in, e.Local, e.End-e.Local)); err != nil {
			return nil, fmt.Errorf("appx: sign: reading the package: %w", err)
		}
		cd := make([]byte, e.centralLen)
		if _, err := in.ReadAt(cd, e.central); err != nil {
			return nil, fmt.Errorf("appx: sign: reading the package: %w", err)
		}
		if err := patchCentral(cd, uint64(at), crc, uint64(csize), uint64(usize)); err != nil {
			return nil, fmt.Errorf("appx: sign: member %q: %w", e.Name, err)
		}
		central.Write(cd)
		n++
	}
	recEnd := w.n
	blob := []byte("APPX")
	blob = append(append(blob, "AXPC"...), pc.Sum(nil)...)
	cdh := h.New()
	cdh.Write(central.Bytes())
	cdh.Write(p.zip.endRecords(uint64(n), uint64(central.Len()), uint64(recEnd)))
	blob = append(append(blob, "AXCD"...), cdh.Sum(nil)...)
	part := func(tag string, b []byte) {
		x := h.New()
		x.Write(b)
		blob = append(append(blob, tag...), x.Sum(nil)...)
	}
	part("AXCT", ct)
	bm, err := readAll(in, p.Entry(BlockMapName), limits.MaxAPPXBlockMap)
	if err != nil {
		return nil, fmt.Errorf("appx: sign: %w", err)
	}
	part("AXBM", bm)
	if e := p.Entry(CodeIntegrityName); e != nil {
		x := h.New()
		if e.Size > limits.MaxAPPXCodeIntegrity {
			return nil, limitErr(e.Local, "%s of %d bytes (the cap is %d)", CodeIntegrityName, e.Size, limits.MaxAPPXCodeIntegrity)
		}
		if _, err := io.Copy(x, open(in, e)); err != nil {
			return nil, fmt.Errorf("appx: sign: %w", err)
		}
		blob = append(append(blob, "AXCI"...), x.Sum(nil)...)
	}
	der, err := s.SignDigestBlob(ctx, blob, p.IndirectData())
	if err != nil {
		return nil, err
	}
	check := &Package{stored: []authenticode.Stored{{Name: SignatureName, DER: der}}}
	if err := authenticode.CheckStructure(check, s.Cache()); err != nil {
		return nil, fmt.Errorf("appx: sign: the new signature would be malformed: %w", err)
	}
	// The signature's record, as osslsigncode writes it: deflated, no
	// data descriptor, no extra field; its time is [Content_Types].xml's.
	sig := append([]byte(magic), der...)
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.DefaultCompression)
	fw.Write(sig)
	fw.Close()
	var ct16 [4]byte
	ctHead := make([]byte, localLen)
	if _, err := in.ReadAt(ctHead, ctEntry.Local); err != nil {
		return nil, fmt.Errorf("appx: sign: reading the package: %w", err)
	}
	copy(ct16[:], ctHead[10:14])
	le := binary.LittleEndian
	sigAt := w.n
	lh := make([]byte, localLen, localLen+len(SignatureName))
	le.PutUint32(lh, sigLocal)
	le.PutUint16(lh[4:], 20)
	le.PutUint16(lh[8:], methodFlate)
	copy(lh[10:14], ct16[:])
	le.PutUint32(lh[14:], crc32.ChecksumIEEE(sig))
	le.PutUint32(lh[18:], uint32(comp.Len()))
	le.PutUint32(lh[22:], uint32(len(sig)))
	le.PutUint16(lh[26:], uint16(len(SignatureName)))
	lh = append(lh, SignatureName...)
	w.Write(lh)
	w.Write(comp.Bytes())
	ch := make([]byte, centralLen, centralLen+len(SignatureName))
	le.PutUint32(ch, sigCentral)
	le.PutUint16(ch[4:], 45)
	le.PutUint16(ch[6:], 20)
	le.PutUint16(ch[10:], methodFlate)
	copy(ch[12:16], ct16[:])
	copy(ch[16:28], lh[14:26])
	le.PutUint16(ch[28:], uint16(len(SignatureName)))
	if sigAt >= 0xffffffff {
		return nil, errors.New("appx: sign: the signature would lie past 4 GiB: csv does not sign packages so large")
	}
	le.PutUint32(ch[42:], uint32(sigAt))
	central.Write(append(ch, SignatureName...))
	cdAt := w.n
	w.Write(central.Bytes())
	if !p.zip.zip64 && (cdAt >= 0xffffffff || n+1 >= 0xffff) {
		return nil, errors.New("appx: sign: the signed package would need zip64 end records, which the package has not")
	}
	w.Write(p.zip.endRecords(uint64(n+1), uint64(central.Len()), uint64(cdAt)))
	if w.err != nil {
		return nil, fmt.Errorf("appx: sign: writing the package: %w", w.err)
	}
	return &authenticode.SignResult{Digest: blob, Size: w.n}, nil
}

// writeRecord writes e's local record anew with content b (compressed as
// e is), keeping its header's fields but CRC and sizes; it returns the
// compressed size.
func (p *Package) writeRecord(w io.Writer, e *Entry, b []byte) (int64, error) {
	head := make([]byte, e.LfhSize)
	if _, err := p.r.ReadAt(head, e.Local); err != nil {
		return 0, err
	}
	data := b
	if e.Method == methodFlate {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
		fw.Write(b)
		fw.Close()
		data = buf.Bytes()
	}
	le := binary.LittleEndian
	crc := crc32.ChecksumIEEE(b)
	if e.Flags&flagDD == 0 {
		if le.Uint32(head[18:]) == 0xffffffff || le.Uint32(head[22:]) == 0xffffffff {
			return 0, fmt.Errorf("member %q has zip64 sizes in its local header: csv does not rewrite it", e.Name)
		}
		le.PutUint32(head[14:], crc)
		le.PutUint32(head[18:], uint32(len(data)))
		le.PutUint32(head[22:], uint32(len(b)))
	}
	w.Write(head)
	w.Write(data)
	if e.Flags&flagDD != 0 {
		d := make([]byte, 16, 24)
		le.PutUint32(d, sigDescriptor)
		le.PutUint32(d[4:], crc)
		if p.zip.zip64 {
			d = d[:24]
			le.PutUint64(d[8:], uint64(len(data)))
			le.PutUint64(d[16:], uint64(len(b)))
		} else {
			le.PutUint32(d[8:], uint32(len(data)))
			le.PutUint32(d[12:], uint32(len(b)))
		}
		w.Write(d)
	}
	return int64(len(data)), nil
}

// patchCentral sets a central directory record's local header offset,
// CRC and sizes, in its 32-bit fields or its zip64 field (readCentral
// allows no other extra field).
func patchCentral(cd []byte, offset uint64, crc uint32, csize, usize uint64) error {
	le := binary.LittleEndian
	le.PutUint32(cd[16:], crc)
	nl, xl := int(le.Uint16(cd[28:])), int(le.Uint16(cd[30:]))
	x := cd[centralLen+nl : centralLen+nl+xl]
	pos := 4
	set := func(field int, v uint64) error {
		if le.Uint32(cd[field:]) == 0xffffffff {
			le.PutUint64(x[pos:], v)
			pos += 8
			return nil
		}
		if v >= 0xffffffff {
			return errors.New("a size or offset past 4 GiB in a record without a zip64 field")
		}
		le.PutUint32(cd[field:], uint32(v))
		return nil
	}
	// The zip64 field's order: uncompressed size, compressed size, offset.
	if err := set(24, usize); err != nil {
		return err
	}
	if err := set(20, csize); err != nil {
		return err
	}
	return set(42, offset)
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	k, err := c.w.Write(b)
	c.n += int64(k)
	c.err = err
	return k, err
}
