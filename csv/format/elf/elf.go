// Package elf is csv's handler of ELF files (Linux and most Unixes:
// programs, libraries, kernel modules): recognised by their magic number,
// signed and verified with the kernel's appended module signature (a
// PKCS#7 trailer, as scripts/sign-file writes it).
//
// # Security
//
// The header and the signature trailer are untrusted: internal/binfmt/elf
// parses the header with bounds checks, signing/modsig the trailer. A
// trailer that claims a signature and is malformed makes the file
// malformed, whether or not the policy reads signatures: a signed file is
// never reported as unsigned.
package elf

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/binfmt"
	binelf "github.com/codesignval/csv/internal/binfmt/elf"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/modsig"
)

// Handler handles ELF files.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatELF }

// Sniff implements format.Handler: the file starts with "\x7fELF" (a file
// that does and cannot be parsed is a malformed ELF file, not skipped).
func (Handler) Sniff(f *format.File) bool { return binfmt.Sniff(f.Head) == binfmt.ELF }

// Info is what inspection learns of an ELF file's header.
type Info struct {
	Class   int    `json:"class"` // 32 or 64
	Machine uint16 `json:"machine"`
	Type    uint16 `json:"type"`
	// SignedLength is the number of bytes an appended signature covers (0
	// when the file has none).
	SignedLength int64 `json:"signed_length,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	return fmt.Sprintf("ELF%d (machine %d, type %d)", i.Class, i.Machine, i.Type)
}

// WriteText implements format.Info: the appended signature, if any.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.SignedLength > 0 {
		row("appended signature", fmt.Sprintf("covers the first %d bytes", i.SignedLength))
	}
}

// Inspect implements format.Handler. It checks the header, finds an
// appended signature, and adds the digest of the signed prefix to the read
// when signatures are needed.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	finish, err := inspect(f, need, opts, p, facts)
	return finish, malformed(err)
}

func inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	ef, err := binelf.Parse(f.R, f.Size)
	if err != nil {
		return nil, err
	}
	class := 32
	if ef.Is64() {
		class = 64
	}
	info := &Info{Class: class, Machine: ef.Machine, Type: ef.Type}
	facts.Info = info
	// Always look for a signature: a signed file must not be reported as
	// unsigned because the policy has no signer rules.
	app, err := modsig.Find(f.R, f.Size)
	if err != nil {
		return nil, err
	}
	if app != nil {
		info.SignedLength = app.SignedLen
		facts.Signed = app.SignedLen > 0
	}
	if !need.Signatures {
		return nil, nil
	}
	if app == nil {
		facts.Signatures = []*signing.Signature{}
		return nil, nil
	}
	h := app.DigestAlgorithm.New()
	p.Write(&PrefixWriter{W: h, N: app.SignedLen})
	return func() error {
		facts.Signatures = []*signing.Signature{app.VerifyCached(h.Sum(nil), opts.Certificates, opts.Cache)}
		return nil
	}, nil
}

// streamHashes are the digests of a streamed file's signed prefix computed
// before its appended signature is read: the kernel's module signing
// defaults (sign-file and the distributions' configurations use SHA-256
// or SHA-512).
var streamHashes = []crypto.Hash{crypto.SHA256, crypto.SHA512}

// InspectStream implements format.Streamer: the header is read from the
// file's first bytes; the program and section header tables and the last
// modsig.MaxTail bytes (where an appended signature lies) are kept as the
// file passes and checked after it. With signatures needed, the prefix
// before the kept tail is hashed with each of streamHashes as it passes,
// and the rest of the signed prefix from the tail once the signature says
// where it ends.
func (Handler) InspectStream(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	finish, err := inspectStream(f, need, opts, p, facts)
	if finish != nil {
		// What it reads after the file is what it reads before it held.
		then := finish
		finish = func() error { return malformed(then()) }
	}
	return finish, malformed(err)
}

func inspectStream(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	ef, err := binelf.ParseHeader(f.R, f.Size)
	if err != nil {
		return nil, err
	}
	class := 32
	if ef.Is64() {
		class = 64
	}
	info := &Info{Class: class, Machine: ef.Machine, Type: ef.Type}
	facts.Info = info
	phOff, phSize, shOff, shSize := ef.Tables()
	tail := min(f.Size, int64(modsig.MaxTail))
	for _, r := range [][2]int64{{phOff, phSize}, {shOff, shSize}, {f.Size - tail, tail}} {
		if err := f.Keep(r[0], r[1]); err != nil {
			return nil, err
		}
	}
	prefix := f.Size - tail
	var hashes map[crypto.Hash]hash.Hash
	if need.Signatures {
		hashes = map[crypto.Hash]hash.Hash{}
		for _, h := range streamHashes {
			hashes[h] = h.New()
			p.Write(&PrefixWriter{W: hashes[h], N: prefix})
		}
	}
	return func() error {
		if _, err := binelf.Parse(f.R, f.Size); err != nil {
			return err
		}
		app, err := modsig.Find(f.R, f.Size)
		if err != nil {
			return err
		}
		if app != nil {
			info.SignedLength = app.SignedLen
			facts.Signed = app.SignedLen > 0
		}
		if !need.Signatures {
			return nil
		}
		if app == nil {
			facts.Signatures = []*signing.Signature{}
			return nil
		}
		h := hashes[app.DigestAlgorithm]
		if h == nil {
			facts.Signatures = []*signing.Signature{{Format: modsig.SignatureFormat, DigestAlgorithm: app.DigestAlgorithm,
				Problem: signing.Errorf(signing.ErrSignature, "the signature is over a %v digest, and csv reads this large member of a container once, as it streams by, computing %v and %v digests only: it cannot verify the signature", app.DigestAlgorithm, streamHashes[0], streamHashes[1])}}
			return nil
		}
		rest := make([]byte, app.SignedLen-prefix)
		if _, err := f.R.ReadAt(rest, prefix); err != nil {
			return err
		}
		h.Write(rest)
		facts.Signatures = []*signing.Signature{app.VerifyCached(h.Sum(nil), opts.Certificates, opts.Cache)}
		return nil
	}, nil
}

// malformed turns what the parsers found into a *format.MalformedError.
func malformed(err error) error {
	if err == nil {
		return nil
	}
	// The appended signature's reasons (modsig.Format) are prefixed with
	// its name.
	return format.Malformed(cipolicy.FormatELF, err)
}

// PrefixWriter passes on the first N bytes written to it.
type PrefixWriter struct {
	W io.Writer
	N int64
}

func (p *PrefixWriter) Write(b []byte) (int, error) {
	if p.N > 0 {
		k := int(min(int64(len(b)), p.N))
		p.W.Write(b[:k])
		p.N -= int64(k)
	}
	return len(b), nil
}

// Sign implements format.Handler: it copies the file to out while hashing
// what the signature covers (a signature it already carries is replaced:
// an ELF file carries one, so opts.Append is refused), then appends the
// signature. With opts.Expect, the whole file read must have the SHA256
// validation saw. The output's SHA-256 is always returned.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	if _, err := binelf.Parse(f.R, f.Size); err != nil {
		return nil, err
	}
	app, err := modsig.Find(f.R, f.Size)
	if err != nil {
		return nil, fmt.Errorf("its appended signature: %w", err)
	}
	content := f.Size
	if app != nil {
		if opts.Append {
			return nil, signing.Errorf(format.ErrOneSignature, "an ELF file carries one appended signature: it cannot take a second (sign without --append to replace it)")
		}
		content = app.SignedLen // replace the old signature
	}
	want := opts.Expect.Get(cipolicy.SHA256)
	h := crypto.SHA256
	digest := h.New()
	// Copy [0, content) to out, hashing it for the signature; the rest (an
	// old signature) is dropped. With an expectation, the whole input is
	// hashed too, old signature included.
	writers := []io.Writer{io.MultiWriter(&PrefixWriter{W: digest, N: content}, &PrefixWriter{W: out, N: content})}
	var whole hash.Hash
	if want != nil {
		whole = sha256.New()
		writers = append(writers, whole)
	}
	if err := f.Stream(ctx, writers...); err != nil {
		return nil, err
	}
	if whole != nil {
		if got := whole.Sum(nil); !bytes.Equal(want, got) {
			return nil, signing.Errorf(format.ErrChanged, "the file changed after it was validated: SHA256 %x when validated, %x now", want, got)
		}
	}
	// The output's digest continues from the content's: the signature is
	// a suffix.
	flat, err := digest.(hash.Cloner).Clone()
	if err != nil {
		return nil, err
	}
	sum := digest.Sum(nil)
	trailer, err := modsig.Sign(sum, opts.Chain[0], opts.Key, modsig.SignOptions{Hash: h})
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(trailer); err != nil {
		return nil, err
	}
	flat.Write(trailer)
	return &format.Signed{SHA256: flat.Sum(nil)}, nil
}
