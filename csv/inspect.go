package csv

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/binfmt"
	"github.com/codesignval/csv/internal/binfmt/elf"
	"github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/modsig"
)

// Format is a file's format: "pe", "elf" or "other". It is
// [cipolicy.Format], the one format type, under the name this package has
// always used.
type Format = cipolicy.Format

// Formats.
const (
	FormatPE    = cipolicy.FormatPE
	FormatELF   = cipolicy.FormatELF
	FormatOther = cipolicy.FormatOther
)

// MalformedBinaryError says why a file that claims to be PE or ELF cannot be
// judged: what is wrong and where. Offset is -1 when there is no single place.
type MalformedBinaryError struct {
	Path   string
	Format Format
	Offset int64
	Reason string
}

func (e *MalformedBinaryError) Error() string {
	return e.Path + ": " + e.Message()
}

// Message is the error without the path, as reports print it next to the path.
func (e *MalformedBinaryError) Message() string {
	name := map[Format]string{FormatPE: "PE", FormatELF: "ELF"}[e.Format]
	if e.Offset < 0 {
		return fmt.Sprintf("malformed %s: %s", name, e.Reason)
	}
	return fmt.Sprintf("malformed %s at offset %#x: %s", name, e.Offset, e.Reason)
}

// UnreadableError says a file could not be read (permissions, I/O errors,
// a file that changed while it was read).
type UnreadableError struct {
	Path string
	Err  error
}

func (e *UnreadableError) Error() string { return e.Path + ": " + e.Message() }

// Message is the error without the path.
func (e *UnreadableError) Message() string {
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		return "cannot " + pe.Op + ": " + pe.Err.Error()
	}
	return "cannot read: " + e.Err.Error()
}

func (e *UnreadableError) Unwrap() error { return e.Err }

// Message returns an inspection error's text without the file's path, as
// reports print it next to the path.
func Message(err error) string {
	var m interface{ Message() string }
	if errors.As(err, &m) {
		return m.Message()
	}
	return err.Error()
}

// pathless is an error whose text omits the path, for cipolicy.Subject.Problem.
type pathless struct{ err error }

func (p pathless) Error() string { return Message(p.err) }
func (p pathless) Unwrap() error { return p.err }

// CertEntry is one WIN_CERTIFICATE entry of a PE certificate table.
type CertEntry struct {
	Offset   int64  `json:"offset"`
	Length   uint32 `json:"length"`
	Revision uint16 `json:"revision"`
	Type     string `json:"type"`
}

// PEInfo is what inspection learns of a PE file's layout.
type PEInfo struct {
	PE32Plus      bool        `json:"pe32plus"`
	Machine       uint16      `json:"machine"`
	Subsystem     uint16      `json:"subsystem"`
	Sections      int         `json:"sections"`
	CertTableOff  int64       `json:"cert_table_offset,omitempty"`
	CertTableSize int64       `json:"cert_table_size,omitempty"`
	CertEntries   []CertEntry `json:"cert_entries,omitempty"`
}

// ELFInfo is what inspection learns of an ELF file's header.
type ELFInfo struct {
	Class   int    `json:"class"` // 32 or 64
	Machine uint16 `json:"machine"`
	Type    uint16 `json:"type"`
	// SignedLength is the number of bytes an appended signature covers (0
	// when the file has none).
	SignedLength int64 `json:"signed_length,omitempty"`
}

// Inspection is the facts about one file, established in one read.
type Inspection struct {
	Format  Format
	Size    int64
	Digests cipolicy.Digests
	PE      *PEInfo
	ELF     *ELFInfo
	// Signatures are the file's signatures, verified, when asked for (nil
	// otherwise); Attributes its PE version resource, when asked for.
	Signatures []*signing.Signature
	Attributes *cipolicy.FileAttributes
	// Err is a *MalformedBinaryError or *UnreadableError when the file
	// could not be fully inspected; Format is then what it claimed to be.
	Err error
}

// Signed reports whether the file carries a signature.
func (in *Inspection) Signed() bool {
	return (in.PE != nil && in.PE.CertTableSize > 0) || (in.ELF != nil && in.ELF.SignedLength > 0)
}

// NeedsFunc says which digests to compute for a file of a format.
type NeedsFunc func(cipolicy.Format) cipolicy.Needs

// AllFacts is a NeedsFunc that asks for every digest and fact.
func AllFacts(cipolicy.Format) cipolicy.Needs { return cipolicy.AllNeeds() }

// sniffSize is how much of a file is read to tell its format.
const sniffSize = 4096

// InspectOptions configure InspectFile. The zero value computes every
// digest and verifies signatures with the certificates they carry.
type InspectOptions struct {
	// Certificates complete signature chains and identify the signers of
	// ELF appended signatures, which carry no certificates.
	Certificates []*signing.Certificate
}

// InspectFile inspects the file at path, computing every digest and
// verifying every signature. buf, if not nil, is the read buffer to use (at
// least 4 KiB).
func InspectFile(ctx context.Context, path string, buf []byte, opts InspectOptions) *Inspection {
	if len(buf) < sniffSize {
		buf = make([]byte, limits.ReadBuffer)
	}
	cfg := &inspectConfig{needs: AllFacts, certs: opts.Certificates, cache: authenticode.NewCertCache(), follow: true}
	return inspect(ctx, path, buf, cfg)
}

// inspectConfig is what one inspection needs besides the file.
type inspectConfig struct {
	needs  NeedsFunc
	certs  []*signing.Certificate
	cache  *authenticode.CertCache
	follow bool
}

// inspect reads the file at path once: its first block tells the format and
// holds the headers; a PE certificate table or ELF signature trailer, small
// and at the end, is read next, so that the digests its signatures need are
// known; then the whole file streams through buf into every digest needed.
// A panic in a parser becomes a MalformedBinaryError.
func inspect(ctx context.Context, path string, buf []byte, cfg *inspectConfig) (in *Inspection) {
	in = &Inspection{Format: FormatOther}
	defer func() {
		if r := recover(); r != nil {
			in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
				Reason: fmt.Sprintf("internal error while parsing (please report it): %v", r)}
		}
	}()
	f, err := openRegular(path, cfg.follow)
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: err}
		return in
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: err}
		return in
	}
	if !st.Mode().IsRegular() {
		in.Err = &UnreadableError{Path: path, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
		return in
	}
	in.Size = st.Size()
	n, err := io.ReadFull(f, buf[:min(int64(sniffSize), in.Size)])
	if err != nil {
		in.Err = &UnreadableError{Path: path, Err: fileChanged(err)}
		return in
	}
	head := buf[:n]
	ra := binfmt.PrefixReader{Prefix: head, R: f}
	var need cipolicy.Needs
	var d digests
	var finish func() error // verifies signatures once the digests are known
	switch binfmt.Sniff(head) {
	case binfmt.PE:
		if !pe.IsPE(ra, in.Size) {
			return in // an MZ file without a PE signature is not a PE
		}
		in.Format = FormatPE
		need = cfg.needs(cipolicy.FormatPE)
		if finish, err = in.preparePE(ra, &d, need, cfg); err != nil {
			in.Err = binaryError(path, FormatPE, err)
			return in
		}
	case binfmt.ELF:
		in.Format = FormatELF
		need = cfg.needs(cipolicy.FormatELF)
		if finish, err = in.prepareELF(ra, &d, need, cfg); err != nil {
			in.Err = binaryError(path, FormatELF, err)
			return in
		}
	default:
		// Not a binary: judged by nothing, hashed only if asked (inspect).
		if need = cfg.needs(FormatOther); !need.Digests.Has(cipolicy.SHA256) {
			return in
		}
	}
	if in.Size > limits.MaxBinarySize {
		in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
			Reason: fmt.Sprintf("file is %d bytes, over the limit of %d", in.Size, limits.MaxBinarySize)}
		return in
	}
	if need.Digests.Has(cipolicy.SHA256) {
		d.flat(sha256.New())
	}
	if len(d.writers) > 0 {
		if err := stream(ctx, f, buf, n, in.Size, d.writers); err != nil {
			if ctx.Err() != nil {
				in.Err = ctx.Err()
			} else {
				in.Err = &UnreadableError{Path: path, Err: err}
			}
			return in
		}
		if err := d.close(); err != nil {
			in.Err = &UnreadableError{Path: path, Err: err}
			return in
		}
	}
	for _, s := range d.sums {
		in.Digests.Set(s.alg, s.h.Sum(nil))
	}
	if finish != nil {
		if err := finish(); err != nil {
			in.Err = binaryError(path, in.Format, err)
		}
	}
	return in
}

// digests collects the hashes one pass over a file feeds.
type digests struct {
	writers []io.Writer
	sums    []struct {
		alg cipolicy.HashAlgorithm
		h   hash.Hash
	}
	closers []func() error
}

func (d *digests) flat(h hash.Hash) {
	d.writers = append(d.writers, h)
	d.sums = append(d.sums, struct {
		alg cipolicy.HashAlgorithm
		h   hash.Hash
	}{cipolicy.SHA256, h})
}

func (d *digests) close() error {
	for _, c := range d.closers {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

// authenticodeHashes maps the image hashes to policy digest names.
var authenticodeHashes = map[crypto.Hash]cipolicy.HashAlgorithm{
	crypto.SHA256: cipolicy.AuthenticodeSHA256,
	crypto.SHA1:   cipolicy.AuthenticodeSHA1,
}

// preparePE parses the headers and the certificate table and sets up the
// Authenticode digests the policy and the signatures need.
func (in *Inspection) preparePE(ra io.ReaderAt, d *digests, need cipolicy.Needs, cfg *inspectConfig) (func() error, error) {
	pf, err := pe.Parse(ra, in.Size)
	if err != nil {
		return nil, err
	}
	in.PE = &PEInfo{PE32Plus: pf.PE32Plus, Machine: pf.Machine, Subsystem: pf.Subsystem,
		Sections: len(pf.Sections), CertTableOff: pf.CertTable.Off, CertTableSize: pf.CertTable.Len}
	hashes := map[crypto.Hash]hash.Hash{}
	for h, a := range authenticodeHashes {
		if need.Digests.Has(a) {
			hashes[h] = h.New()
		}
	}
	var table []byte
	if pf.Signed() {
		table = make([]byte, pf.CertTable.Len) // capped by pe.Parse
		if err := binfmt.ReadFull(ra, in.Size, binfmt.PE, pf.CertTable.Off, table, "certificate table"); err != nil {
			return nil, err
		}
		certs, err := pe.ParseCertificateTable(table, pf.CertTable.Off)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			in.PE.CertEntries = append(in.PE.CertEntries, CertEntry{Offset: c.Offset, Length: c.Length, Revision: c.Revision, Type: pe.TypeName(c.Type)})
		}
		if !need.Signatures {
			// Whatever the policy matches, a table that carries anything
			// but Authenticode signatures makes the file malformed
			// (Verify checks the same when the signatures are needed).
			if err := authenticode.CheckTable(table, pf.CertTable.Off, cfg.cache); err != nil {
				return nil, err
			}
		} else {
			for _, h := range authenticode.DigestAlgorithms(table) {
				if hashes[h] == nil && h.Available() {
					hashes[h] = h.New()
				}
			}
		}
	}
	if need.Attributes {
		vi, err := pe.ReadVersionInfo(ra, pf)
		if err != nil {
			return nil, err
		}
		if in.Attributes, err = fileAttributes(vi); err != nil {
			return nil, err
		}
	}
	if len(hashes) == 0 {
		if need.Signatures && table != nil {
			return func() error { return in.verifyPE(table, nil, cfg) }, nil
		}
		return nil, nil
	}
	list := make([]hash.Hash, 0, len(hashes))
	for _, h := range hashes {
		list = append(list, h)
	}
	dg := authenticode.NewDigester(pf, list...)
	d.writers = append(d.writers, dg)
	d.closers = append(d.closers, dg.Close)
	for h, a := range authenticodeHashes {
		if hh := hashes[h]; hh != nil {
			d.sums = append(d.sums, struct {
				alg cipolicy.HashAlgorithm
				h   hash.Hash
			}{a, hh})
		}
	}
	if !need.Signatures || table == nil {
		return nil, nil
	}
	return func() error {
		sums := make(map[crypto.Hash][]byte, len(hashes))
		for h, hh := range hashes {
			sums[h] = hh.Sum(nil)
		}
		return in.verifyPE(table, sums, cfg)
	}, nil
}

func (in *Inspection) verifyPE(table []byte, sums map[crypto.Hash][]byte, cfg *inspectConfig) error {
	sigs, err := authenticode.Verify(table, in.PE.CertTableOff, sums, authenticode.VerifyOptions{Certificates: cfg.certs, Cache: cfg.cache})
	if err != nil {
		return err
	}
	if sigs == nil {
		sigs = []*signing.Signature{}
	}
	in.Signatures = sigs
	return nil
}

// prepareELF checks the headers, finds an appended signature and sets up
// the digest of the signed prefix when signatures are needed.
func (in *Inspection) prepareELF(ra io.ReaderAt, d *digests, need cipolicy.Needs, cfg *inspectConfig) (func() error, error) {
	ef, err := elf.Parse(ra, in.Size)
	if err != nil {
		return nil, err
	}
	class := 32
	if ef.Is64() {
		class = 64
	}
	in.ELF = &ELFInfo{Class: class, Machine: ef.Machine, Type: ef.Type}
	// Always look for a signature: a signed file must not be reported as
	// unsigned because the policy has no signer rules.
	app, err := modsig.Find(ra, in.Size)
	if err != nil {
		return nil, err
	}
	if app != nil {
		in.ELF.SignedLength = app.SignedLen
	}
	if !need.Signatures {
		return nil, nil
	}
	if app == nil {
		in.Signatures = []*signing.Signature{}
		return nil, nil
	}
	h := app.DigestAlgorithm.New()
	d.writers = append(d.writers, &prefixWriter{w: h, n: app.SignedLen})
	return func() error {
		in.Signatures = []*signing.Signature{app.Verify(h.Sum(nil), cfg.certs)}
		return nil
	}, nil
}

// prefixWriter passes on the first n bytes written to it.
type prefixWriter struct {
	w io.Writer
	n int64
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if p.n > 0 {
		k := int(min(int64(len(b)), p.n))
		p.w.Write(b[:k])
		p.n -= int64(k)
	}
	return len(b), nil
}

func fileAttributes(vi *pe.VersionInfo) (*cipolicy.FileAttributes, error) {
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

// stream feeds the file's bytes to every writer: first buf[:n], already
// read, then the rest of the file through buf. It fails if the file does not
// have exactly size bytes (it changed while being read) and stops when ctx is
// done.
func stream(ctx context.Context, f *os.File, buf []byte, n int, size int64, writers []io.Writer) error {
	total := int64(0)
	for {
		for _, w := range writers {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		total += int64(n)
		if total > size {
			return fileChanged(nil)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		n, err = f.Read(buf)
		if errors.Is(err, io.EOF) {
			if total != size {
				return fileChanged(nil)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var errChanged = errors.New("the file changed size while it was being read")

func fileChanged(err error) error {
	if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errChanged
	}
	return err
}

// binaryError converts a parser error into a MalformedBinaryError (or an
// UnreadableError for I/O failures).
func binaryError(path string, f Format, err error) error {
	var me *binfmt.MalformedError
	if errors.As(err, &me) {
		return &MalformedBinaryError{Path: path, Format: f, Offset: me.Offset, Reason: me.Reason}
	}
	var fe *modsig.FormatError
	if errors.As(err, &fe) {
		return &MalformedBinaryError{Path: path, Format: f, Offset: fe.Offset, Reason: "appended signature: " + fe.Reason}
	}
	var te *authenticode.TableError
	if errors.As(err, &te) {
		return &MalformedBinaryError{Path: path, Format: f, Offset: te.Offset,
			Reason: fmt.Sprintf("certificate table entry %d: %s", te.Index, te.Reason())}
	}
	return &UnreadableError{Path: path, Err: err}
}
