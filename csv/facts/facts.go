// Package facts is csv's facts format: everything a code integrity policy
// rule can match about a file (its path, format, every digest csv
// computes, its signatures as they verified with their chains, its
// version-resource attributes, the format facts the policy engine reads,
// and why it could not be inspected, if it could not), recorded once, by
// csv inspect --format facts or csv validate --record, and judged later
// by any policy without the files (csv validate --facts).
//
// A facts file is JSON Lines (https://jsonlines.org/): a header line
// ([Header], "format":"csv-facts/v1"), then one [Record] per file, in the
// order the recorder judged them; it may be gzip-compressed (RFC 1952,
// told by its magic bytes). docs/facts.md documents every field.
//
// # Security
//
// A facts file is data from elsewhere. [Reader] parses it strictly: a
// field it does not know, a value of the wrong type, a digest of the
// wrong size, a certificate that does not parse, or an index that points
// nowhere is an error naming the file and line, and so is a line, a
// record count or a list past the caps of internal/limits; a panic while
// parsing becomes such an error too. What a record states is trusted as
// much as the machine that recorded it: a signature recorded as verified
// is judged verified (internal/verifiedby.Recorded), without the file to
// check it against. Sign a facts file (csv sign --bundle) to carry that
// trust from the recorder to the judge.
package facts

import (
	"time"

	"github.com/codesignval/csv/cipolicy"
)

// Version is the format name and version the header carries.
const Version = "csv-facts/v1"

// Header is a facts file's first line.
type Header struct {
	// Format is Version.
	Format string `json:"format"`
	// Origin says where the facts were recorded (a host, a build): every
	// result judged from them carries it.
	Origin string `json:"origin"`
	// Tool is the recorder ("csv 1.2.3").
	Tool string `json:"tool"`
	// Created is when the recording began.
	Created time.Time `json:"created"`
}

// Record is the facts of one file (or container member), or a file the
// recorder did not judge (Skipped).
type Record struct {
	// Root is the PATH argument the file was found under, as given, and
	// Path the file's slash-separated path relative to it ("bin/tool",
	// "app.zip!/lib/x.dll"). FileRoot says Root names the file itself
	// (Path is then its base name and what follows it, its members').
	Root     string `json:"root"`
	Path     string `json:"path"`
	FileRoot bool   `json:"file_root,omitempty"`
	// Skipped, if set, is why the file was not judged (not a binary, a
	// container whose members follow); no other fact is then recorded.
	Skipped string `json:"skipped,omitempty"`

	Format cipolicy.Format `json:"format,omitempty"`
	Size   int64           `json:"size"`
	// Digests are every digest computed, hex, keyed by cipolicy's
	// algorithm names ("sha256", "authenticode_sha256", ...).
	Digests map[cipolicy.HashAlgorithm]string `json:"digests,omitempty"`
	// Signed says the file carries a signature, whether or not it
	// verifies.
	Signed bool `json:"signed"`
	// Signatures are the file's signatures as verified, then those of the
	// security catalogs it is a member of (Signature.Catalog set); null
	// when they were not established. Their chains name Certificates by
	// index.
	Signatures   []Signature   `json:"signatures"`
	Certificates []Certificate `json:"certificates,omitempty"`
	// Attributes are a PE version resource's strings.
	Attributes *Attributes `json:"attributes,omitempty"`
	// Relocatable: an ELF relocatable file (ET_REL). Decompressed: the
	// content of a single compressed file (cipolicy.Subject).
	Relocatable  bool `json:"relocatable,omitempty"`
	Decompressed bool `json:"decompressed,omitempty"`
	// CatalogLookup are the digests the recording run computed to look
	// the file up in its security catalogs (which a run computes in its
	// first read, and reports).
	CatalogLookup []cipolicy.HashAlgorithm `json:"catalog_lookup,omitempty"`
	// Catalog is a security catalog file's own state.
	Catalog *CatalogFile `json:"catalog_file,omitempty"`
	// Problem is why the file could not be inspected (the message without
	// the path); such a file stays blocked whatever the policy.
	Problem string `json:"problem,omitempty"`
}

// Certificate is one certificate of a record: its DER (base64), and for
// people its TBS hash (hex, as WDAC writes CertRoot values) and subject
// common name, which a reader checks against the DER; or, in its place,
// its SHA-256 fingerprint (hex), naming a certificate that a certificate
// line before the record defines ({"certificate":{...}}): a build's
// records share a few chains, which a Writer writes once. A Reader
// returns every certificate in full.
type Certificate struct {
	DER     []byte `json:"der,omitempty"`
	TBSHash string `json:"tbs_hash,omitempty"`
	Subject string `json:"subject,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

// certificateLine is a line that defines a certificate for the records
// after it.
type certificateLine struct {
	Certificate *Certificate `json:"certificate"`
}

// Signature is one signature as the recorder verified it.
type Signature struct {
	Format   string `json:"format"`
	Index    int    `json:"index"`
	Path     []int  `json:"path,omitempty"`
	Verified bool   `json:"verified"`
	// Problem is why it did not verify; SignerNotFound says the problem
	// is that the signer's certificate was not found
	// (signing.ErrSignerNotFound).
	Problem        string `json:"problem,omitempty"`
	SignerNotFound bool   `json:"signer_not_found,omitempty"`
	// DigestAlgorithm and SignerDigests are Go's names of the hashes
	// ("SHA-256"); Digest is the file digest the signature carries, hex.
	DigestAlgorithm    string   `json:"digest_algorithm,omitempty"`
	Digest             string   `json:"digest,omitempty"`
	SignerDigests      []string `json:"signer_digests,omitempty"`
	SignatureAlgorithm string   `json:"signature_algorithm"`
	// Chains and Certificates index Record.Certificates.
	Chains       [][]int `json:"chains"`
	Certificates []int   `json:"certificates"`
	// PageHashes is the hash of a page-hash table checked against the
	// file ("" when none was).
	PageHashes string     `json:"page_hashes,omitempty"`
	Timestamp  *Timestamp `json:"timestamp,omitempty"`
	// IgnoredBy: the hosts that would not count it, and why.
	IgnoredBy map[string]string `json:"ignored_by,omitempty"`
	// Catalog, if set, names the security catalog whose signature this is
	// (the file is a member of it).
	Catalog string `json:"catalog,omitempty"`
}

// Timestamp is a signature's countersignature.
type Timestamp struct {
	Kind     string    `json:"kind"`
	Time     time.Time `json:"time"`
	Verified bool      `json:"verified"`
	Problem  string    `json:"problem,omitempty"`
	Chains   [][]int   `json:"chains"`
}

// Attributes are a PE version resource's strings (cipolicy.FileAttributes).
type Attributes struct {
	OriginalFileName string `json:"original_file_name"`
	InternalName     string `json:"internal_name"`
	FileDescription  string `json:"file_description"`
	ProductName      string `json:"product_name"`
	// FileVersion is "a.b.c.d", "" when the resource has none.
	FileVersion  string       `json:"file_version,omitempty"`
	Alternatives []Attributes `json:"alternatives,omitempty"`
}

// CatalogFile is a security catalog's state: whether it is signed, and
// whether its signature verified (it then admits its members).
type CatalogFile struct {
	Signed   bool   `json:"signed"`
	Verified bool   `json:"verified"`
	Members  int    `json:"members"`
	Problem  string `json:"problem,omitempty"`
}
