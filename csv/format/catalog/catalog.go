// Package catalog is csv's handler of Windows security catalogs (.cat
// files): recognised by their content (a PKCS#7 SignedData whose content
// type is szOID_CTL, whatever the file's name), read whole in the
// pipeline's one read (a catalog is at most limits.MaxCatalogFile bytes),
// parsed and verified with signing/authenticode/catalog. csv inspect
// lists a catalog's members (hash, algorithm, File attribute) and its
// signer; csv validate indexes the verified catalogs of a run and counts a
// file whose hash is a member as signed by the catalog's signer.
//
// A catalog is not a file a host runs: the report shows it with its
// signer and member count, and blocks it only when it is malformed or its
// signature does not verify (package csv).
//
// # Security
//
// The file is untrusted: it is read once into memory within the cap, and
// parsed and verified by signing/authenticode/catalog (strict DER, caps on
// members and attributes). A catalog whose signature does not verify
// yields no [Info.Verified], so it admits nothing.
package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/textsafe"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authcat "github.com/codesignval/csv/signing/authenticode/catalog"
	"github.com/codesignval/csv/signing/cms"
)

// Handler handles security catalogs.
type Handler struct{}

// Format implements format.Handler.
func (Handler) Format() cipolicy.Format { return cipolicy.FormatCatalog }

// Sniff implements format.Handler: the file is a DER ContentInfo of type
// signedData whose encapsulated content type is szOID_CTL, as read from
// its first bytes.
func (Handler) Sniff(f *format.File) bool { return sniff(f.Head) }

var (
	oidSignedData = cms.OIDSignedData
	oidCTL        = authenticode.OIDCTL
)

// sniff walks the headers of ContentInfo { signedData, [0] { SignedData {
// version, digestAlgorithms, encapContentInfo { szOID_CTL ...: the
// elements before the content type must be whole in head.
func sniff(head []byte) bool {
	s := head
	// enter reads a constructed element's header (its contents may go
	// past head); skip reads a whole element.
	enter := func(tag byte) bool {
		if len(s) < 2 || s[0] != tag {
			return false
		}
		n := int(s[1])
		switch {
		case n < 0x80:
			s = s[2:]
		case n == 0x80 || n > 0x84 || len(s) < 2+n-0x80:
			return false
		default:
			s = s[2+n-0x80:]
		}
		return true
	}
	skip := func(tag byte) bool {
		if len(s) < 2 || s[0] != tag {
			return false
		}
		n, hdr := int(s[1]), 2
		if n >= 0x80 {
			k := n - 0x80
			if k == 0 || k > 2 || len(s) < 2+k {
				return false
			}
			n = 0
			for _, b := range s[2 : 2+k] {
				n = n<<8 | int(b)
			}
			hdr += k
		}
		if len(s) < hdr+n {
			return false
		}
		s = s[hdr+n:]
		return true
	}
	if !enter(0x30) || !bytes.HasPrefix(s, oidSignedData) {
		return false
	}
	s = s[len(oidSignedData):]
	return enter(0xa0) && enter(0x30) && skip(0x02) && skip(0x31) && enter(0x30) && bytes.HasPrefix(s, oidCTL)
}

// Member is one member as reports and csv inspect show it.
type Member struct {
	Tag       string `json:"tag"`
	Algorithm string `json:"algorithm,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Type      string `json:"type,omitempty"`
	File      string `json:"file,omitempty"`
}

// Attribute is a catalog attribute (a name/value pair).
type Attribute struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Info is what inspection learns of a catalog.
type Info struct {
	Version        int         `json:"version"`
	ListIdentifier string      `json:"list_identifier,omitempty"`
	ThisUpdate     *time.Time  `json:"this_update,omitempty"`
	Signed         bool        `json:"signed"`
	Verified       bool        `json:"verified"`
	MemberCount    int         `json:"member_count"`
	Members        []Member    `json:"members,omitempty"`
	Attributes     []Attribute `json:"attributes,omitempty"`

	verified *authcat.Verified
	problem  error
}

// Catalog returns the verified catalog, nil unless its signature verified:
// what admits files.
func (i *Info) Catalog() *authcat.Verified { return i.verified }

// Problem says why the catalog admits nothing (unsigned, its signature
// does not verify); nil when it verified, or when it was not read.
func (i *Info) Problem() error { return i.problem }

// Describe implements format.Info.
func (i *Info) Describe() string {
	state := "signature verified"
	switch {
	case !i.Signed:
		state = "unsigned"
	case !i.Verified:
		state = "signature does not verify"
	}
	return fmt.Sprintf("security catalog v%d (%s, %s)", i.Version, textsafe.Plural(i.MemberCount, "member", "members"), state)
}

// WriteText implements format.Info: the list's identity and its members.
func (i *Info) WriteText(w io.Writer, row func(key, value string)) {
	if i.ListIdentifier != "" {
		row("list identifier", i.ListIdentifier)
	}
	if i.ThisUpdate != nil {
		row("this update", i.ThisUpdate.UTC().Format(time.RFC3339))
	}
	for _, a := range i.Attributes {
		row("attribute "+a.Name, a.Value)
	}
	if i.problem != nil {
		row("admits", "nothing: "+i.problem.Error())
	}
	row("members", fmt.Sprint(i.MemberCount))
	for _, m := range i.Members {
		line := "    " + textsafe.Escape(m.Tag)
		if m.Digest != "" {
			line = fmt.Sprintf("    %s %s", m.Algorithm, m.Digest)
		}
		if m.Type != "" {
			line += " (" + m.Type + ")"
		}
		if m.File != "" {
			line += " " + textsafe.Escape(m.File)
		}
		fmt.Fprintln(w, line)
	}
}

// Inspect implements format.Handler: the catalog is read whole in the
// pass (its size capped first), then parsed and verified in the finish.
// Its signatures are the facts' Signatures whatever need says (the run's
// catalog index needs them), and a catalog that is malformed is a
// *format.MalformedError; one whose signature does not verify is not
// malformed: Info says why it admits nothing.
func (Handler) Inspect(f *format.File, need cipolicy.Needs, opts *format.InspectOptions, p *format.Pass, facts *format.Facts) (func() error, error) {
	if f.Size > limits.MaxCatalogFile {
		return nil, &format.MalformedError{Format: cipolicy.FormatCatalog, Offset: -1,
			Reason: fmt.Sprintf("a %d-byte catalog (at most %d)", f.Size, limits.MaxCatalogFile), Err: signing.ErrLimit}
	}
	info := &Info{}
	facts.Info = info
	buf := &bytes.Buffer{}
	buf.Grow(int(f.Size))
	p.Write(buf)
	return func() error {
		c, err := authcat.Parse(buf.Bytes())
		if err != nil {
			return malformed(err)
		}
		fill(info, c)
		facts.Signed = c.Signed
		sigs, v, err := c.Verify(authenticode.VerifyOptions{Certificates: opts.Certificates, Cache: opts.Cache})
		var me *signing.MalformedError
		if errors.As(err, &me) {
			return malformed(err)
		}
		if sigs == nil {
			sigs = []*signing.Signature{}
		}
		facts.Signatures = sigs
		info.verified, info.problem, info.Verified = v, err, v != nil
		return nil
	}, nil
}

// fill copies what reports show of c into info.
func fill(info *Info, c *authcat.Catalog) {
	info.Version, info.Signed, info.MemberCount = c.Version, c.Signed, len(c.Members)
	if len(c.ListIdentifier) > 0 {
		info.ListIdentifier = strings.ToUpper(hex.EncodeToString(c.ListIdentifier))
	}
	if !c.ThisUpdate.IsZero() {
		t := c.ThisUpdate
		info.ThisUpdate = &t
	}
	for _, a := range c.Attributes {
		info.Attributes = append(info.Attributes, Attribute{Name: a.Name, Value: a.Value})
	}
	info.Members = make([]Member, len(c.Members))
	for i, m := range c.Members {
		im := Member{Tag: m.Tag, File: m.File, Type: dataType(m.DataType)}
		if m.Digest != nil {
			im.Algorithm, im.Digest = cms.HashName(m.Algorithm), hex.EncodeToString(m.Digest)
		}
		info.Members[i] = im
	}
}

// dataType names a member's data type.
func dataType(oid cms.OID) string {
	switch {
	case oid == nil:
		return ""
	case oid.Equal(authcat.OIDSpcPEImageData):
		return "PE image"
	case oid.Equal(authcat.OIDSpcCabData):
		return "flat file"
	case oid.Equal(authcat.OIDSpcSIPInfo):
		return "SIP"
	}
	return oid.String()
}

// malformed turns what the parsers found into a *format.MalformedError.
func malformed(err error) error {
	if err == nil {
		return nil
	}
	var me *format.MalformedError
	if errors.As(err, &me) {
		return err
	}
	if m := format.Malformed(cipolicy.FormatCatalog, err); m != err {
		return m
	}
	return &format.MalformedError{Format: cipolicy.FormatCatalog, Offset: -1, Reason: err.Error(), Err: err}
}

// Sign implements format.Handler: the catalog's list signed anew by
// opts.Key (its signature replaced; a catalog holds one, so Append is
// refused with format.ErrOneSignature). With opts.Expect, the file read
// must be the SHA256 validation saw.
func (Handler) Sign(ctx context.Context, f *format.File, out format.Output, opts *format.SignOptions) (*format.Signed, error) {
	if opts.Append {
		return nil, fmt.Errorf("catalog: append: a catalog holds one signature: %w", format.ErrOneSignature)
	}
	if f.Size > limits.MaxCatalogFile {
		return nil, fmt.Errorf("catalog: a %d-byte catalog (at most %d): %w", f.Size, limits.MaxCatalogFile, signing.ErrLimit)
	}
	buf := &bytes.Buffer{}
	buf.Grow(int(f.Size))
	h := sha256.New()
	if err := f.Stream(ctx, buf, h); err != nil {
		return nil, err
	}
	if opts.Expect != nil {
		if want, got := opts.Expect.Get(cipolicy.SHA256), h.Sum(nil); !bytes.Equal(want, got) {
			return nil, fmt.Errorf("%w: SHA256 %x when validated, %x now", format.ErrChanged, want, got)
		}
	}
	c, err := authcat.Parse(buf.Bytes())
	if err != nil {
		return nil, malformed(err)
	}
	s, err := authenticode.NewSigner(opts.Key, opts.Chain, opts.Authenticode)
	if err != nil {
		return nil, err
	}
	der, err := authcat.Sign(ctx, s, c.CTL())
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(der); err != nil {
		return nil, err
	}
	res := &format.Signed{}
	if opts.Sum {
		sum := sha256.Sum256(der)
		res.SHA256 = sum[:]
	}
	return res, nil
}
