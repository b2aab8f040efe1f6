// Package pe is csv's handler of Portable Executable files (Windows
// programs, libraries and drivers, UEFI applications): recognised by their
// MZ header and the PE signature it points to, digested with the
// Authenticode image hash, signed and verified with Authenticode signatures
// in the certificate table, judged by their version resource too.
//
// # Security
//
// The headers and the certificate table are untrusted: internal/binfmt/pe
// parses them with bounds checks and caps, and signing/authenticode reads
// the table. A certificate table that holds anything but Authenticode
// signatures makes the file malformed, whether or not the policy reads
// signatures.
package pe

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
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
)

// Handler handles PE files.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatPE }

// Sniff implements format.Handler: the file starts with "MZ" and the DOS
// header points to a PE signature (an "MZ" text file is not a PE).
func (Handler) Sniff(f *format.File) bool {
	return binfmt.Sniff(f.Head) == binfmt.PE && binpe.IsPE(f.R, f.Size)
}

// LooksLike implements format.Lookalike: the file starts with "MZ".
func (Handler) LooksLike(f *format.File) bool { return binfmt.Sniff(f.Head) == binfmt.PE }

// CertEntry is one WIN_CERTIFICATE entry of a PE certificate table.
type CertEntry struct {
	Offset   int64  `json:"offset"`
	Length   uint32 `json:"length"`
	Revision uint16 `json:"revision"`
	Type     string `json:"type"`
}

// Info is what inspection learns of a PE file's layout.
type Info struct {
	PE32Plus      bool        `json:"pe32plus"`
	Machine       uint16      `json:"machine"`
	Subsystem     uint16      `json:"subsystem"`
	Sections      int         `json:"sections"`
	CertTableOff  int64       `json:"cert_table_offset,omitempty"`
	CertTableSize int64       `json:"cert_table_size,omitempty"`
	CertEntries   []CertEntry `json:"cert_entries,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	kind := "PE32"
	if i.PE32Plus {
		kind = "PE32+"
	}
	return fmt.Sprintf("%s (machine %#04x, subsystem %d, %d sections)", kind, i.Machine, i.Subsystem, i.Sections)
}

// WriteText implements format.Info: the certificate table and its entries.
func (i *Info) WriteText(w io.Writer, row func(key, value string)) {
	if i.CertTableSize == 0 {
		row("certificate table", "none (unsigned)")
		return
	}
	row("certificate table", fmt.Sprintf("offset %#x, %d bytes, %d entries", i.CertTableOff, i.CertTableSize, len(i.CertEntries)))
	for n, c := range i.CertEntries {
		fmt.Fprintf(w, "    entry %d: offset %#x, %d bytes, revision %#04x, %s\n", n, c.Offset, c.Length, c.Revision, textsafe.Escape(c.Type))
	}
}

// authenticodeHashes maps the image hashes to policy digest names.
var authenticodeHashes = map[crypto.Hash]cipolicy.HashAlgorithm{
	crypto.SHA256: cipolicy.AuthenticodeSHA256,
	crypto.SHA1:   cipolicy.AuthenticodeSHA1,
}

// Inspect implements format.Handler. It parses the headers and the
// certificate table, reads the version resource if asked, and adds to the
// read the Authenticode digests the policy and the signatures need.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	finish, err := inspect(f, need, opts, p, facts)
	return finish, malformed(err)
}

// InspectStream implements format.Streamer: as Inspect, for a file read
// once, front to back (a large member of a compressed archive). The
// headers are read from the file's first bytes; the certificate table and,
// with attributes needed, the section holding the resource table are kept
// as the file passes and read after it. The image hash is computed, for a
// signed file whose signatures are needed, with SHA-256 and SHA-1 both
// (the table that says which is read after the file): a signature over
// another digest does not verify, saying why; the page-hash tables
// signatures carry are not checked (their first-page hashes are computed
// as the policy asks).
func (Handler) InspectStream(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	finish, err := inspect(f, need, opts, p, facts)
	if finish != nil {
		// What it reads after the file is what it reads before it held.
		then := finish
		finish = func() error { return malformed(then()) }
	}
	return finish, malformed(err)
}

func inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	pf, err := binpe.Parse(f.R, f.Size)
	if err != nil {
		return nil, err
	}
	streamed := f.Streamed()
	info := &Info{PE32Plus: pf.PE32Plus, Machine: pf.Machine, Subsystem: pf.Subsystem,
		Sections: len(pf.Sections), CertTableOff: pf.CertTable.Off, CertTableSize: pf.CertTable.Len}
	facts.Info = info
	facts.Signed = info.CertTableSize > 0
	hashes := map[crypto.Hash]hash.Hash{}
	for h, a := range authenticodeHashes {
		if need.Digests.Has(a) {
			hashes[h] = h.New()
		}
	}
	var table []byte
	// later reads what a streamed file keeps, once it is read.
	var later []func() error
	if pf.Signed() && streamed {
		if err := f.Keep(pf.CertTable.Off, pf.CertTable.Len); err != nil {
			return nil, err
		}
		if need.Signatures {
			for h := range authenticodeHashes {
				if hashes[h] == nil {
					hashes[h] = h.New()
				}
			}
		}
		later = append(later, func() error {
			table = make([]byte, pf.CertTable.Len)
			if err := binfmt.ReadFull(f.R, f.Size, binfmt.PE, pf.CertTable.Off, table, "certificate table"); err != nil {
				return err
			}
			certs, err := binpe.ParseCertificateTable(table, pf.CertTable.Off)
			if err != nil {
				return err
			}
			for _, c := range certs {
				info.CertEntries = append(info.CertEntries, CertEntry{Offset: c.Offset, Length: c.Length, Revision: c.Revision, Type: binpe.TypeName(c.Type)})
			}
			if !need.Signatures {
				return authpe.CheckTable(table, pf.CertTable.Off, opts.Cache)
			}
			return nil
		})
	}
	if pf.Signed() && !streamed {
		table = make([]byte, pf.CertTable.Len) // capped by pe.Parse
		if err := binfmt.ReadFull(f.R, f.Size, binfmt.PE, pf.CertTable.Off, table, "certificate table"); err != nil {
			return nil, err
		}
		certs, err := binpe.ParseCertificateTable(table, pf.CertTable.Off)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			info.CertEntries = append(info.CertEntries, CertEntry{Offset: c.Offset, Length: c.Length, Revision: c.Revision, Type: binpe.TypeName(c.Type)})
		}
		if !need.Signatures {
			// Whatever the policy matches, a table that carries anything
			// but Authenticode signatures makes the file malformed
			// (Verify checks the same when the signatures are needed).
			if err := authpe.CheckTable(table, pf.CertTable.Off, opts.Cache); err != nil {
				return nil, err
			}
		} else {
			for _, h := range authpe.DigestAlgorithms(table) {
				if hashes[h] == nil && h.Available() {
					hashes[h] = h.New()
				}
			}
		}
	}
	attributes := func() error {
		vi, err := binpe.ReadVersionInfo(f.R, pf)
		if err != nil {
			return err
		}
		facts.Attributes, err = fileAttributes(vi)
		return err
	}
	switch {
	case need.Attributes && streamed:
		off, n, err := binpe.ResourceSection(f.R, pf)
		if err != nil {
			return nil, err
		}
		if err := f.Keep(off, n); err != nil {
			return nil, err
		}
		later = append(later, attributes)
	case need.Attributes:
		if err := attributes(); err != nil {
			return nil, err
		}
	}
	// Page hashes: the first-page digests the policy compares, and the
	// page-hash tables the signatures carry, checked in the same read.
	var expected []*authpe.Expected
	if need.Signatures && table != nil {
		expected = authpe.ExpectedPageHashes(table)
	}
	pages := authpe.NewPages(pf)
	for h, a := range pageHashes {
		var mine []*authpe.Expected
		for _, e := range expected {
			if e.Hash == h {
				mine = append(mine, e)
			}
		}
		want := need.Digests.Has(a)
		// A first-page hash deferred to a second read (need.Later) is
		// checked for here all the same: a file whose first-page hash
		// the policy compares and cannot be computed is malformed
		// whichever read finds it.
		if err := pages.FirstPageProblem(); (want || need.Later.Digests.Has(a)) && err != nil {
			if !need.Digests.Equal(cipolicy.AllDigests()) {
				return nil, &signing.MalformedError{Format: authpe.Format, Offset: pf.CheckSumOffset - 4, Reason: a.Label() + ": " + err.Error(), Err: err} // at SizeOfHeaders
			}
			// Every digest (csv inspect, --all-digests): the file has
			// no first-page hash to show, and a rule that needs it
			// still blocks the file (cipolicy fails closed on a digest
			// not computed).
			want = false
		}
		if !want && len(mine) == 0 {
			continue
		}
		var d *authpe.PageDigester
		if len(mine) > 0 {
			d = pages.Table(h, false, mine...)
		} else {
			d = pages.FirstPage(h)
		}
		p.Write(d)
		p.OnDone(d.Close)
		if want {
			p.Digest(a, firstPageSum{d})
		}
	}
	verify := func(sums map[crypto.Hash][]byte) error {
		sigs, err := authpe.VerifyPages(table, info.CertTableOff, sums, expected, authenticode.VerifyOptions{Certificates: opts.Certificates, Cache: opts.Cache})
		if err != nil {
			return malformed(err)
		}
		if sigs == nil {
			sigs = []*signing.Signature{}
		}
		facts.Signatures = sigs
		return nil
	}
	// then runs what is left once the file is read: what a streamed file
	// keeps, then fn.
	then := func(fn func() error) func() error {
		if len(later) == 0 {
			return fn
		}
		return func() error {
			for _, l := range later {
				if err := l(); err != nil {
					return err
				}
			}
			if fn == nil {
				return nil
			}
			return fn()
		}
	}
	signed := table != nil || streamed && pf.Signed()
	if len(hashes) == 0 {
		if need.Signatures && signed {
			return then(func() error { return verify(nil) }), nil
		}
		return then(nil), nil
	}
	list := make([]hash.Hash, 0, len(hashes))
	for _, h := range hashes {
		list = append(list, h)
	}
	im, err := authpe.NewImage(authpe.Layout{Size: pf.Size, CheckSumOffset: pf.CheckSumOffset, CertDirOffset: pf.CertDirOffset,
		CertTableOffset: pf.CertTable.Off, CertTableSize: pf.CertTable.Len})
	if err != nil {
		return nil, err
	}
	dg := im.NewDigester(list...)
	p.Write(dg)
	p.OnDone(dg.Close)
	for h, a := range authenticodeHashes {
		if hh := hashes[h]; hh != nil {
			p.Digest(a, hh)
		}
	}
	if !need.Signatures || !signed {
		return then(nil), nil
	}
	return then(func() error {
		sums := make(map[crypto.Hash][]byte, len(hashes))
		for h, hh := range hashes {
			sums[h] = hh.Sum(nil)
		}
		return verify(sums)
	}), nil
}

// pageHashes maps the first-page hashes to policy digest names.
var pageHashes = map[crypto.Hash]cipolicy.HashAlgorithm{
	crypto.SHA256: cipolicy.PageSHA256,
	crypto.SHA1:   cipolicy.PageSHA1,
}

// firstPageSum presents a PageDigester's first-page hash as the hash.Hash
// the pass sums once it is done (the digester itself is the writer).
type firstPageSum struct{ d *authpe.PageDigester }

func (f firstPageSum) Write(p []byte) (int, error) { return len(p), nil }
func (f firstPageSum) Sum(b []byte) []byte         { return append(b, f.d.FirstPageHash()...) }
func (f firstPageSum) Reset()                      {}
func (f firstPageSum) Size() int                   { return len(f.d.FirstPageHash()) }
func (f firstPageSum) BlockSize() int              { return 64 }

// malformed turns what the parsers found into a *format.MalformedError.
func malformed(err error) error {
	if err == nil {
		return nil
	}
	return format.Malformed(cipolicy.FormatPE, err)
}

func fileAttributes(vi *binpe.VersionInfo) (*cipolicy.FileAttributes, error) {
	if vi == nil {
		return nil, nil
	}
	// Every reading of the version resources (tables, languages, repeated
	// keys): a deny rule must see what any of them says.
	rs, ok := vi.Readings("OriginalFilename", "InternalName", "FileDescription", "ProductName")
	if !ok {
		return nil, binfmt.Errorf(binfmt.PE, -1, "the version resources read %d ways or more (string tables, languages, repeated keys): too many to judge", len(rs))
	}
	as := make([]cipolicy.FileAttributes, len(rs))
	for i, r := range rs {
		as[i] = cipolicy.FileAttributes{
			OriginalFileName: r.Strings["OriginalFilename"],
			InternalName:     r.Strings["InternalName"],
			FileDescription:  r.Strings["FileDescription"],
			ProductName:      r.Strings["ProductName"],
		}
		if r.HasFixed {
			v := cipolicy.Version(r.FileVersion)
			as[i].FileVersion = &v
		}
	}
	return cipolicy.NewFileAttributes(as), nil
}

// Sign implements format.Handler: an Authenticode signature in the
// certificate table (replacing the signatures the file has, or nested in
// the first one with opts.Append), with the file's page-hash table if
// opts.PageHashes. With opts.Expect, the image hash read
// must be the Authenticode SHA256 validation saw, and with Append (which
// keeps signatures that were judged) the whole file its SHA256 too.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	// Appending keeps the signatures the file had: they must be the ones
	// validated, in the very bytes read for signing.
	ao := opts.Authenticode
	ao.Append = opts.Append
	var whole hash.Hash
	if opts.Expect != nil && ao.Append {
		whole = sha256.New()
		ao.Tee = whole
	}
	signer, err := authenticode.NewSigner(opts.Key, opts.Chain, ao)
	if err != nil {
		return nil, err
	}
	res, err := authpe.SignWithOptions(ctx, signer, f.R, f.Size, out, authpe.Options{PageHashes: opts.PageHashes})
	if err != nil {
		return nil, err
	}
	s := &format.Signed{Warnings: res.Warnings}
	if opts.Expect != nil {
		if want := opts.Expect.Get(cipolicy.AuthenticodeSHA256); !bytes.Equal(want, res.Digest) {
			return nil, signing.Errorf(format.ErrChanged, "the file changed after it was validated: Authenticode SHA256 %x when validated, %x now", want, res.Digest)
		}
		if whole != nil {
			if want, sum := opts.Expect.Get(cipolicy.SHA256), whole.Sum(nil); !bytes.Equal(want, sum) {
				return nil, signing.Errorf(format.ErrChanged, "the file changed after it was validated: SHA256 %x when validated, %x now", want, sum)
			}
		}
	}
	// Header fields were patched after the stream: hash what is on disk
	// (from the page cache), only if something needs it.
	if opts.Sum {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(out, 0, 1<<62), f.Buffer()); err != nil {
			return nil, err
		}
		s.SHA256 = h.Sum(nil)
	}
	return s, nil
}
