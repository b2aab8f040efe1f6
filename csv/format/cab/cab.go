// Package cab is csv's handler of cabinet files (.cab): Authenticode-signed
// in their header's reserve (signing/authenticode/cab), recognised by
// their signature "MSCF". The cabinet's files are members, which the
// pipeline walks with container/cab and judges as loose files; this
// handler judges the cabinet itself.
//
// The digest hash rules compare (authenticode_sha256, authenticode_sha1)
// is the cabinet's Authenticode digest as osslsigncode computes it, an
// unsigned cabinet's that of the cabinet it becomes when signed; sha256 is
// the flat hash of the file, signature included. A cabinet whose reserves
// are not a signed cabinet's has no Authenticode digest (Info says why)
// and is not signed.
//
// # Security
//
// The cabinet is untrusted. Its header is read with bounds checks
// (container/cab.ReadHeader: the cabinet's size must be the file's, or end
// where the signature its reserve names begins, and the signature must end
// the file); a signature in a cabinet csv cannot hash, bytes the signature
// does not cover holding other values than signers write, or a signature
// over limits.MaxCabSignature make the cabinet malformed, whether or not
// the policy reads signatures.
package cab

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/codesignval/csv/cipolicy"
	ccab "github.com/codesignval/csv/container/cab"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	acab "github.com/codesignval/csv/signing/authenticode/cab"
)

// Handler handles cabinets.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatCab }

// Sniff implements format.Handler: the signature "MSCF" (a file that
// starts so and is no cabinet is malformed, not a file of no format).
func (Handler) Sniff(f *format.File) bool {
	return len(f.Head) >= 4 && string(f.Head[:4]) == "MSCF"
}

// Info is what inspection learns of a cabinet's layout.
type Info struct {
	// Size is the cabinet's size without its signature (cbCabinet).
	Size        int64    `json:"cabinet_size"`
	Folders     int      `json:"folders"`
	Files       int      `json:"files"`
	Compression []string `json:"compression"`
	// Reserve is the size of the header's reserve (20 in a signed
	// cabinet), FolderReserve and DataReserve those of the folders' and
	// data blocks'.
	Reserve       int `json:"header_reserve"`
	FolderReserve int `json:"folder_reserve,omitempty"`
	DataReserve   int `json:"data_reserve,omitempty"`
	// Set names the previous and next cabinets of a set, when it is part
	// of one; Index is its place in the set.
	Prev  string `json:"previous_cabinet,omitempty"`
	Next  string `json:"next_cabinet,omitempty"`
	Index int    `json:"index,omitempty"`
	// SignatureOffset and SignatureSize are where the signature lies.
	SignatureOffset int64 `json:"signature_offset,omitempty"`
	SignatureSize   int64 `json:"signature_size,omitempty"`
	// NoDigest says why the cabinet has no Authenticode digest ("" when
	// it has one).
	NoDigest string `json:"no_authenticode_digest,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	return fmt.Sprintf("cabinet (%d folders, %d files, %v)", i.Folders, i.Files, i.Compression)
}

// WriteText implements format.Info: the signature and the reserves.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.SignatureSize == 0 {
		row("signature", "none (unsigned)")
	} else {
		row("signature", fmt.Sprintf("offset %#x, %d bytes", i.SignatureOffset, i.SignatureSize))
	}
	row("reserve", fmt.Sprintf("header %d, folder %d, data %d bytes", i.Reserve, i.FolderReserve, i.DataReserve))
	if i.Prev != "" || i.Next != "" {
		row("cabinet set", fmt.Sprintf("index %d, previous %q, next %q", i.Index, i.Prev, i.Next))
	}
	if i.NoDigest != "" {
		row("authenticode digest", "none: "+i.NoDigest)
	}
}

// digests maps the cabinet digest's algorithms to policy digest names.
var digests = map[crypto.Hash]cipolicy.HashAlgorithm{
	crypto.SHA256: cipolicy.AuthenticodeSHA256,
	crypto.SHA1:   cipolicy.AuthenticodeSHA1,
}

func info(c *acab.Cabinet, folders []ccab.Folder) *Info {
	h := c.Header
	in := &Info{Size: h.Size, Folders: h.Folders, Files: h.Files, Reserve: len(h.ReserveHeader),
		FolderReserve: h.ReserveFolder, DataReserve: h.ReserveData, Prev: h.Prev, Next: h.Next, Index: int(h.Index),
		NoDigest: c.Why, Compression: []string{}}
	for _, f := range folders {
		if !slices.Contains(in.Compression, f.Compression) {
			in.Compression = append(in.Compression, f.Compression)
		}
	}
	if c.Signed() {
		in.SignatureOffset, in.SignatureSize = h.SigOffset, h.SigSize
	}
	return in
}

// Inspect implements format.Handler. It reads the header and the
// signature, and adds to the read the Digester, which computes the
// Authenticode digests the policy and the signature need.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	c, err := acab.Parse(f.R, f.Size)
	if err != nil {
		return nil, malformed(err)
	}
	folders, err := ccab.ReadFolders(f.R, c.Header)
	if err != nil {
		return nil, malformed(err)
	}
	facts.Info = info(c, folders)
	facts.Signed = c.Signed()
	hashes := map[crypto.Hash]hash.Hash{}
	for h, a := range digests {
		if need.Digests.Has(a) && c.Digestable {
			hashes[h] = h.New()
		}
	}
	if c.Signed() {
		if !need.Signatures {
			if err := authenticode.CheckStructure(c, opts.Cache); err != nil {
				return nil, malformed(err)
			}
		} else {
			for _, h := range authenticode.DigestAlgorithms(c) {
				if hashes[h] == nil && h.Available() {
					hashes[h] = h.New()
				}
			}
		}
	}
	if len(hashes) == 0 {
		return nil, nil
	}
	list := make([]hash.Hash, 0, len(hashes))
	for _, h := range hashes {
		list = append(list, h)
	}
	dg := c.NewDigester(list...)
	sums := format.AddSIP(p, dg, hashes, digests)
	return func() error {
		if err := dg.Err(); err != nil {
			return malformed(err)
		}
		if !need.Signatures || !c.Signed() {
			return nil
		}
		sigs, err := acab.Verify(c, sums(), authenticode.VerifyOptions{Certificates: opts.Certificates, Cache: opts.Cache})
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
	return format.MalformedAs(cipolicy.FormatCab, err, acab.Format, ccab.Format)
}

// Sign implements format.Handler: the signature after the cabinet, the
// header's reserve added when it has none (its offsets moved by 24 bytes),
// as osslsigncode writes it; a signature replaced, or with opts.Append
// nested in. With opts.Expect, the Authenticode SHA256 of the bytes read
// must be the one validation saw, and with Append (which keeps the
// signature that was judged) the whole file's SHA256 too.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	ao := opts.Authenticode
	ao.Append = opts.Append
	var whole, auth hash.Hash
	var dg *acab.Digester
	if opts.Expect != nil {
		c, err := acab.Parse(f.R, f.Size)
		if err != nil {
			return nil, malformed(err)
		}
		auth = sha256.New()
		dg = c.NewDigester(auth)
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
	res, err := acab.Sign(ctx, f.R, f.Size, out, signer)
	if err != nil {
		return nil, malformed(err)
	}
	s := &format.Signed{Warnings: res.Warnings}
	if opts.Expect != nil {
		if err := dg.Close(); err != nil {
			return nil, fmt.Errorf("%w: %v", format.ErrChanged, err)
		}
		if want, got := opts.Expect.Get(cipolicy.AuthenticodeSHA256), auth.Sum(nil); !bytes.Equal(want, got) {
			return nil, fmt.Errorf("%w: Authenticode SHA256 %x when validated, %x now", format.ErrChanged, want, got)
		}
		if whole != nil {
			if want, got := opts.Expect.Get(cipolicy.SHA256), whole.Sum(nil); !bytes.Equal(want, got) {
				return nil, fmt.Errorf("%w: SHA256 %x when validated, %x now", format.ErrChanged, want, got)
			}
		}
	}
	if opts.Sum {
		// The signed file is read back: its header was patched after it
		// was written.
		sum := sha256.New()
		if _, err := io.Copy(sum, io.NewSectionReader(out, 0, res.Size)); err != nil {
			return nil, fmt.Errorf("cab: reading the signed cabinet back: %w", err)
		}
		s.SHA256 = sum.Sum(nil)
	}
	return s, nil
}
