package ps

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"unicode/utf16"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
)

// Verify verifies the signatures of a script against digests, its digests
// by algorithm as [Digester] computes them: authenticode.Verify, whose
// documentation lists the checks.
func Verify(s *Script, digests map[crypto.Hash][]byte, opts authenticode.VerifyOptions) ([]*signing.Signature, error) {
	return authenticode.Verify(s, digests, opts)
}

// bufSize is the buffer a script streams through when it is signed.
const bufSize = 64 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Sign reads the script in (size bytes, of the given syntax) ONCE,
// streaming its text into out while computing its digest, then writes the
// new signature block after it: authenticode.Signer.Sign over the script
// subject. The block replaces the script's signature block, or with the
// signer's Append keeps its signature and nests the new one in it. It is
// written as PowerShell, signtool and osslsigncode write it: CRLF, the
// begin line, the signature in base64 in lines of 64 characters, the end
// line, each ended by CRLF, in the script's encoding; the text before it
// is copied as it is (its line breaks included).
//
// # Security
//
// in is untrusted. A script that [Parse] refuses, or whose text the
// [Digester] does not accept (a begin line that does not end the file, a
// script without a byte order mark holding non-ASCII text, ...) is
// refused, never signed; so is an empty script. On error out holds a
// partial file: the caller must discard it.
func Sign(ctx context.Context, in io.ReaderAt, size int64, syntax Syntax, out io.Writer, s *authenticode.Signer) (res *authenticode.SignResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, signing.Errorf(signing.ErrInternal, "ps: sign: internal error: %v (please report this)", r)
		}
	}()
	sc, err := Parse(in, size, syntax)
	if err != nil {
		return nil, fmt.Errorf("ps: sign: %w", err)
	}
	if sc.Content == 0 {
		return nil, fmt.Errorf("ps: sign: %w", malformed(0, "the script is empty"))
	}
	return s.Sign(ctx, &target{Script: sc, in: in, out: out, cache: s.Cache()})
}

// target is a script being signed.
type target struct {
	cache *authenticode.CertCache // the signer's, for the check of the new signature
	*Script
	in  io.ReaderAt
	out io.Writer
}

// Stream copies the script's text to out, feeding its digest to h, and
// the whole input to tee.
func (t *target) Stream(ctx context.Context, h hash.Hash, tee io.Writer) error {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	d := t.NewDigester(h)
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
			return fmt.Errorf("reading the script at offset %#x: %w", pos+int64(n), err)
		}
		if tee != nil {
			if _, err := tee.Write(chunk); err != nil {
				return err
			}
		}
		if _, err := d.Write(chunk); err != nil {
			return err
		}
		if text := min(int64(len(chunk)), t.Content-pos); text > 0 {
			if _, err := t.out.Write(chunk[:text]); err != nil {
				return fmt.Errorf("writing the output: %w", err)
			}
		}
		if err := d.Err(); err != nil {
			return err
		}
		pos += int64(len(chunk))
	}
	if err := d.Close(); err != nil {
		return err
	}
	return d.Err()
}

// Embed writes the signature block holding primary (which, when the
// signature is appended, nests the script's own: a script stores one
// signature, so keep has nothing more to keep).
func (t *target) Embed(primary []byte, _ bool) (int64, error) {
	block := EncodeBlock(t.Syntax, t.Encoding, primary)
	if len(block) > limits.MaxScriptSignatureBlock {
		return 0, fmt.Errorf("the new signature block is %d bytes, over the %d-byte limit", len(block), limits.MaxScriptSignatureBlock)
	}
	// Never write a block Verify would refuse (with Append, one that
	// nests more than the caps allow).
	check := &Script{Syntax: t.Syntax, Encoding: t.Encoding,
		stored: []authenticode.Stored{{Name: "signature block", Offset: t.Content, DER: primary}}}
	if err := authenticode.CheckStructure(check, t.cache); err != nil {
		return 0, fmt.Errorf("the new signature block would be malformed: %w", err)
	}
	if _, err := t.out.Write(block); err != nil {
		return 0, fmt.Errorf("writing the signature block: %w", err)
	}
	return t.Content + int64(len(block)), nil
}

// EncodeBlock returns the signature block holding der for a script of the
// given syntax and encoding, as [Sign] writes it.
func EncodeBlock(syntax Syntax, enc Encoding, der []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	b.WriteString("\r\n" + syntax.beginLine() + "\r\n")
	for len(b64) > 0 {
		n := min(64, len(b64))
		b.WriteString(syntax.open() + b64[:n] + syntax.close() + "\r\n")
		b64 = b64[n:]
	}
	b.WriteString(syntax.endLine() + "\r\n")
	text := b.String()
	if enc != UTF16LE {
		return []byte(text)
	}
	units := utf16.Encode([]rune(text))
	out := make([]byte, 2*len(units))
	for i, u := range units {
		out[2*i], out[2*i+1] = byte(u), byte(u>>8)
	}
	return out
}
