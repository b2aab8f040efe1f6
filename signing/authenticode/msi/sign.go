package msi

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// SignOptions configure Sign.
type SignOptions struct {
	// Extended adds \x05MsiDigitalSignatureEx (the metadata's pre-hash)
	// and signs the digest that includes it, as osslsigncode
	// -add-msi-dse does. When the signature is appended
	// (authenticode.SignOptions.Append) to a package signed with one, it
	// must be set, and the signer's hash must be the one the stream's
	// size says: the signature nested in covers it.
	Extended bool
}

// Sign reads the package in (size bytes) and writes it, signed, to out:
// authenticode.Signer.Sign over the package subject. The output is a new
// compound file (cfb.Write, with the input's sector size) holding every
// storage and stream of the input with its metadata (names, CLSIDs, state
// bits, times) and content byte for byte, the root's signature streams
// replaced by the new \x05DigitalSignature (and \x05MsiDigitalSignatureEx
// with opts.Extended). The input's sectors are laid out anew, as signtool
// and osslsigncode do: neither digest covers the layout.
//
// # Security
//
// in is untrusted: a package Parse refuses is not signed. On error out
// holds a partial file: the caller must discard it.
func Sign(ctx context.Context, in io.ReaderAt, size int64, out io.Writer, s *authenticode.Signer, opts SignOptions) (res *authenticode.SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, signing.Errorf(signing.ErrInternal, "msi: sign: internal error: %v (please report this)", r)
		}
	}()
	p, err := Parse(in, size)
	if err != nil {
		return nil, fmt.Errorf("msi: sign: %w", err)
	}
	if err := p.CheckEx(); err != nil {
		return nil, fmt.Errorf("msi: sign: %w", err)
	}
	t := &target{Package: p, in: in, out: out, ext: opts.Extended, hash: s.Hash(), cache: s.Cache()}
	return s.Sign(ctx, t)
}

// ErrExtendedAppend: a signature appended to a package signed with
// \x05MsiDigitalSignatureEx must keep it, with the same hash; one
// appended to a package signed without it cannot add it.
var ErrExtendedAppend = errors.New("msi: sign: a signature nested in one with \\x05MsiDigitalSignatureEx must be made with the extended signature and the same hash")

// target is a package being signed.
type target struct {
	cache *authenticode.CertCache // the signer's, for the check of the new signature
	*Package
	in   io.ReaderAt
	out  io.Writer
	ext  bool
	hash crypto.Hash
	pre  []byte // the pre-hash (Extended)
}

// Stream feeds the package's digest to h (the pre-hash first, with
// Extended) and the whole input to tee.
func (t *target) Stream(ctx context.Context, h hash.Hash, tee io.Writer) error {
	if tee != nil {
		if _, err := io.Copy(tee, io.NewSectionReader(t.in, 0, t.Size)); err != nil {
			return fmt.Errorf("reading the package: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.ext {
		t.pre = t.PreHash(t.hash)
		h.Write(t.pre)
	}
	return t.hashDir(0, h, make([]byte, 64<<10))
}

// Embed writes the package with the signature streams.
func (t *target) Embed(primary []byte, keep bool) (int64, error) {
	if keep && t.Ex != nil && (!t.ext || !bytes.Equal(t.Ex, t.pre)) {
		return 0, ErrExtendedAppend
	}
	if keep && t.Ex == nil && t.ext {
		// The signature nested in covers the digest without a pre-hash.
		return 0, fmt.Errorf("%w: the package's signature has no \\x05MsiDigitalSignatureEx, and adding one would break it", ErrExtendedAppend)
	}
	check := &Package{stored: []authenticode.Stored{{Name: "\\x05DigitalSignature stream", DER: primary}}}
	if err := authenticode.CheckStructure(check, t.cache); err != nil {
		return 0, fmt.Errorf("the new signature would be malformed: %w", err)
	}
	root := t.CFB.Tree()
	kids := root.Children[:0]
	for _, c := range root.Children {
		if c.Name != SignatureStream && c.Name != SignatureExStream {
			kids = append(kids, c)
		}
	}
	stream := func(name string, b []byte) *cfb.Node {
		return &cfb.Node{Name: name, Type: cfb.TypeStream, Size: int64(len(b)),
			Open: func() (io.Reader, error) { return bytes.NewReader(b), nil }}
	}
	kids = append(kids, stream(SignatureStream, primary))
	if t.ext {
		kids = append(kids, stream(SignatureExStream, t.pre))
	}
	root.Children = kids
	n, err := cfb.Write(t.out, root, t.CFB.SectorSize)
	if err != nil {
		return 0, fmt.Errorf("writing the package: %w", err)
	}
	return n, nil
}
