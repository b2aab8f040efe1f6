package facts

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/verifiedby"
	"github.com/codesignval/csv/signing"
)

// SetDigests records d in r.
func (r *Record) SetDigests(d cipolicy.Digests) {
	r.Digests = nil
	d.Each(func(a cipolicy.HashAlgorithm, v []byte) {
		if r.Digests == nil {
			r.Digests = map[cipolicy.HashAlgorithm]string{}
		}
		r.Digests[a] = hex.EncodeToString(v)
	})
}

// SetSignatures records sigs in r: the file's own (the first own), then
// those of the catalogs named by catalogs (one name per signature after
// the own ones). A nil sigs records that signatures were not established.
func (r *Record) SetSignatures(sigs []*signing.Signature, own int, catalogs []string) {
	r.Signatures, r.Certificates = nil, nil
	if sigs == nil {
		return
	}
	r.Signatures = make([]Signature, 0, len(sigs))
	index := map[[32]byte]int{}
	ref := func(c *signing.Certificate) int {
		if i, ok := index[c.SHA256]; ok {
			return i
		}
		index[c.SHA256] = len(r.Certificates)
		r.Certificates = append(r.Certificates, Certificate{DER: c.Raw, TBSHash: c.TBSHashHex(), Subject: c.CommonName()})
		return len(r.Certificates) - 1
	}
	chains := func(cs [][]*signing.Certificate) [][]int {
		out := make([][]int, 0, len(cs))
		for _, chain := range cs {
			l := make([]int, 0, len(chain))
			for _, c := range chain {
				l = append(l, ref(c))
			}
			out = append(out, l)
		}
		return out
	}
	for i, s := range sigs {
		f := Signature{Format: s.Format, Index: s.Index, Path: s.Path, Verified: s.Verified(),
			DigestAlgorithm: hashName(s.DigestAlgorithm), SignatureAlgorithm: s.SignatureAlgorithm,
			Chains: chains(s.Chains), Certificates: []int{}, PageHashes: hashName(s.PageHashes)}
		if s.Digest != nil {
			f.Digest = hex.EncodeToString(s.Digest)
		}
		for _, h := range s.SignerDigests {
			f.SignerDigests = append(f.SignerDigests, hashName(h))
		}
		for _, c := range s.Certificates {
			f.Certificates = append(f.Certificates, ref(c))
		}
		if s.Problem != nil {
			f.Problem = s.Problem.Error()
			f.SignerNotFound = errors.Is(s.Problem, signing.ErrSignerNotFound)
		}
		if ts := s.Timestamp; ts != nil {
			t := &Timestamp{Kind: ts.Kind, Time: ts.Time, Verified: ts.Verified(), Chains: chains(ts.Chains)}
			if ts.Problem != nil {
				t.Problem = ts.Problem.Error()
			}
			f.Timestamp = t
		}
		for h, why := range s.IgnoredBy {
			if f.IgnoredBy == nil {
				f.IgnoredBy = map[string]string{}
			}
			f.IgnoredBy[string(h)] = why
		}
		if i >= own && i-own < len(catalogs) {
			f.Catalog = catalogs[i-own]
		}
		r.Signatures = append(r.Signatures, f)
	}
}

// SetAttributes records a in r.
func (r *Record) SetAttributes(a *cipolicy.FileAttributes) {
	r.Attributes = attributesOf(a)
}

func attributesOf(a *cipolicy.FileAttributes) *Attributes {
	if a == nil {
		return nil
	}
	out := &Attributes{OriginalFileName: a.OriginalFileName, InternalName: a.InternalName,
		FileDescription: a.FileDescription, ProductName: a.ProductName}
	if a.FileVersion != nil {
		out.FileVersion = a.FileVersion.String()
	}
	for i := range a.Alternatives {
		out.Alternatives = append(out.Alternatives, *attributesOf(&a.Alternatives[i]))
	}
	return out
}

// hashName is Go's name of h ("SHA-256"), "" for none.
func hashName(h crypto.Hash) string {
	if h == 0 {
		return ""
	}
	return h.String()
}

// parseHash reads hashName's output.
func parseHash(s string) (crypto.Hash, error) {
	if s == "" {
		return 0, nil
	}
	for h := crypto.MD4; h <= crypto.BLAKE2b_512; h++ {
		if h.String() == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("unknown hash %q", s)
}

// Subject is a record's facts as package cipolicy takes them.
type Subject struct {
	Digests Digests
	// Signatures are the file's own (the first Own), then its catalogs'
	// (Catalogs names the catalog of each after the own ones).
	Signatures []*signing.Signature
	Own        int
	Catalogs   []string
	Attributes *cipolicy.FileAttributes
	// Lookup is CatalogLookup.
	Lookup cipolicy.DigestSet
	// inline holds the digests of a record of two or fewer.
	inline [2]digest
}

// maxDigest is the longest digest a record holds (cipolicy's are at most
// 32 bytes; TestDigestsFit holds it to them).
const maxDigest = 64

// Digests are a record's digests, decoded.
type Digests struct{ d []digest }

type digest struct {
	alg cipolicy.HashAlgorithm
	n   uint8
	v   [maxDigest]byte
}

// Get returns the digest of algorithm a, or nil.
func (d *Digests) Get(a cipolicy.HashAlgorithm) []byte {
	for i := range d.d {
		if e := &d.d[i]; e.alg == a {
			return e.v[:e.n:e.n]
		}
	}
	return nil
}

// Algorithms returns the algorithms of the digests.
func (d *Digests) Algorithms() cipolicy.DigestSet {
	var s cipolicy.DigestSet
	for i := range d.d {
		s = s.With(d.d[i].alg)
	}
	return s
}

// Len returns the number of digests.
func (d *Digests) Len() int { return len(d.d) }

// Each calls f with each digest (in no order).
func (d *Digests) Each(f func(cipolicy.HashAlgorithm, []byte)) {
	for i := range d.d {
		e := &d.d[i]
		f(e.alg, e.v[:e.n:e.n])
	}
}

// problem is a recorded problem: its text, and whether it is
// signing.ErrSignerNotFound (which cipolicy's reasons branch on).
type problem struct {
	msg      string
	notFound bool
}

func (p *problem) Error() string { return p.msg }

func (p *problem) Is(target error) bool { return p.notFound && target == signing.ErrSignerNotFound }

// certCache keeps parsed certificates by their DER across the records of
// a file: a build's files carry the same few chains. Bounded: it is
// emptied when full.
type certCache map[string]*signing.Certificate

const maxCachedCerts = 4096

func (c certCache) parse(der []byte) (*signing.Certificate, error) {
	if cert, ok := c[string(der)]; ok {
		return cert, nil
	}
	cert, err := signing.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if len(c) >= maxCachedCerts {
		clear(c)
	}
	c[string(der)] = cert
	return cert, nil
}

// resolve returns the certificate c is: given in full (its DER, checked
// against its tbs_hash and subject), or named by its SHA-256 fingerprint
// after a certificate line of the file defined it.
func (c *Certificate) resolve(cache certCache, defined certRefs) (*signing.Certificate, error) {
	if c.SHA256 != "" {
		if c.DER != nil || c.TBSHash != "" || c.Subject != "" {
			return nil, errors.New("both a sha256 reference and the certificate")
		}
		var fp [32]byte
		if !decodeHex(fp[:], c.SHA256) {
			return nil, errors.New("sha256: want 32 bytes of hex")
		}
		cert := defined.t.get(fp, defined.line)
		if cert == nil {
			return nil, fmt.Errorf("sha256 %s: no certificate line before it defines it", c.SHA256)
		}
		return cert, nil
	}
	if len(c.DER) > limits.MaxFactsCertificate {
		return nil, fmt.Errorf("%d bytes, over the limit of %d", len(c.DER), limits.MaxFactsCertificate)
	}
	cert, err := cache.parse(c.DER)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(c.TBSHash, cert.TBSHashHex()) || c.Subject != cert.CommonName() {
		return nil, errors.New("its tbs_hash or subject is not the DER's")
	}
	return cert, nil
}

// certTable is the certificates a facts file's certificate lines define,
// by SHA-256 fingerprint, with the line that defined each: written by the
// Reader as it reads lines, read by Decoders on other goroutines (which
// may decode a record while the Reader defines certificates of later
// lines: a record sees only those defined before it).
type certTable struct {
	mu    sync.RWMutex
	m     map[[32]byte]definedCert
	bytes int
}

type definedCert struct {
	cert *signing.Certificate
	line int
	// full is the certificate as a record holds it in full (made once,
	// not for every record that names it).
	full Certificate
}

// certRefs are the certificates a record on line may name: those of t
// defined on earlier lines.
type certRefs struct {
	t    *certTable
	line int
}

// fullOf returns the defined certificate c in full.
func (t *certTable) fullOf(c *signing.Certificate) Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if d, ok := t.m[c.SHA256]; ok && d.cert == c {
		return d.full
	}
	return Certificate{DER: c.Raw, TBSHash: c.TBSHashHex(), Subject: c.CommonName()}
}

// get returns the certificate fp defined before line, or nil.
func (t *certTable) get(fp [32]byte, line int) *signing.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if d, ok := t.m[fp]; ok && d.line < line {
		return d.cert
	}
	return nil
}

func (t *certTable) add(c *signing.Certificate, line int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[c.SHA256]; ok {
		return nil
	}
	if len(t.m) >= limits.MaxFactsFileCertificates {
		return fmt.Errorf("more than %d certificates defined", limits.MaxFactsFileCertificates)
	}
	if t.bytes += len(c.Raw); t.bytes > limits.MaxFactsCertificateBytes {
		return fmt.Errorf("certificates of more than %d bytes defined", limits.MaxFactsCertificateBytes)
	}
	t.m[c.SHA256] = definedCert{c, line, Certificate{DER: c.Raw, TBSHash: c.TBSHashHex(), Subject: c.CommonName()}}
	return nil
}

// subject checks r (Record's caps, every index, every encoding) and
// returns its facts.
func (r *Record) subject(cache certCache, defined certRefs) (*Subject, error) {
	s := new(Subject)
	return s, r.fill(s, cache, defined, nil)
}

// fill is subject, into s (zero). digests, if not nil, are r.Digests as
// the decoder read them (a list is quicker to go through than a map).
func (r *Record) fill(s *Subject, cache certCache, defined certRefs, digests []digestText) error {
	if err := checkText("root", r.Root); err != nil {
		return err
	}
	if err := checkText("path", r.Path); err != nil {
		return err
	}
	if r.Path == "" {
		return errors.New("record without a path")
	}
	if r.Skipped != "" {
		if err := checkText("skipped", r.Skipped); err != nil {
			return err
		}
		if r.Format != "" || r.Size != 0 || r.Digests != nil || r.Signed || r.Signatures != nil || r.Certificates != nil ||
			r.Attributes != nil || r.Relocatable || r.Decompressed || r.Catalog != nil || r.Problem != "" || r.CatalogLookup != nil {
			return errors.New("a skipped record holds facts")
		}
		return nil
	}
	if _, err := cipolicy.ParseFormat(string(r.Format)); err != nil || r.Format == cipolicy.FormatOther {
		return fmt.Errorf("format %q: not a format csv judges", r.Format)
	}
	if r.Size < 0 {
		return fmt.Errorf("size %d", r.Size)
	}
	if err := checkText("problem", r.Problem); err != nil {
		return err
	}
	if len(r.Digests) > 0 {
		// Every digest decoded straight into its fixed array, all in one
		// allocation (none for two).
		if len(r.Digests) <= len(s.inline) {
			s.Digests.d = s.inline[:0:len(r.Digests)]
		} else {
			s.Digests.d = make([]digest, 0, len(r.Digests))
		}
		if digests == nil {
			for a, v := range r.Digests {
				digests = append(digests, digestText{a, v})
			}
		}
		for _, dt := range digests {
			a, v := dt.a, dt.v
			n := a.Size()
			if n == 0 {
				return fmt.Errorf("digest %q: unknown algorithm", a)
			}
			if n > maxDigest {
				return fmt.Errorf("digest %s: %d bytes, over the %d a record holds", a, n, maxDigest)
			}
			s.Digests.d = append(s.Digests.d, digest{alg: a, n: uint8(n)})
			if !decodeHex(s.Digests.d[len(s.Digests.d)-1].v[:n], v) {
				return fmt.Errorf("digest %s: want %d bytes of hex", a, n)
			}
		}
	}
	if len(r.CatalogLookup) > len(cipolicy.HashAlgorithms) {
		return errors.New("catalog_lookup: too many digests")
	}
	for _, a := range r.CatalogLookup {
		if a.Size() == 0 {
			return fmt.Errorf("catalog_lookup %q: unknown algorithm", a)
		}
		s.Lookup = s.Lookup.With(a)
	}
	if r.Catalog != nil {
		if r.Format != cipolicy.FormatCatalog {
			return fmt.Errorf("catalog_file facts for a %s file", r.Format)
		}
		if r.Catalog.Members < 0 || r.Catalog.Verified && !r.Catalog.Signed {
			return errors.New("catalog_file: inconsistent")
		}
		if err := checkText("catalog_file problem", r.Catalog.Problem); err != nil {
			return err
		}
	}
	if r.Attributes != nil {
		a, err := r.Attributes.decode(true)
		if err != nil {
			return err
		}
		s.Attributes = a
	}
	if len(r.Certificates) > limits.MaxFactsCertificates {
		return fmt.Errorf("%d certificates, over the limit of %d", len(r.Certificates), limits.MaxFactsCertificates)
	}
	if len(r.Signatures) > limits.MaxFactsSignatures {
		return fmt.Errorf("%d signatures, over the limit of %d", len(r.Signatures), limits.MaxFactsSignatures)
	}
	if r.Signatures == nil {
		if len(r.Certificates) > 0 {
			return errors.New("certificates without signatures")
		}
		return nil
	}
	certs := make([]*signing.Certificate, len(r.Certificates))
	for i, c := range r.Certificates {
		cert, err := c.resolve(cache, defined)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", i, err)
		}
		certs[i] = cert
		if c.SHA256 != "" {
			// The record read is whole: it may be written elsewhere.
			r.Certificates[i] = defined.t.fullOf(cert)
		}
	}
	cert := func(i int) (*signing.Certificate, error) {
		if i < 0 || i >= len(certs) {
			return nil, fmt.Errorf("certificate index %d out of range", i)
		}
		return certs[i], nil
	}
	chains := func(ix [][]int) ([][]*signing.Certificate, error) {
		if len(ix) > limits.MaxFactsChains {
			return nil, fmt.Errorf("%d chains, over the limit of %d", len(ix), limits.MaxFactsChains)
		}
		out := make([][]*signing.Certificate, 0, len(ix))
		for _, l := range ix {
			if len(l) == 0 || len(l) > limits.MaxFactsChainDepth {
				return nil, fmt.Errorf("a chain of %d certificates (want 1 to %d)", len(l), limits.MaxFactsChainDepth)
			}
			chain := make([]*signing.Certificate, 0, len(l))
			for _, i := range l {
				c, err := cert(i)
				if err != nil {
					return nil, err
				}
				chain = append(chain, c)
			}
			out = append(out, chain)
		}
		return out, nil
	}
	s.Signatures = make([]*signing.Signature, 0, len(r.Signatures))
	for n := range r.Signatures {
		f := &r.Signatures[n]
		sig, err := f.decode(chains, cert)
		if err != nil {
			return fmt.Errorf("signature %d: %w", n, err)
		}
		if f.Catalog == "" {
			if len(s.Catalogs) > 0 {
				return fmt.Errorf("signature %d: the file's own signatures come before its catalogs'", n)
			}
			s.Own++
		} else {
			if err := checkText("catalog", f.Catalog); err != nil {
				return err
			}
			s.Catalogs = append(s.Catalogs, f.Catalog)
		}
		s.Signatures = append(s.Signatures, sig)
	}
	return nil
}

func (f *Signature) decode(chains func([][]int) ([][]*signing.Certificate, error), cert func(int) (*signing.Certificate, error)) (*signing.Signature, error) {
	for _, t := range []struct{ name, v string }{{"format", f.Format}, {"problem", f.Problem}, {"signature_algorithm", f.SignatureAlgorithm}} {
		if err := checkText(t.name, t.v); err != nil {
			return nil, err
		}
	}
	if f.Index < 0 || len(f.Path) > limits.MaxFactsChainDepth {
		return nil, errors.New("index or path out of range")
	}
	if f.Verified && f.Problem != "" {
		return nil, errors.New("verified, with a problem")
	}
	sig := &signing.Signature{Format: f.Format, Index: f.Index, SignatureAlgorithm: f.SignatureAlgorithm}
	if len(f.Path) > 0 {
		sig.Path = append([]int(nil), f.Path...)
	}
	var err error
	if sig.DigestAlgorithm, err = parseHash(f.DigestAlgorithm); err != nil {
		return nil, err
	}
	if sig.PageHashes, err = parseHash(f.PageHashes); err != nil {
		return nil, err
	}
	if f.Digest != "" {
		if sig.Digest, err = hex.DecodeString(f.Digest); err != nil || len(sig.Digest) > 64 {
			return nil, errors.New("digest: want at most 64 bytes of hex")
		}
	}
	if len(f.SignerDigests) > 8 {
		return nil, errors.New("too many signer_digests")
	}
	for _, n := range f.SignerDigests {
		h, err := parseHash(n)
		if err != nil || h == 0 {
			return nil, fmt.Errorf("signer_digests: unknown hash %q", n)
		}
		sig.SignerDigests = append(sig.SignerDigests, h)
	}
	if sig.Chains, err = chains(f.Chains); err != nil {
		return nil, err
	}
	if len(f.Certificates) > limits.MaxFactsCertificates {
		return nil, errors.New("too many certificates")
	}
	for _, i := range f.Certificates {
		c, err := cert(i)
		if err != nil {
			return nil, err
		}
		sig.Certificates = append(sig.Certificates, c)
	}
	if f.Problem != "" {
		sig.Problem = &problem{msg: f.Problem, notFound: f.SignerNotFound}
	} else if f.SignerNotFound {
		return nil, errors.New("signer_not_found without a problem")
	}
	if len(f.IgnoredBy) > 4 {
		return nil, errors.New("too many ignored_by hosts")
	}
	for h, why := range f.IgnoredBy {
		switch signing.Host(h) {
		case signing.HostWindows, signing.HostUEFI:
		default:
			return nil, fmt.Errorf("ignored_by: unknown host %q", h)
		}
		if why == "" {
			return nil, errors.New("ignored_by: no reason")
		}
		if err := checkText("ignored_by", why); err != nil {
			return nil, err
		}
		sig.Ignore(signing.Host(h), why)
	}
	if t := f.Timestamp; t != nil {
		if err := checkText("timestamp kind", t.Kind); err != nil {
			return nil, err
		}
		if err := checkText("timestamp problem", t.Problem); err != nil {
			return nil, err
		}
		if t.Verified && t.Problem != "" {
			return nil, errors.New("timestamp verified, with a problem")
		}
		ts := &signing.Timestamp{Kind: t.Kind, Time: t.Time}
		if ts.Chains, err = chains(t.Chains); err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		if t.Problem != "" {
			ts.Problem = &problem{msg: t.Problem}
		}
		if t.Verified {
			verifiedby.RecordedTimestamp(ts)
		}
		sig.Timestamp = ts
	}
	if f.Verified {
		verifiedby.Recorded(sig)
	}
	return sig, nil
}

func (a *Attributes) decode(top bool) (*cipolicy.FileAttributes, error) {
	for _, t := range []struct{ name, v string }{{"original_file_name", a.OriginalFileName}, {"internal_name", a.InternalName},
		{"file_description", a.FileDescription}, {"product_name", a.ProductName}} {
		if err := checkText("attributes "+t.name, t.v); err != nil {
			return nil, err
		}
	}
	out := &cipolicy.FileAttributes{OriginalFileName: a.OriginalFileName, InternalName: a.InternalName,
		FileDescription: a.FileDescription, ProductName: a.ProductName}
	if a.FileVersion != "" {
		v, err := cipolicy.ParseVersion(a.FileVersion)
		if err != nil || v.String() != a.FileVersion {
			return nil, fmt.Errorf("attributes file_version %q: want a.b.c.d", a.FileVersion)
		}
		out.FileVersion = &v
	}
	if len(a.Alternatives) > 0 && !top {
		return nil, errors.New("attributes: alternatives of an alternative")
	}
	if len(a.Alternatives) > 64 {
		return nil, errors.New("attributes: too many alternatives")
	}
	for i := range a.Alternatives {
		alt, err := a.Alternatives[i].decode(false)
		if err != nil {
			return nil, err
		}
		out.Alternatives = append(out.Alternatives, *alt)
	}
	return out, nil
}

// checkText refuses a string fact over limits.MaxFactsText or holding a
// NUL byte.
func checkText(name, s string) error {
	if len(s) > limits.MaxFactsText {
		return fmt.Errorf("%s: %d bytes, over the limit of %d", name, len(s), limits.MaxFactsText)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s: holds a NUL byte", name)
	}
	return nil
}

// decodeHex decodes the hex string s (either case, as hex.DecodeString)
// into dst, of len(s)/2 bytes.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	v := unhex[c]
	return v & 0x0f, v != 0xff
}

// unhex maps a hex digit to its value, anything else to 0xff.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	for i, c := range "ABCDEF" {
		t[c] = byte(10 + i)
	}
	return t
}()
