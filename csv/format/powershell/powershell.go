// Package powershell is csv's handler of PowerShell scripts (.ps1 .psm1
// .psd1 .ps1xml .psc1 .cdxml): files that PowerShell's subject interface
// package signs with an Authenticode signature block at their end, and
// that WDAC judges, when script enforcement is on, by signer or by their
// SIP hash. Scripts have no magic number: they are recognised by their
// file name's extension, case-insensitively, and by nothing else.
//
// The digest hash rules compare (authenticode_sha256, authenticode_sha1)
// is the script's SIP hash, as signing/authenticode/ps computes it: the
// text before the signature block, as UTF-16LE; sha256 is the flat hash of
// the file, block included.
//
// # Security
//
// The script is untrusted. signing/authenticode/ps reads its signature
// block from the end of the file with bounds checks and a cap
// (limits.MaxScriptSignatureBlock), and its text as it streams; a block
// that is malformed, truncated or followed by anything but a line break, a
// begin line anywhere else, and text whose bytes Windows may read
// otherwise (non-ASCII without a byte order mark, invalid UTF-8, UTF-16BE,
// UTF-32LE)
// make the script malformed, whether or not the policy reads signatures.
// A malformed script's SIP hash is not reported: it is no hash Windows
// computes.
package powershell

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
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/ps"
)

// Handler handles PowerShell scripts.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatPowerShell }

// Sniff implements format.Handler: by the file's name only (scripts have
// no magic number).
func (Handler) Sniff(f *format.File) bool {
	_, ok := ps.SyntaxOf(f.Name)
	return ok
}

// Info is what inspection learns of a script's layout.
type Info struct {
	// Extension is the file name's extension, in lower case (".ps1").
	Extension string `json:"extension"`
	// Encoding is the text's encoding.
	Encoding string `json:"encoding"`
	// Text is the size of the text the SIP hash covers: the offset of the
	// signature block, or the file's size when it has none.
	Text int64 `json:"text_size"`
	// BlockOffset and BlockSize are where the signature block lies;
	// BlockLines is its number of base64 lines, LineBreak its line break.
	BlockOffset int64  `json:"signature_block_offset,omitempty"`
	BlockSize   int64  `json:"signature_block_size,omitempty"`
	BlockLines  int    `json:"signature_block_lines,omitempty"`
	LineBreak   string `json:"line_break,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	return fmt.Sprintf("PowerShell script (%s, %s)", i.Extension, i.Encoding)
}

// WriteText implements format.Info: the signature block.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.BlockSize == 0 {
		row("signature block", "none (unsigned)")
		return
	}
	row("signature block", fmt.Sprintf("offset %#x, %d bytes, %d base64 lines, %s line breaks", i.BlockOffset, i.BlockSize, i.BlockLines, i.LineBreak))
}

// sipHashes maps the SIP hash's algorithms to policy digest names.
var sipHashes = map[crypto.Hash]cipolicy.HashAlgorithm{
	crypto.SHA256: cipolicy.AuthenticodeSHA256,
	crypto.SHA1:   cipolicy.AuthenticodeSHA1,
}

func info(name string, s *ps.Script) *Info {
	in := &Info{Extension: ps.Ext(name), Encoding: s.Encoding.String(), Text: s.Content}
	if s.Signed() {
		in.BlockOffset, in.BlockSize, in.BlockLines = s.Content, s.Size-s.Content, s.Lines
		in.LineBreak = "CRLF"
		if s.LineBreak == "\n" {
			in.LineBreak = "LF"
		}
	}
	return in
}

// Inspect implements format.Handler. It reads the signature block from
// the end of the file and adds to the read the Digester, which computes
// the SIP hashes the policy and the signature need and checks the text.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	syntax, ok := ps.SyntaxOf(f.Name)
	if !ok {
		return nil, fmt.Errorf("powershell: %q is not named as a PowerShell script", f.Name)
	}
	sc, err := ps.Parse(f.R, f.Size, syntax)
	if err != nil {
		return nil, malformed(err)
	}
	facts.Info = info(f.Name, sc)
	facts.Signed = sc.Signed()
	hashes := map[crypto.Hash]hash.Hash{}
	for h, a := range sipHashes {
		if need.Digests.Has(a) {
			hashes[h] = h.New()
		}
	}
	if sc.Signed() {
		if !need.Signatures {
			// Whatever the policy matches, a block that holds anything but
			// an Authenticode signature makes the script malformed.
			if err := authenticode.CheckStructure(sc, opts.Cache); err != nil {
				return nil, malformed(err)
			}
		} else {
			for _, h := range authenticode.DigestAlgorithms(sc) {
				if hashes[h] == nil && h.Available() {
					hashes[h] = h.New()
				}
			}
		}
	}
	list := make([]hash.Hash, 0, len(hashes))
	for _, h := range hashes {
		list = append(list, h)
	}
	// The Digester always reads the text, to check it.
	dg := sc.NewDigester(list...)
	sums := format.AddSIP(p, dg, hashes, sipHashes)
	return func() error {
		if err := dg.Err(); err != nil {
			return malformed(err)
		}
		if !need.Signatures || !sc.Signed() {
			return nil
		}
		sigs, err := ps.Verify(sc, sums(), authenticode.VerifyOptions{Certificates: opts.Certificates, Cache: opts.Cache})
		if err != nil {
			return malformed(err)
		}
		if sigs == nil {
			sigs = []*signing.Signature{}
		}
		facts.Signatures = sigs
		return nil
	}, nil
}

// malformed turns what the subject found into a *format.MalformedError.
func malformed(err error) error {
	return format.MalformedAs(cipolicy.FormatPowerShell, err, ps.Format)
}

// Sign implements format.Handler: a signature block at the end of the
// script (replacing its block, or nesting in its signature with
// opts.Append), written as PowerShell writes it. With opts.Expect, the SIP
// hash read must be the Authenticode SHA256 validation saw, and with
// Append (which keeps the signature that was judged) the whole file its
// SHA256 too.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	syntax, ok := ps.SyntaxOf(f.Name)
	if !ok {
		return nil, fmt.Errorf("powershell: %q is not named as a PowerShell script", f.Name)
	}
	ao := opts.Authenticode
	ao.Append = opts.Append
	// With an expectation, the bytes read are checked as they are read,
	// whatever hash the signature is made with: their SHA256 SIP hash, and
	// with Append (which keeps the signature that was judged) their SHA256.
	var whole, sip hash.Hash
	var dg *ps.Digester
	if opts.Expect != nil {
		sc, err := ps.Parse(f.R, f.Size, syntax)
		if err != nil {
			return nil, malformed(err)
		}
		sip = sha256.New()
		dg = sc.NewDigester(sip)
		tees := []io.Writer{dg}
		if ao.Append {
			whole = sha256.New()
			tees = append(tees, whole)
		}
		ao.Tee = io.MultiWriter(tees...)
	}
	signer, err := authenticode.NewSigner(opts.Key, opts.Chain, ao)
	if err != nil {
		return nil, err
	}
	var w io.Writer = out
	var sum hash.Hash
	if opts.Sum {
		sum = sha256.New()
		w = io.MultiWriter(out, sum)
	}
	res, err := ps.Sign(ctx, f.R, f.Size, syntax, w, signer)
	if err != nil {
		return nil, malformed(err)
	}
	s := &format.Signed{Warnings: res.Warnings}
	if opts.Expect != nil {
		if err := dg.Close(); err != nil {
			return nil, fmt.Errorf("%w: %v", format.ErrChanged, err)
		}
		if want, got := opts.Expect.Get(cipolicy.AuthenticodeSHA256), sip.Sum(nil); dg.Err() != nil || !bytes.Equal(want, got) {
			return nil, fmt.Errorf("%w: Authenticode SHA256 %x when validated, %x now", format.ErrChanged, want, got)
		}
		if whole != nil {
			if want, got := opts.Expect.Get(cipolicy.SHA256), whole.Sum(nil); !bytes.Equal(want, got) {
				return nil, fmt.Errorf("%w: SHA256 %x when validated, %x now", format.ErrChanged, want, got)
			}
		}
	}
	if sum != nil {
		s.SHA256 = sum.Sum(nil)
	}
	return s, nil
}
