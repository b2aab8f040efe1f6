package cipolicy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Format is a file format: the kind of file a subject is, as csv's format
// handlers recognise it, as a rule's formats scope names it, and as reports
// write it. It is the one format type of csv.
type Format string

// Formats.
const (
	FormatPE  Format = "pe"
	FormatELF Format = "elf"
	// FormatCatalog is a Windows security catalog (.cat): a signed list
	// of member hashes. Hosts do not run it; it admits its members.
	FormatCatalog Format = "catalog"
	// FormatPowerShell is a PowerShell script (.ps1 .psm1 .psd1 .ps1xml
	// .psc1 .cdxml): Authenticode-signed, hashed by PowerShell's SIP.
	FormatPowerShell Format = "powershell"
	// FormatWSH is a Windows Script Host script (.js .jse .vbs .vbe .wsf), whose
	// signatures csv does not verify: judged by its SHA256.
	FormatWSH Format = "wsh"
	// FormatCab is a cabinet file (.cab): Authenticode-signed in its
	// header's reserve, hashed as osslsigncode hashes it; its files are
	// judged as members.
	FormatCab Format = "cab"
	// FormatMSI is a Windows Installer file (.msi .msp .mst): a compound
	// file, Authenticode-signed, hashed by Windows Installer's SIP.
	FormatMSI Format = "msi"
	// FormatAPPX is an MSIX/APPX package or bundle (.msix .appx
	// .msixbundle .appxbundle): a zip signed by its AppxSignature.p7x
	// member (signing/authenticode/appx), judged as well as walked.
	FormatAPPX Format = "appx"
	// FormatImage is a filesystem image (squashfs, EROFS, ext4) judged by
	// its dm-verity root hash and the root hash's signature.
	FormatImage Format = "image"
	// FormatOther is a file of no format csv judges. No rule applies to
	// it, and a policy cannot name it.
	FormatOther Format = "other"
)

// formatInfo is what the policy model knows of a format.
type formatInfo struct {
	format Format
	// label names the format in messages.
	label string
	// attributes: files of the format carry the file attributes that file
	// rules and signer rules' file scopes read (a PE version resource).
	attributes bool
	// rule is the digest that hash rules written for files of the format
	// compare (csv policy new --level hash), the one that stays when the
	// file is signed where there is one.
	rule HashAlgorithm
}

// formatTable lists the formats rules can name, in a fixed order. A new
// file kind adds a row here (and its digests rows to hashTable).
var formatTable = []formatInfo{
	{FormatPE, "PE", true, AuthenticodeSHA256},
	{FormatELF, "ELF", false, SHA256},
	{FormatCatalog, "catalog", false, SHA256},
	{FormatPowerShell, "PowerShell script", false, AuthenticodeSHA256},
	{FormatWSH, "Windows Script Host script", false, SHA256},
	{FormatCab, "cabinet", false, AuthenticodeSHA256},
	{FormatMSI, "MSI installer", false, AuthenticodeSHA256},
	{FormatAPPX, "MSIX/APPX package", false, SHA256},
	// Hash rules csv policy new writes for an image compare its SHA256,
	// which every image has; dmverity_sha256 needs its hash device.
	{FormatImage, "dm-verity image", false, SHA256},
}

// Formats lists the formats rules can name, in a fixed order.
var Formats = func() []Format {
	out := make([]Format, len(formatTable))
	for i, f := range formatTable {
		out[i] = f.format
	}
	return out
}()

func formatOf(f Format) *formatInfo {
	for i := range formatTable {
		if formatTable[i].format == f {
			return &formatTable[i]
		}
	}
	return nil
}

// Label names the format for people ("PE", "ELF"); a format the policy
// model does not know is named as it is spelled.
func (f Format) Label() string {
	if fi := formatOf(f); fi != nil {
		return fi.label
	}
	return string(f)
}

// HasAttributes reports whether files of format f carry file attributes
// (version resources) that file rules can read.
func (f Format) HasAttributes() bool {
	fi := formatOf(f)
	return fi != nil && fi.attributes
}

// RuleDigest is the digest that hash rules written for files of format f
// compare: the Authenticode SHA256 of a PE file, which signing leaves as it
// is, and otherwise the file's SHA256.
func (f Format) RuleDigest() HashAlgorithm {
	if fi := formatOf(f); fi != nil && fi.rule != "" {
		return fi.rule
	}
	return SHA256
}

// ParseFormat parses a format name.
func ParseFormat(s string) (Format, error) {
	if f := Format(s); formatOf(f) != nil {
		return f, nil
	}
	return "", fmt.Errorf("cipolicy: unknown format %q (want %s)", s, orList(Formats))
}

// orList joins names as "a, b or c".
func orList[T ~string](xs []T) string {
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = string(x)
	}
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

// HashAlgorithm names a digest of a file that hash rules compare. The name
// is the digest's key everywhere: a hash rule's field in YAML, the digest's
// field in JSON reports and csv inspect, its key in [Digests].
type HashAlgorithm string

// Hash algorithms.
const (
	// SHA256 is the SHA-256 of the whole file, any format.
	SHA256 HashAlgorithm = "sha256"
	// AuthenticodeSHA256 is the SHA-256 Authenticode digest: a PE file's
	// image hash, a PowerShell script's SIP hash (what WDAC hash rules
	// compare for both).
	AuthenticodeSHA256 HashAlgorithm = "authenticode_sha256"
	// AuthenticodeSHA1 is the SHA-1 Authenticode digest (PE, PowerShell).
	AuthenticodeSHA1 HashAlgorithm = "authenticode_sha1"
	// PageSHA256 and PageSHA1 are the hashes of a PE image's first page,
	// which App Control's "Hash Page Sha256" and "Hash Page Sha1" rules
	// compare: the headers (SizeOfHeaders bytes) without the CheckSum
	// field and the certificate table directory entry, zero-padded to
	// 4096 bytes, the first entry of the Authenticode page-hash table
	// (signing/authenticode/pe). Windows compares them only for a file
	// whose signature carries page hashes; an allow rule of these
	// algorithms matches no more (see Evaluate).
	PageSHA256 HashAlgorithm = "page_sha256"
	PageSHA1   HashAlgorithm = "page_sha1"
	// FSVeritySHA256 is the fs-verity file digest (SHA-256, 4 KiB blocks,
	// no salt; signing/fsverity): what `fsverity digest` prints and IPE's
	// fsverity_digest=sha256:HEX names. Computed for ELF files, the files
	// a Linux host executes that csv judges.
	FSVeritySHA256 HashAlgorithm = "fsverity_sha256"
	// DMVeritySHA256 is a dm-verity image's root hash (SHA-256, format 1;
	// signing/dmverity), IPE's dmverity_roothash=sha256:HEX.
	DMVeritySHA256 HashAlgorithm = "dmverity_sha256"
)

// firstPage lists the first-page hash algorithms.
var firstPage = []HashAlgorithm{PageSHA256, PageSHA1}

// FirstPage reports whether a is a first-page hash (PageSHA256,
// PageSHA1): an allow rule of it matches only a file a verified signature
// with a page-hash table vouches for.
func (a HashAlgorithm) FirstPage() bool { return slices.Contains(firstPage, a) }

// ruleDigests are the hash rules csv policy new --level hash writes for a
// file of the format, where it writes more than RuleDigest: for PE the
// four New-CIPolicy writes (Hash Sha256, Hash Sha1, Hash Page Sha256,
// Hash Page Sha1), so that a policy allows and denies the file however
// Windows hashes it.
var ruleDigests = map[Format][]HashAlgorithm{
	FormatPE: {AuthenticodeSHA256, AuthenticodeSHA1, PageSHA256, PageSHA1},
}

// RuleDigests are the digests hash rules written for files of format f
// compare (csv policy new --level hash), RuleDigest first.
func (f Format) RuleDigests() []HashAlgorithm {
	if ds, ok := ruleDigests[f]; ok {
		return slices.Clone(ds)
	}
	return []HashAlgorithm{f.RuleDigest()}
}

// hashInfo is what the policy model knows of a hash algorithm.
type hashInfo struct {
	alg HashAlgorithm
	// label names the digest for people, in reasons and rule descriptions.
	label string
	// size is the digest's length in bytes.
	size int
	// digest is the digest algorithm it is computed with (which a policy's
	// digest_algorithms may refuse).
	digest DigestAlgorithm
	// formats are the formats whose files have this digest; nil: every
	// format.
	formats []Format
}

// sipFormats are the formats whose Authenticode digest a subject interface
// package computes (signing/authenticode/...).
var sipFormats = []Format{FormatPE, FormatPowerShell, FormatCab, FormatMSI}

// hashTable is the one table of hash algorithms: their names (in YAML, JSON
// and Digests), labels, sizes and formats, in the order reports list
// digests. A new kind of digest (page hashes, IMA, fs-verity, a catalog
// member's hash) adds a row here; the format handler that computes it says
// so in its Inspect.
var hashTable = []hashInfo{
	{SHA256, "SHA256", 32, DigestSHA256, nil},
	{AuthenticodeSHA256, "Authenticode SHA256", 32, DigestSHA256, sipFormats},
	{AuthenticodeSHA1, "Authenticode SHA1", 20, DigestSHA1, sipFormats},
	{PageSHA256, "Page SHA256", 32, DigestSHA256, []Format{FormatPE}},
	{PageSHA1, "Page SHA1", 20, DigestSHA1, []Format{FormatPE}},
	{FSVeritySHA256, "fs-verity SHA256", 32, DigestSHA256, []Format{FormatELF}},
	{DMVeritySHA256, "dm-verity root hash", 32, DigestSHA256, []Format{FormatImage}},
}

// HashAlgorithms lists every hash algorithm, in a fixed order: the order in
// which reports list a file's digests.
var HashAlgorithms = func() []HashAlgorithm {
	out := make([]HashAlgorithm, len(hashTable))
	for i, h := range hashTable {
		out[i] = h.alg
	}
	return out
}()

func hashOf(a HashAlgorithm) *hashInfo {
	for i := range hashTable {
		if hashTable[i].alg == a {
			return &hashTable[i]
		}
	}
	return nil
}

// rank is the algorithm's position in the table's order (unknown
// algorithms after every known one).
func (a HashAlgorithm) rank() int {
	for i := range hashTable {
		if hashTable[i].alg == a {
			return i
		}
	}
	return len(hashTable)
}

// Size returns the digest length in bytes (0 for an unknown algorithm).
func (a HashAlgorithm) Size() int {
	if h := hashOf(a); h != nil {
		return h.size
	}
	return 0
}

// AppliesTo reports whether subjects of format f carry this digest.
func (a HashAlgorithm) AppliesTo(f Format) bool {
	h := hashOf(a)
	return h != nil && (h.formats == nil || slices.Contains(h.formats, f))
}

// only names the formats whose files have the digest, for messages ("PE",
// "PE and ELF"); "" if every format has it.
func (a HashAlgorithm) only() string {
	h := hashOf(a)
	if h == nil || h.formats == nil {
		return ""
	}
	ls := make([]string, len(h.formats))
	for i, f := range h.formats {
		ls[i] = f.Label()
	}
	return strings.Join(ls, " and ")
}

// Restricted reports whether only some formats' files have this digest.
func (a HashAlgorithm) Restricted() bool {
	h := hashOf(a)
	return h == nil || h.formats != nil
}

// Label is a human-readable name of the algorithm.
func (a HashAlgorithm) Label() string {
	if h := hashOf(a); h != nil {
		return h.label
	}
	return string(a)
}

// Digest returns the digest algorithm a hash rule's digest is computed
// with.
func (a HashAlgorithm) Digest() DigestAlgorithm {
	if h := hashOf(a); h != nil {
		return h.digest
	}
	return DigestSHA256
}

// DigestSet is a set of hash algorithms: the digests a subject needs. The
// zero value is the empty set. A set is never changed once made (With and
// Union return new sets), so sets may be shared.
type DigestSet struct {
	// algs are sorted by rank, then name, without repeats.
	algs []HashAlgorithm
}

// NewDigestSet returns the set of the algorithms given.
func NewDigestSet(algs ...HashAlgorithm) DigestSet {
	var s DigestSet
	for _, a := range algs {
		s = s.With(a)
	}
	return s
}

func compareAlgs(a, b HashAlgorithm) int {
	return cmp.Or(cmp.Compare(a.rank(), b.rank()), strings.Compare(string(a), string(b)))
}

// Has reports whether a is in the set.
func (s DigestSet) Has(a HashAlgorithm) bool {
	_, ok := slices.BinarySearchFunc(s.algs, a, compareAlgs)
	return ok
}

// With returns the set with a added.
func (s DigestSet) With(a HashAlgorithm) DigestSet {
	i, ok := slices.BinarySearchFunc(s.algs, a, compareAlgs)
	if ok {
		return s
	}
	return DigestSet{algs: slices.Insert(slices.Clip(s.algs), i, a)}
}

// Union returns the algorithms of both sets.
func (s DigestSet) Union(t DigestSet) DigestSet {
	switch {
	case len(t.algs) == 0:
		return s
	case len(s.algs) == 0:
		return t
	}
	for _, a := range t.algs {
		s = s.With(a)
	}
	return s
}

// Missing returns the algorithms of s that t does not hold.
func (s DigestSet) Missing(t DigestSet) DigestSet {
	var out DigestSet
	for _, a := range s.algs {
		if !t.Has(a) {
			out.algs = append(out.algs, a)
		}
	}
	return out
}

// Len is the number of algorithms in the set.
func (s DigestSet) Len() int { return len(s.algs) }

// Algorithms lists the set's algorithms, in HashAlgorithms' order.
func (s DigestSet) Algorithms() []HashAlgorithm { return slices.Clone(s.algs) }

// Equal reports whether both sets hold the same algorithms.
func (s DigestSet) Equal(t DigestSet) bool { return slices.Equal(s.algs, t.algs) }

// AllDigests is the set of every algorithm.
func AllDigests() DigestSet { return NewDigestSet(HashAlgorithms...) }

// String lists the set's algorithms.
func (s DigestSet) String() string {
	names := make([]string, len(s.algs))
	for i, a := range s.algs {
		names[i] = string(a)
	}
	return "{" + strings.Join(names, ",") + "}"
}

// Digests holds the digests established for a subject, keyed by algorithm.
// An algorithm without a digest (or with a nil one) was not computed.
type Digests map[HashAlgorithm][]byte

// Get returns the digest for algorithm a, or nil.
func (d Digests) Get(a HashAlgorithm) []byte { return d[a] }

// Set stores the digest for algorithm a.
func (d *Digests) Set(a HashAlgorithm, v []byte) {
	if *d == nil {
		*d = Digests{}
	}
	(*d)[a] = v
}

// Algorithms returns the set of algorithms whose digests are present.
func (d Digests) Algorithms() DigestSet {
	var s DigestSet
	for a, v := range d {
		if v != nil {
			s = s.With(a)
		}
	}
	return s
}

// Each calls f with every digest present, in HashAlgorithms' order (then
// by name): the order in which reports list them.
func (d Digests) Each(f func(HashAlgorithm, []byte)) {
	for _, a := range d.Algorithms().algs {
		f(a, d[a])
	}
}
