package csv

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/safefile"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/fsverity"
	"github.com/codesignval/csv/signing/ima"
)

// IMA appraisal signatures in a run. A file's security.ima value comes
// from, in order: the file's own extended attribute (a loose file, on
// Linux; a file system without extended attributes has none), its sidecar
// FILE.sig as `evmctl ima_sign --sigfile` writes it (a loose file without
// the attribute), or a tar or OCI layer member's PAX record
// SCHILY.xattr.security.ima. The pipeline reads the value before the
// file's one read, adds the digest the value needs to that read (the
// signature's hash algorithm), and once the file is read verifies it
// against the run's certificates (--certs: the IMA keyring), adding a
// signing.Signature of format "ima" to the file's signatures, which signer
// rules judge like any other.
//
// A Linux host that appraises a file refuses it when its security.ima
// does not hold: so does csv, whatever the policy's rules say. A value
// that is malformed, a signature that does not verify (or whose key is not
// among the certificates), a digest that is not the file's, an EVM value
// in security.ima (IMA refuses it) or a version 3 signature whose
// fs-verity digest the run did not compute blocks the file, saying why.

// fileIMA returns a loose file's security.ima value (f is the open file,
// path its name): the extended attribute, or the sidecar path+".sig". A
// sidecar over limits.MaxIMAValue bytes, not a regular file, or whose
// first byte is no IMA type is not an IMA sidecar (a detached OpenPGP
// signature, say) and is ignored; a sidecar that cannot be read (a
// symbolic link among them) is an error that blocks the file, as is an
// attribute that cannot be read. sidecar false: the caller knows there is
// no sidecar (the directory's listing has none).
func fileIMA(f *os.File, path string, sidecar bool) (map[string][]byte, string, error) {
	v, err := readIMAXattr(f)
	if err != nil {
		return nil, "", &UnreadableError{Path: path, Err: fmt.Errorf("reading its %s attribute: %w", ima.XattrName, err)}
	}
	if v != nil {
		return map[string][]byte{ima.XattrName: v}, "the " + ima.XattrName + " attribute", nil
	}
	if !sidecar {
		return nil, "", nil
	}
	side := path + ".sig"
	b, err := readSidecar(side)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotSidecar) || errors.Is(err, safefile.ErrNotRegular):
		return nil, "", nil
	case err != nil:
		return nil, "", &UnreadableError{Path: path, Err: fmt.Errorf("reading its IMA sidecar %s: %w", filepath.Base(side), err)}
	case len(b) == 0 || b[0] < byte(ima.TypeDigest) || b[0] > byte(ima.TypeVerityDigsig):
		return nil, "", nil
	}
	return map[string][]byte{ima.XattrName: b}, "the sidecar " + filepath.Base(side), nil
}

var errNotSidecar = errors.New("not an IMA sidecar")

// readSidecar reads an IMA sidecar, at most limits.MaxIMAValue bytes (a
// larger file is errNotSidecar). A symbolic link is not followed (the
// error says so): a sidecar is the tree's own file, as the binary is.
func readSidecar(side string) ([]byte, error) {
	f, st, err := safefile.Open(side, safefile.Options{NoFollow: true})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err // no sidecar (the common case: no second look)
		}
		if st, lerr := os.Lstat(side); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil, errors.New("it is a symbolic link, which csv does not follow for a sidecar")
		}
		return nil, err
	}
	defer f.Close()
	if st.Size() > limits.MaxIMAValue {
		return nil, errNotSidecar
	}
	b, err := io.ReadAll(io.LimitReader(f, limits.MaxIMAValue+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limits.MaxIMAValue {
		return nil, errNotSidecar
	}
	return b, nil
}

// memberIMA returns a container member's stored attributes, as fileIMA a
// loose file's.
func memberIMA(attrs map[string][]byte) (map[string][]byte, string) {
	if _, ok := attrs[ima.XattrName]; !ok {
		return nil, ""
	}
	return attrs, "the PAX record SCHILY.xattr." + ima.XattrName
}

// storedIMA judges the security.ima of a container member that is itself
// a container (a compressed module m.ko.xz in a layer, whose content csv
// judges as a member of its own): d is its bytes as stored, which a host
// appraising the file checks the value against (the kernel loads m.ko.xz
// as it is). It returns the error that blocks the member, nil when the
// value holds or there is none.
func storedIMA(rel string, attrs map[string][]byte, d []byte, keyring []*signing.Certificate, cache *signing.CertCache) error {
	file := &format.File{}
	if file.Attrs, file.AttrsFrom = memberIMA(attrs); file.Attrs == nil {
		return nil
	}
	var p format.Pass
	c := startIMA(file, &p)
	for _, w := range p.Writers() {
		w.Write(d)
	}
	in := &Inspection{Format: FormatOther}
	c.finish(rel, in, keyring, cache)
	return in.Err
}

// imaCheck is one file's security.ima value during its read.
type imaCheck struct {
	from string
	v    *ima.Value
	err  error
	h    hash.Hash // the file's digest the value needs, fed by the read
}

// startIMA parses the file's security.ima value, if it has one, and adds
// the digest it needs to the read. It returns nil for a file without one.
func startIMA(file *format.File, p *format.Pass) *imaCheck {
	raw, ok := file.Attrs[ima.XattrName]
	if !ok {
		return nil
	}
	c := &imaCheck{from: file.AttrsFrom}
	if c.v, c.err = ima.Parse(raw); c.err != nil {
		return c
	}
	if c.v.Type == ima.TypeVerityDigsig {
		// It signs the fs-verity digest, not the content: computed in the
		// same read.
		if c.v.HashAlgo == ima.HashSHA256 {
			c.h = fsverity.New()
			p.Write(c.h)
		}
		return c
	}
	if h, err := c.v.HashAlgo.Hash(); err == nil && h.Available() {
		c.h = h.New()
		p.Write(c.h)
	}
	return c
}

// finish judges the value once the file is read: it adds the signature to
// in's, or sets in.Err when a host appraising the file would refuse it.
func (c *imaCheck) finish(path string, in *Inspection, keyring []*signing.Certificate, cache *signing.CertCache) {
	if c == nil || in.Err != nil {
		return
	}
	refuse := func(err error, reason string, args ...any) {
		reason = fmt.Sprintf(reason, args...)
		var me *signing.MalformedError
		if errors.As(err, &me) {
			reason += ": " + me.Reason
		} else if err != nil {
			reason += ": " + err.Error()
		}
		// The offset is -1: a value's offsets are not the file's.
		in.Err = &MalformedBinaryError{Path: path, Format: in.Format, Offset: -1,
			Reason: fmt.Sprintf("%s from %s: %s", ima.XattrName, c.from, reason), Err: err}
	}
	if c.err != nil {
		refuse(c.err, "a value IMA appraisal cannot read")
		return
	}
	var digest []byte
	switch {
	case c.h != nil:
		digest = c.h.Sum(nil)
	}
	switch c.v.Type {
	case ima.TypeDigsig, ima.TypeVerityDigsig:
		s := c.v.VerifyCached(digest, keyring, nil, cache)
		in.Signatures = append(in.Signatures, s)
		in.signed = true
		if !s.Verified() {
			refuse(s.Problem, "the %s does not verify, and a Linux host appraising the file refuses it", c.v.Describe())
		}
	case ima.TypeDigest, ima.TypeDigestNG:
		if err := c.v.CheckDigest(digest); err != nil {
			refuse(err, "the %s is not the file's, and a Linux host appraising the file refuses it", c.v.Describe())
		}
	default:
		refuse(nil, "an %s, which belongs in security.evm: IMA appraisal refuses it", c.v.Describe())
	}
}

// errNoXattr says a file's security.ima cannot be set where it is.
var errNoXattr = errors.New("no extended attributes")
