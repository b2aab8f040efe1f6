// Package appx is csv's handler of MSIX and APPX packages and bundles
// (.msix, .appx, .msixbundle, .appxbundle): zip archives whose signature
// is the member AppxSignature.p7x over the package's records, central
// directory, content types, block map and code integrity catalog, and
// whose block map holds the hash of every 64 KiB of every member
// (signing/authenticode/appx). The package file is judged as format
// "appx" by its own signature, as Windows' App Installer judges it, and
// its members are walked as the members of a zip (container/appx), each
// judged as a loose file.
//
// Packages are told by their name's extension and a zip's first bytes: a
// package's own parts (AppxSignature.p7x, AppxBlockMap.xml) lie at the end
// of the zip, past the bytes the pipeline sniffs, and a zip named
// otherwise is walked as a zip, its package signature not judged.
//
// # What blocks a package
//
// A zip csv cannot read as a package (see signing/authenticode/appx: a
// byte in no record, the signature not last, a repeated name), a package
// without a block map or whose block map does not describe its members
// exactly (a member it does not list, a file it lists that is missing, a
// size or LfhSize that disagrees, a bad block hash), and a signature that
// does not verify are malformed: the file is blocked, naming the member,
// and its members are not walked. A signature Windows would not count (its
// signer's subject is not the manifest's Identity Publisher, another SIP,
// another hash than the block map's) admits nothing for Windows: the
// policy blocks the package unless a rule admits it otherwise.
//
// The digest hash rules compare is the file's SHA256: signing a package
// rewrites [Content_Types].xml and the end of the zip, so no digest of an
// unsigned package survives signing (Windows' own package rules name the
// package family and publisher, not a hash).
package appx

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/appx"
)

// Handler handles MSIX/APPX packages and bundles.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatAPPX }

// Extensions are the file name extensions of packages and bundles.
var Extensions = []string{".appx", ".msix", ".appxbundle", ".msixbundle"}

// Named reports whether a file name has a package's extension.
func Named(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// Sniff implements format.Handler: a file named as a package that starts
// as a zip does (a local file header, or an empty archive's end record).
func (Handler) Sniff(f *format.File) bool {
	return Named(f.Name) && len(f.Head) >= 4 && (string(f.Head[:4]) == "PK\x03\x04" || string(f.Head[:4]) == "PK\x05\x06")
}

// Info is what inspection learns of a package.
type Info struct {
	// Kind is "package" or "bundle".
	Kind    string `json:"kind"`
	Members int    `json:"members"`
	// HashMethod is the block map's (SHA256, SHA384, SHA512).
	HashMethod string `json:"hash_method,omitempty"`
	// Publisher is the manifest's Identity Publisher.
	Publisher string `json:"publisher,omitempty"`
	// Signature is the size of AppxSignature.p7x's signature (0 when
	// unsigned).
	Signature int `json:"signature_size,omitempty"`
	// CodeIntegrity says the package carries
	// AppxMetadata/CodeIntegrity.cat, which the signature covers.
	CodeIntegrity bool `json:"code_integrity,omitempty"`
}

// Describe implements format.Info.
func (i *Info) Describe() string {
	s := fmt.Sprintf("MSIX/APPX %s (%d members", i.Kind, i.Members)
	if i.HashMethod != "" {
		s += ", block map " + i.HashMethod
	}
	return s + ")"
}

// WriteText implements format.Info.
func (i *Info) WriteText(_ io.Writer, row func(key, value string)) {
	if i.Publisher != "" {
		row("publisher", i.Publisher)
	}
	if i.Signature == 0 {
		row("signature", "none (unsigned)")
		return
	}
	v := fmt.Sprintf("AppxSignature.p7x, %d bytes", i.Signature)
	if i.CodeIntegrity {
		v += ", with AppxMetadata/CodeIntegrity.cat"
	}
	row("signature", v)
}

func info(p *appx.Package) *Info {
	in := &Info{Kind: p.Kind(), Members: len(p.Entries), Publisher: p.Publisher,
		Signature: len(p.Signature()), CodeIntegrity: p.Entry(appx.CodeIntegrityName) != nil}
	if p.BlockMap != nil {
		in.HashMethod = strings.ReplaceAll(p.BlockMap.HashMethod.String(), "-", "")
	}
	return in
}

// ErrNoBlockMap: a package without AppxBlockMap.xml, whose members
// nothing vouches for.
var ErrNoBlockMap = errors.New("appx: the package has no AppxBlockMap.xml")

// parse parses the package and checks its block map against every
// member.
func parse(r io.ReaderAt, size int64, facts *format.Facts) (*appx.Package, error) {
	p, err := appx.Parse(r, size)
	if err != nil {
		return nil, malformed(err)
	}
	if facts != nil {
		facts.Info = info(p)
		facts.Signed = p.Signed()
	}
	if p.BlockMap == nil {
		return nil, &format.MalformedError{Format: cipolicy.FormatAPPX, Offset: -1, Err: ErrNoBlockMap,
			Reason: "it has no AppxBlockMap.xml: nothing vouches for its members (MakeAppx writes one in every package)"}
	}
	if err := p.CheckBlockMap(); err != nil {
		return nil, malformed(err)
	}
	return p, nil
}

// Inspect implements format.Handler: the package's structure, its block
// map against every member (each member read once, by random access), and
// the APPX digests its signature needs; the verifier checks the
// signature.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	pkg, err := parse(f.R, f.Size, facts)
	if err != nil {
		return nil, err
	}
	if !pkg.Signed() {
		return nil, nil
	}
	if !need.Signatures {
		// Whatever the policy matches, a signature member that holds
		// anything but an Authenticode signature makes the package
		// malformed.
		if err := authenticode.CheckStructure(pkg, opts.Cache); err != nil {
			return nil, malformed(err)
		}
		return nil, nil
	}
	var hs []crypto.Hash
	for _, h := range authenticode.DigestAlgorithms(pkg) {
		if h.Available() {
			hs = append(hs, h)
		}
	}
	sums, err := pkg.Digests(hs...)
	if err != nil {
		return nil, malformed(err)
	}
	return func() error {
		sigs, err := appx.Verify(pkg, sums, authenticode.VerifyOptions{Certificates: opts.Certificates, Cache: opts.Cache})
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

// malformed turns what the parsers found into a *format.MalformedError.
func malformed(err error) error {
	return format.MalformedAs(cipolicy.FormatAPPX, err, appx.Format)
}

// Sign implements format.Handler: the package written anew with
// AppxSignature.p7x (signing/authenticode/appx.Sign), signed with the
// block map's hash method whatever the options ask (as osslsigncode
// does; a warning says so). The signing certificate's subject must be the
// manifest's Publisher. With opts.Expect, the file's SHA256 must be the
// one validation saw, before and after it is signed (the members are read
// again to be copied: a package that changed meanwhile is refused,
// format.ErrChanged).
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	pkg, err := parse(f.R, f.Size, nil)
	if err != nil {
		return nil, err
	}
	if opts.Append {
		return nil, signing.Errorf(format.ErrOneSignature, "appx: a package carries one signature (AppxSignature.p7x): it cannot take a second")
	}
	if len(opts.Chain) == 0 {
		return nil, errors.New("appx: sign: no certificate chain")
	}
	var warnings []string
	ao := opts.Authenticode
	if method := pkg.BlockMap.HashMethod; ao.Hash != method {
		if ao.Hash != 0 && ao.Hash != crypto.SHA256 {
			warnings = append(warnings, fmt.Sprintf("a package is signed with its block map's hash method, %v, not %v", method, ao.Hash))
		}
		ao.Hash = method
	}
	sum := func() ([]byte, error) {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f.R, 0, f.Size)); err != nil {
			return nil, err
		}
		return h.Sum(nil), nil
	}
	checkSame := func(when string) error {
		if opts.Expect == nil {
			return nil
		}
		got, err := sum()
		if err != nil {
			return err
		}
		if want := opts.Expect.Get(cipolicy.SHA256); !bytes.Equal(want, got) {
			return signing.Errorf(format.ErrChanged, "appx: the file changed %s: SHA256 %x when validated, %x now", when, want, got)
		}
		return nil
	}
	if err := checkSame("after it was validated"); err != nil {
		return nil, err
	}
	signer, err := authenticode.NewSigner(opts.Key, opts.Chain, ao)
	if err != nil {
		return nil, err
	}
	var w io.Writer = out
	var whole hash.Hash
	if opts.Sum {
		whole = sha256.New()
		w = io.MultiWriter(out, whole)
	}
	res, err := appx.Sign(ctx, f.R, f.Size, w, signer, opts.Chain[0].RawSubject, appx.SignOptions{})
	if err != nil {
		return nil, malformed(err)
	}
	if err := checkSame("while it was signed"); err != nil {
		return nil, err
	}
	s := &format.Signed{Warnings: append(warnings, res.Warnings...)}
	if whole != nil {
		s.SHA256 = whole.Sum(nil)
	}
	return s, nil
}
