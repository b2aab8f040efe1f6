// Package msi is csv's handler of Windows Installer files: installation
// packages (.msi), and patches (.msp) and transforms (.mst), which share
// their structure. They are compound files (internal/binfmt/cfb) told by
// content: the compound file signature and a root storage whose CLSID is
// one of Windows Installer's; a compound file named .msi, .msp or .mst
// whose root is not is claimed too, and refused as malformed, rather than
// passed over as a file of no format.
//
// The digest hash rules compare (authenticode_sha256, authenticode_sha1) is
// the digest Windows Installer's SIP computes (signing/authenticode/msi):
// the streams' contents in the order of their names, then the storages'
// CLSIDs; with an \x05MsiDigitalSignatureEx stream, the hash of the
// metadata's pre-hash and the contents, which is what the signature
// signs. Signing a package without the extended signature leaves its
// digest as it is, so a hash rule written before signing still matches;
// the extended signature changes it. sha256 is the flat hash of the file.
//
// # One read
//
// A compound file's streams lie in its sectors in no particular order,
// and the SIP digest takes them in the order of their names: it cannot be
// computed from the one sequential read that feeds the flat SHA256.
// Inspect parses the file's structure and computes the SIP digest by
// random access through the file's streams (each stream's sectors read in
// runs of contiguous sectors), then the pipeline's read streams the file
// once for sha256 when the policy asks for it. An MSI is thus read about
// twice: once by streams, once whole.
//
// # Security
//
// The package is untrusted: see internal/binfmt/cfb and
// signing/authenticode/msi for what makes it malformed (loops, shared
// sectors, ambiguous names, data after the last sector in use, a
// signature stream that is not one Authenticode signature, an extended
// signature that is not the metadata's pre-hash). A malformed package's
// digest is not reported.
package msi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// Handler handles Windows Installer files.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatMSI }

// Extensions are the file name extensions of Windows Installer files.
var Extensions = []string{".msi", ".msp", ".mst"}

func named(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// RootCLSID reads the root storage's CLSID of the compound file r (false
// if it cannot be read: not a compound file, or one too broken to tell).
// It reads the header and the root entry only.
func RootCLSID(r io.ReaderAt, size int64) ([16]byte, bool) {
	var h [512]byte
	if size < 1024 {
		return [16]byte{}, false
	}
	if n, _ := r.ReadAt(h[:], 0); n < len(h) || !cfb.Sniff(h[:]) {
		return [16]byte{}, false
	}
	shift := binary.LittleEndian.Uint16(h[0x1e:])
	if shift != 9 && shift != 12 {
		return [16]byte{}, false
	}
	dir := binary.LittleEndian.Uint32(h[0x30:])
	if dir >= 0xfffffffa {
		return [16]byte{}, false
	}
	var e [128]byte
	off := (int64(dir) + 1) << shift
	if off > size-128 {
		return [16]byte{}, false
	}
	if n, _ := r.ReadAt(e[:], off); n < len(e) || e[0x42] != cfb.TypeRoot {
		return [16]byte{}, false
	}
	return [16]byte(e[0x50:0x60]), true
}

// Sniff implements format.Handler: a compound file whose root CLSID is
// Windows Installer's, or any compound file named as an installer.
func (Handler) Sniff(f *format.File) bool {
	if !cfb.Sniff(f.Head) {
		return false
	}
	if clsid, ok := RootCLSID(f.R, f.Size); ok && msi.Kind(clsid) != "" {
		return true
	}
	return named(f.Name)
}

// Info is what inspection learns of a Windows Installer file.
type Info struct {
	// Kind is "installation package", "patch" or "transform".
	Kind string `json:"kind"`
	// SectorSize is the compound file's sector size (512 or 4096).
	SectorSize int `json:"sector_size"`
	// Streams and Storages count the entries under the root, at every
	// depth.
	Streams  int `json:"streams"`
	Storages int `json:"storages"`
	// Signature is the size of \x05DigitalSignature (0 when unsigned);
	// Extended says a \x05MsiDigitalSignatureEx stream is present.
	Signature int  `json:"signature_size,omitempty"`
	Extended  bool `json:"extended_signature,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	return fmt.Sprintf("Windows Installer %s (compound file, %d-byte sectors, %d streams)", i.Kind, i.SectorSize, i.Streams)
}

// WriteText implements format.Info: the signature streams.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.Signature == 0 {
		row("signature", "none (unsigned)")
		return
	}
	v := fmt.Sprintf("\\x05DigitalSignature stream, %d bytes", i.Signature)
	if i.Extended {
		v += ", with \\x05MsiDigitalSignatureEx (metadata pre-hash)"
	}
	row("signature", v)
}

// sipHashes maps the SIP digest's algorithms to policy digest names.
var sipHashes = map[crypto.Hash]cipolicy.HashAlgorithm{
	crypto.SHA256: cipolicy.AuthenticodeSHA256,
	crypto.SHA1:   cipolicy.AuthenticodeSHA1,
}

func info(p *msi.Package) *Info {
	f := p.CFB
	in := &Info{Kind: msi.Kind(f.Entries[0].CLSID), SectorSize: f.SectorSize, Signature: len(p.Signature()), Extended: p.Ex != nil}
	for _, e := range f.Entries[1:] {
		if e.Type == cfb.TypeStream {
			in.Streams++
		} else {
			in.Storages++
		}
	}
	return in
}

// parse parses the package and checks it is one of Windows Installer's.
func parse(r io.ReaderAt, size int64) (*msi.Package, error) {
	p, err := msi.Parse(r, size)
	if err != nil {
		return nil, malformed(err)
	}
	if root := p.CFB.Entries[0]; msi.Kind(root.CLSID) == "" {
		return nil, &format.MalformedError{Format: cipolicy.FormatMSI, Offset: root.Offset + 0x50,
			Reason: fmt.Sprintf("the root storage's CLSID %x is not Windows Installer's (a compound file named as an installer)", root.CLSID[:])}
	}
	return p, nil
}

// Inspect implements format.Handler. It parses the compound file, computes
// the SIP digests the policy and the signature need by random access (see
// the package documentation), and returns the verifier.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	pkg, err := parse(f.R, f.Size)
	if err != nil {
		return nil, err
	}
	facts.Info = info(pkg)
	facts.Signed = pkg.Signed()
	var hs []crypto.Hash
	for h, a := range sipHashes {
		if need.Digests.Has(a) {
			hs = append(hs, h)
		}
	}
	if pkg.Signed() {
		// Whatever the policy matches, a signature stream that holds
		// anything but an Authenticode signature, or an extended signature
		// that is not the metadata's pre-hash, makes the package malformed.
		if err := pkg.CheckEx(); err != nil {
			return nil, malformed(err)
		}
		if !need.Signatures {
			if err := authenticode.CheckStructure(pkg, opts.Cache); err != nil {
				return nil, malformed(err)
			}
		} else {
			for _, h := range authenticode.DigestAlgorithms(pkg) {
				if h.Available() && !contains(hs, h) {
					hs = append(hs, h)
				}
			}
		}
	}
	var sums map[crypto.Hash][]byte
	if len(hs) > 0 {
		if sums, err = pkg.Digest(hs...); err != nil {
			return nil, malformed(err)
		}
	}
	for h, a := range sipHashes {
		if s, ok := sums[h]; ok && need.Digests.Has(a) {
			p.Digest(a, fixed(s))
		}
	}
	if !need.Signatures || !pkg.Signed() {
		return nil, nil
	}
	return func() error {
		sigs, err := msi.Verify(pkg, sums, authenticode.VerifyOptions{Certificates: opts.Certificates, Cache: opts.Cache})
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

func contains(hs []crypto.Hash, h crypto.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// fixed is a digest computed before the pass, as a hash.Hash the pass
// records (its Sum is the digest; it is fed nothing).
type fixed []byte

func (d fixed) Write(p []byte) (int, error) { return len(p), nil }
func (d fixed) Sum(b []byte) []byte         { return append(b, d...) }
func (d fixed) Reset()                      {}
func (d fixed) Size() int                   { return len(d) }
func (d fixed) BlockSize() int              { return 64 }

// malformed turns what the parsers found into a *format.MalformedError.
func malformed(err error) error {
	return format.MalformedAs(cipolicy.FormatMSI, err, msi.Format)
}

// Sign implements format.Handler: the package rewritten with a new
// \x05DigitalSignature (signing/authenticode/msi.Sign), with
// \x05MsiDigitalSignatureEx when the package had one or opts.MSIExtended
// asks for it (a package signed with the extended signature stays so;
// otherwise it is signed without it, as signtool and osslsigncode do by
// default). An extended signature cannot be nested in one without it. With
// opts.Expect, the SIP digest and the flat SHA256 read must be those
// validation saw; and since the streams are read again to be copied, the
// written package's digest is computed anew and must be the one signed:
// a package that changed while it was signed is refused (format.ErrChanged).
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	pkg, err := parse(f.R, f.Size)
	if err != nil {
		return nil, err
	}
	ao := opts.Authenticode
	ao.Append = opts.Append
	var whole hash.Hash
	var before []byte
	if opts.Expect != nil {
		d, err := pkg.Digest(crypto.SHA256)
		if err != nil {
			return nil, malformed(err)
		}
		before = d[crypto.SHA256]
		if want := opts.Expect.Get(cipolicy.AuthenticodeSHA256); !bytes.Equal(want, before) {
			return nil, signing.Errorf(format.ErrChanged, "msi: the file changed after it was validated: Authenticode SHA256 %x when validated, %x now", want, before)
		}
		whole = sha256.New()
		ao.Tee = whole
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
	ext := pkg.Ex != nil || opts.MSIExtended
	if ext && pkg.Ex == nil && opts.Append && pkg.Signed() {
		return nil, signing.Errorf(msi.ErrExtendedAppend, "msi: cannot nest an extended signature (--msi-extended) in the package's signature, which has none: the \\x05MsiDigitalSignatureEx stream would change the digest that signature covers; sign without --append to replace it, or without --msi-extended")
	}
	res, err := msi.Sign(ctx, f.R, f.Size, w, signer, msi.SignOptions{Extended: ext})
	if err != nil {
		return nil, malformed(err)
	}
	if opts.Expect != nil {
		if want, got := opts.Expect.Get(cipolicy.SHA256), whole.Sum(nil); !bytes.Equal(want, got) {
			return nil, signing.Errorf(format.ErrChanged, "msi: the file changed after it was validated: SHA256 %x when validated, %x now", want, got)
		}
		if signer.Hash() == crypto.SHA256 && !bytes.Equal(res.Digest, before) {
			return nil, signing.Errorf(format.ErrChanged, "msi: the file changed while it was signed: Authenticode SHA256 %x validated, %x signed", before, res.Digest)
		}
		written, err := msi.Parse(out, res.Size)
		if err != nil {
			return nil, fmt.Errorf("msi: reading the signed package back: %w", err)
		}
		d, err := written.Digest(signer.Hash())
		if err != nil {
			return nil, fmt.Errorf("msi: reading the signed package back: %w", err)
		}
		if !bytes.Equal(d[signer.Hash()], res.Digest) {
			return nil, signing.Errorf(format.ErrChanged, "msi: the file changed while it was signed: the written package's digest is %x, the signed one %x", d[signer.Hash()], res.Digest)
		}
	}
	s := &format.Signed{Warnings: res.Warnings}
	if sum != nil {
		s.SHA256 = sum.Sum(nil)
	}
	return s, nil
}
