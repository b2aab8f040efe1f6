// Package wsh is csv's handler of Windows Script Host scripts (.js .jse
// .vbs .vbe .wsf; .jse and .vbe are the encoded forms wscript runs as
// well): files WDAC's script enforcement governs, which their own subject
// interface package signs with a signature block in comments ("// SIG //
// Begin signature block" in JScript, the same after VBScript's comment
// marks, a <signature> element in WSF). csv does not verify those signatures: no peer tool
// on its test machines proves their format (osslsigncode 2.9 refuses to
// sign them), and a verifier no oracle checks would be a guess. So a
// script is judged by what csv can establish: its flat SHA256, which a
// hash rule (sha256) may allow; otherwise it is blocked, and a signature
// it carries is reported as one csv does not verify. Scripts have no magic
// number: they are recognised by their file name's extension,
// case-insensitively, and by nothing else.
//
// # Security
//
// The script is untrusted: csv reads a bounded tail of it to tell whether
// it carries a signature block, and hashes it whole; nothing else is
// parsed.
package wsh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/ps"
)

// Extensions are the file name extensions of the scripts the handler
// recognises, in lower case.
var Extensions = []string{".js", ".jse", ".vbs", ".vbe", ".wsf"}

// ErrNotVerified is the Problem of a Windows Script Host signature: csv
// does not verify them.
var ErrNotVerified = errors.New("csv does not verify Windows Script Host signatures (no peer tool proves their format): only a sha256 hash rule can allow this script")

// tailSize is how much of the end of a script is searched for a signature
// block's begin line: a signature with its chain is some 15 KB of block
// (30 KB in UTF-16).
const tailSize = 64 << 10

// Handler handles Windows Script Host scripts.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatWSH }

func extension(name string) string { return ps.Ext(name) }

// Sniff implements format.Handler: by the file's name only.
func (Handler) Sniff(f *format.File) bool {
	ext := extension(f.Name)
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// Info is what inspection learns of a script.
type Info struct {
	Extension string `json:"extension"`
	// SignatureBlock says whether the script ends with what looks like a
	// signature block (csv does not verify it).
	SignatureBlock bool `json:"signature_block"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	return fmt.Sprintf("Windows Script Host script (%s; csv does not verify its signatures)", i.Extension)
}

// WriteText implements format.Info.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.SignatureBlock {
		row("signature block", "present, not verified: csv does not verify Windows Script Host signatures")
	} else {
		row("signature block", "none")
	}
}

func utf16le(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for _, c := range []byte(s) {
		out = append(out, c, 0)
	}
	return out
}

// hasBlock reports whether tail holds a signature block's begin line
// ("SIG // Begin signature block" and its kin), in ASCII or UTF-16LE.
func hasBlock(tail []byte) bool {
	for _, enc := range []func(string) []byte{func(s string) []byte { return []byte(s) }, utf16le} {
		if bytes.Contains(tail, enc("Begin signature block")) && bytes.Contains(tail, enc("SIG")) {
			return true
		}
	}
	return false
}

// Inspect implements format.Handler: it reads the end of the script to
// tell whether it carries a signature block; the pipeline hashes it.
func (Handler) Inspect(f *format.File, _ cipolicy.Needs, _ *format.InspectOptions, _ *format.Pass, facts *format.Facts) (func() error, error) {
	n := min(f.Size, tailSize)
	tail := make([]byte, n)
	if got, err := f.R.ReadAt(tail, f.Size-n); int64(got) < n {
		return nil, format.FileChanged(err)
	}
	info := &Info{Extension: extension(f.Name), SignatureBlock: hasBlock(tail)}
	facts.Info = info
	if info.SignatureBlock {
		facts.Signed = true
		facts.Signatures = []*signing.Signature{{Format: authenticode.Format, Path: []int{}, Problem: ErrNotVerified}}
	}
	return nil, nil
}

// WarningNotSigned is the warning of csv sign for a Windows Script Host
// script, which it copies unchanged.
const WarningNotSigned = "csv does not sign Windows Script Host scripts (.js .jse .vbs .vbe .wsf; no peer tool proves their format): copied unchanged"

// Sign implements format.Handler: it copies the script unchanged (a hash
// rule that allows it still does), with a warning. With opts.Expect, the
// bytes read must have the SHA256 validation saw.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	h := sha256.New()
	if err := f.Stream(ctx, out, h); err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	if opts.Expect != nil {
		if want := opts.Expect.Get(cipolicy.SHA256); !bytes.Equal(want, sum) {
			return nil, fmt.Errorf("%w: SHA256 %x when validated, %x now", format.ErrChanged, want, sum)
		}
	}
	return &format.Signed{SHA256: sum, Warnings: []string{WarningNotSigned}}, nil
}
