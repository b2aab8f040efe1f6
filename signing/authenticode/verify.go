package authenticode

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // SHA1 Authenticode signatures are still common
	"crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/sigstate"
	"github.com/codesignval/csv/signing"
)

// Errors wrapped by Signature.Problem and Timestamp.Problem (always inside a
// *SignatureError); test them with errors.Is. A signature that does not
// verify (the signer's or a timestamp's) wraps signing.ErrSignature.
var (
	// ErrUnsupportedEntry: the WIN_CERTIFICATE is not revision 2.0 of
	// type WIN_CERT_TYPE_PKCS_SIGNED_DATA.
	ErrUnsupportedEntry = errors.New("unsupported WIN_CERTIFICATE")
	// ErrMalformed: the PKCS#7 structure cannot be read, or is not an
	// Authenticode (or RFC 3161) structure.
	ErrMalformed = errors.New("malformed signature")
	// ErrUnsupportedAlgorithm: a digest or signature algorithm Authenticode
	// verification does not accept (MD5, unknown OIDs).
	ErrUnsupportedAlgorithm = errors.New("unsupported algorithm")
	// ErrSignerNotFound: no embedded certificate matches the SignerInfo.
	ErrSignerNotFound = errors.New("signer certificate not found")
	// ErrDigestNotComputed: the caller did not supply the image digest for
	// the signature's algorithm.
	ErrDigestNotComputed = errors.New("image digest not computed")
	// ErrDigestMismatch: the signed image digest is not the file's.
	ErrDigestMismatch = errors.New("image digest mismatch")
	// ErrSignedAttributes: the signed attributes are missing or
	// inconsistent (content type, message digest, duplicates).
	ErrSignedAttributes = errors.New("bad signed attributes")
	// ErrTimestamp wraps every timestamp problem.
	ErrTimestamp = errors.New("timestamp")
	// ErrLimit: a cap on nesting depth or on the number of signatures,
	// certificates or attributes was exceeded.
	ErrLimit = errors.New("limit exceeded")
	// ErrInternal: verification panicked (a bug; the signature is not
	// verified).
	ErrInternal = errors.New("internal error")
	// ErrTooManyChainChecks (wrapping ErrLimit): building the chains of the
	// table's signatures and timestamps takes more than [MaxChainChecks]
	// certificate signature checks. Only Verify returns it: CheckTable
	// builds no chains.
	ErrTooManyChainChecks = fmt.Errorf("%w: building the chains of the table's signatures and timestamps takes more than %d certificate signature checks", ErrLimit, MaxChainChecks)
)

// SignatureError is the Problem of a signature or of its timestamp: which
// signature (entry Index and nesting Path) and what failed.
type SignatureError struct {
	Index int
	Path  []int
	Err   error
}

func (e *SignatureError) Error() string {
	return "authenticode: " + signatureName(e.Index, e.Path) + ": " + e.Err.Error()
}

func (e *SignatureError) Unwrap() error { return e.Err }

// TableError is the error [Verify] and [CheckTable] return when the
// certificate table holds something other than well-formed Authenticode
// signatures: the whole file is then malformed, whatever its signatures say.
// Offset is the file offset of the WIN_CERTIFICATE entry, Index its position
// and Path the nesting path of the signature at fault ([] for the entry's
// own); Err wraps [ErrMalformed] or [ErrLimit] and says what is wrong.
type TableError struct {
	Offset int64
	Index  int
	Path   []int
	Err    error
}

func (e *TableError) Error() string {
	return fmt.Sprintf("authenticode: WIN_CERTIFICATE %d at offset %#x: %s", e.Index, e.Offset, e.Reason())
}

// Reason is the error without the package prefix and the offset: which
// signature and what is wrong with it.
func (e *TableError) Reason() string {
	return signatureName(e.Index, e.Path) + ": " + e.Err.Error()
}

func (e *TableError) Unwrap() error { return e.Err }

// signatureName is "signature 0" for an entry's own signature and "nested
// signature 0.1.0" for one nested in it (the entry index, then the path).
func signatureName(index int, path []int) string {
	if len(path) == 0 {
		return "signature " + strconv.Itoa(index)
	}
	var b strings.Builder
	b.WriteString("nested signature ")
	b.WriteString(strconv.Itoa(index))
	for _, p := range path {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(p))
	}
	return b.String()
}

// Caps on nested signatures.
const (
	// MaxSignatures caps the signatures Verify examines in one table,
	// WIN_CERTIFICATE entries and nested signatures together.
	MaxSignatures = 64
	// MaxNestingDepth caps how deep nested signatures are followed.
	MaxNestingDepth = 8
	// MaxChainChecks caps the certificate signature checks that building
	// the chains of one table's signatures and timestamps takes, in all.
	// Each chain search stops at 64 checks, but a table holds 64
	// signatures with a timestamp each: certificates that share an issuer's
	// name with keys that cost milliseconds to check (RSA-8192 with a large
	// exponent, P-521) made 128 searches of 64 checks cost 6 to 10 s for a
	// 3 MB file. Real tables take a few checks per signature.
	MaxChainChecks = 128
)

// Format is the signing.Signature Format of Authenticode signatures.
const Format = "authenticode"

// VerifyOptions configure Verify. The zero value verifies with the
// signature's own certificates only.
type VerifyOptions struct {
	// Certificates are extra certificates (intermediates and roots the
	// policy or the operator supplies) used to complete chains.
	Certificates []*signing.Certificate
	// Cache, if set, is shared across files so the same embedded
	// certificate (every file of a build carries the same chain) is parsed
	// once, and the same chain built once. Safe for concurrent use.
	Cache *CertCache
}

// DigestAlgorithms returns the image-hash algorithms (crypto.SHA1, SHA256,
// SHA384, SHA512) that the signatures in a PE attribute certificate table
// use, outer and nested at any depth, without duplicates, so the caller can
// compute exactly those Authenticode digests in its single pass over the
// file. table is the raw certificate table bytes. Entries that cannot be
// parsed are skipped (Verify reports them).
func DigestAlgorithms(table []byte) []crypto.Hash {
	entries, err := pe.ParseCertificateTable(table, 0)
	if err != nil {
		return nil
	}
	var out []crypto.Hash
	budget := MaxSignatures - len(entries)
	var walk func(der []byte, depth int)
	walk = func(der []byte, depth int) {
		sd, err := parseAuthenticode(der)
		if err != nil {
			return
		}
		// Walk as Verify does, so that both reach the same signatures.
		idc, err := parseSpcIndirectData(sd.content)
		if err != nil {
			return
		}
		if h, err := hashForOID(idc.digestAlg.oid); err == nil && !slices.Contains(out, h) {
			out = append(out, h)
		}
		if len(sd.signers) != 1 || depth == MaxNestingDepth {
			return
		}
		for _, a := range sd.signers[0].unsignedAttrs {
			if !bytes.Equal(a.oid, oidNestedSignature) {
				continue
			}
			a.each(func(v []byte) bool {
				if budget <= 0 {
					return false
				}
				budget--
				walk(v, depth+1)
				return true
			})
		}
	}
	func() {
		// A bug must not crash the caller: Verify reports it (ErrInternal)
		// on the entry concerned.
		defer func() { _ = recover() }()
		for _, e := range entries {
			if e.Revision == pe.CertRevision2_0 && e.Type == pe.CertTypePKCSSignedData {
				walk(e.Data, 0)
			}
		}
	}()
	return out
}

// parseAuthenticode reads a ContentInfo holding a SignedData whose content
// is an SpcIndirectDataContent.
func parseAuthenticode(der []byte) (*signedData, error) {
	ct, content, err := parseContentInfo(der)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(ct, oidSignedData) {
		return nil, fmt.Errorf("%w: ContentInfo type is %s, want signedData (1.2.840.113549.1.7.2)", ErrMalformed, oidString(ct))
	}
	sd, err := parseSignedData(content, knownUnsigned)
	if err != nil {
		return nil, err
	}
	switch {
	case !bytes.Equal(sd.contentType, oidSpcIndirectData):
		return nil, fmt.Errorf("%w: content type is %s, want SPC_INDIRECT_DATA_OBJID (1.3.6.1.4.1.311.2.1.4)", ErrMalformed, oidString(sd.contentType))
	case sd.content == nil:
		return nil, fmt.Errorf("%w: no SpcIndirectDataContent", ErrMalformed)
	case sd.octetString:
		return nil, fmt.Errorf("%w: SpcIndirectDataContent is wrapped in an OCTET STRING (Authenticode encapsulates it directly)", ErrMalformed)
	}
	return sd, nil
}

// Verify parses every WIN_CERTIFICATE entry of the table (tableOff is its
// file offset, for messages) and every nested signature (the
// SPC_NESTED_SIGNATURE unsigned attribute 1.3.6.1.4.1.311.2.4.1, any depth,
// bounded), and checks each against digests (the file's Authenticode image
// hashes by algorithm, as [Digester] computes them). It returns one
// *signing.Signature per signature found (outer ones first in table order,
// each followed by its nested ones depth-first), Format "authenticode",
// Index = entry index, Path = nesting path.
//
// It returns an error, and no signatures, when the table holds anything
// but well-formed Authenticode signatures (checks 1 and 2): the caller then
// treats the file as malformed, whatever any signature says, because bytes
// that no signature covers would otherwise ride along (the CVE-2013-3900
// class). A signature that fails any later check is returned with
// Verified=false and Problem (a *SignatureError) saying exactly what
// failed; it never makes Verify return an error.
//
// The checks, in order (the error or Problem names the first that fails):
//
//  1. pe.ParseCertificateTable splits the table: every entry is revision
//     2.0, type WIN_CERT_TYPE_PKCS_SIGNED_DATA, one DER SEQUENCE and at most
//     the zero padding to the next 8-byte boundary (a *binfmt.MalformedError).
//  2. Structure (a *[TableError] wrapping [ErrMalformed] or [ErrLimit]): the
//     ContentInfo is signedData; the SignedData parses, its
//     digestAlgorithms are AlgorithmIdentifiers without parameters, its
//     certificates are all certificates (parsed leniently, at most 32), its
//     CRLs (at most 8) are well-formed CertificateLists; its content type is
//     SPC_INDIRECT_DATA_OBJID and the SpcIndirectDataContent parses; there
//     is exactly one SignerInfo, whose unsigned algorithm parameters are
//     NULL (or RSA-PSS parameters), whose signature is at most 1024 bytes,
//     and whose unsigned attributes are at most limits.MaxUnsignedAttributes
//     bytes, of which those Verify does not read (anything but timestamps
//     and nested signatures) at most limits.MaxUnknownUnsignedAttributes;
//     a timestamp attribute appears at most once per kind, holds one value
//     and parses (RFC 3161: a SignedData of a TSTInfo with one SignerInfo
//     and readable certificates; legacy: a SignerInfo), with at most
//     limits.MaxUnknownUnsignedAttributes of unsigned attributes in its
//     SignerInfo, whatever their type (Verify reads none); nested signatures
//     pass these checks too, at most [MaxNestingDepth] deep and
//     [MaxSignatures] in the table.
//  3. The SpcIndirectDataContent's digest algorithm is one Authenticode
//     uses ([ErrUnsupportedAlgorithm]). The signer's certificate is among the
//     embedded certificates, by issuer and serial number (raw issuer DER,
//     negative serials included) or subject key identifier
//     ([ErrSignerNotFound]).
//  4. The image digest in the SpcIndirectDataContent equals
//     digests[algorithm] ([ErrDigestMismatch]); a missing algorithm fails
//     closed ([ErrDigestNotComputed]).
//  5. The signed attributes are present, each at most once; contentType is
//     SPC_INDIRECT_DATA_OBJID; messageDigest is the hash, with the
//     SignerInfo's digest algorithm, of the SpcIndirectDataContent's content
//     octets (without its SEQUENCE tag and length, as Authenticode does)
//     ([ErrSignedAttributes]).
//  6. The signature over the signed attributes (DER, re-tagged as a SET)
//     verifies with the signer certificate's key: RSA PKCS#1 v1.5, RSA-PSS,
//     ECDSA or Ed25519 (wraps signing.ErrSignature).
//  7. Chains are built from the signer through the embedded certificates and
//     opts.Certificates with signing.BuildChains, within [MaxChainChecks]
//     signature checks for the whole table (timestamps' chains included),
//     or the table is malformed ([ErrTooManyChainChecks], which CheckTable
//     cannot tell: it builds no chains). Verified means checks 1-6
//     hold: whether a chain reaches a trusted certificate is the policy's
//     decision, made on Chains.
//  8. The timestamp in the unsigned attributes is verified: an RFC 3161
//     token (1.3.6.1.4.1.311.3.3.1; its TSTInfo's messageImprint must be the
//     hash of the signature octets, its own SignerInfo must verify) or else
//     a legacy Authenticode countersignature (1.2.840.113549.1.9.6; its
//     messageDigest must be the hash of the signature octets, and its
//     signature must verify). Signature.Timestamp holds the time, chains and
//     result; a bad timestamp does not affect Verified.
//  9. Nested signatures are verified by the same steps, Path = parent's Path
//     plus their position.
//  10. IgnoredBy records which hosts would not count the signature, from
//     where it sits: Windows reads only the first entry (WinVerifyTrust
//     takes certificate 0 of the table) and the signatures nested in it,
//     one level deep (deeper ones, and those nested in a first signature
//     that does not verify or that Windows does not count: not
//     established, so not counted); UEFI
//     firmware (EDK2 DxeImageVerificationLib) and shim check every entry's
//     own signature and never a nested one. A data type other than
//     SPC_PE_IMAGE_DATAOBJ does not affect Verified (EDK2's
//     AuthenticodeVerify, which firmware and shim run, never reads it) but
//     makes Windows ignore the signature: csv cannot establish that Windows
//     accepts it. Deny rules match them all.
//
// # Security
//
// table is untrusted. It is parsed as strict DER with cryptobyte, never
// allocating from a length field, within caps on certificates, attributes,
// signatures and depth; every byte of it belongs to a structure Verify
// reads or to a capped unknown unsigned attribute, but well-formed
// structures that anyone may add (a certificate or attribute certificate in
// a certificate set, a signature of their own in another entry or nested,
// verifying or not) can carry any bytes in their extensions, names,
// attributes, signed attributes or content. A panic while examining
// an entry is recovered and reported as that entry's Problem
// ([ErrInternal]). Certificates are parsed leniently by
// signing.ParseCertificate, so a certificate Go's crypto/x509 refuses is
// still matched and its signature still checked. Verify does not judge
// trust, validity periods or key usages: that is the policy's job, on
// Chains. The returned values do not alias table; with a Cache they share
// *signing.Certificate values with other calls, so treat them as read-only.
func Verify(table []byte, tableOff int64, digests map[crypto.Hash][]byte, opts VerifyOptions) ([]*signing.Signature, error) {
	v, err := walkTable(table, tableOff, &verifier{digests: digests, opts: opts})
	if err != nil {
		return nil, err
	}
	return v.out, nil
}

// CheckTable checks that a PE attribute certificate table holds nothing but
// well-formed Authenticode signatures, without any cryptography: what
// [Verify] checks before it verifies anything, and fails for with the same
// errors (a *binfmt.MalformedError from pe.ParseCertificateTable, or a
// *[TableError]). A caller that does not need the signatures (a policy of
// hash rules) still refuses a table that smuggles data. cache, if not nil,
// is shared with Verify. Verify may still refuse a table CheckTable
// accepts, with [ErrTooManyChainChecks]: that is a cap on the work of
// verifying, which CheckTable does not do.
func CheckTable(table []byte, tableOff int64, cache *CertCache) error {
	_, err := walkTable(table, tableOff, &verifier{opts: VerifyOptions{Cache: cache}, structureOnly: true})
	return err
}

// walkTable runs v over every entry of the table.
func walkTable(table []byte, tableOff int64, v *verifier) (*verifier, error) {
	entries, err := pe.ParseCertificateTable(table, tableOff)
	if err != nil {
		return nil, err
	}
	v.budget = MaxSignatures - len(entries)
	v.chainChecks = MaxChainChecks
	v.out = make([]*signing.Signature, 0, len(entries))
	for i, e := range entries {
		v.entry(i, e)
		if v.malformed != nil {
			return nil, v.malformed
		}
	}
	return v, nil
}

type verifier struct {
	digests map[crypto.Hash][]byte
	opts    VerifyOptions
	budget  int // nested signatures that may still be examined
	// chainChecks are the certificate signature checks chain building may
	// still make (below zero: the table is over MaxChainChecks).
	chainChecks int
	out         []*signing.Signature
	// structureOnly skips every cryptographic check (CheckTable).
	structureOnly bool
	// malformed is the first structural problem: it makes the table, and
	// so the file, malformed.
	malformed *TableError
}

// entry verifies one WIN_CERTIFICATE entry and its nested signatures,
// turning a panic into the entry's Problem (and, when only the structure is
// checked, into the table's error: nothing else would report it).
func (v *verifier) entry(i int, e pe.Certificate) {
	start := len(v.out)
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("%w while examining the WIN_CERTIFICATE at offset %#x: %v (please report this)", ErrInternal, e.Offset, r)
			v.out = append(v.out[:start], &signing.Signature{Format: Format, Index: i, Path: []int{},
				Problem: &SignatureError{Index: i, Err: err}})
			if v.structureOnly && v.malformed == nil {
				v.malformed = &TableError{Offset: e.Offset, Index: i, Path: []int{}, Err: err}
			}
		}
	}()
	if e.Revision != pe.CertRevision2_0 || e.Type != pe.CertTypePKCSSignedData {
		// pe.ParseCertificateTable refuses these already.
		v.malformed = &TableError{Offset: e.Offset, Index: i, Path: []int{}, Err: fmt.Errorf("%w: revision %#04x, type %s (want revision 2.0, PKCS_SIGNED_DATA)",
			ErrUnsupportedEntry, e.Revision, pe.TypeName(e.Type))}
		return
	}
	v.signature(e, i, []int{}, e.Data, 0, "")
}

// signature verifies one Authenticode ContentInfo (in entry e) and,
// recursively, the signatures nested in it. underWhy, if not "", is why
// Windows would not read it where it is nested (see nestedUnder).
func (v *verifier) signature(e pe.Certificate, index int, path []int, der []byte, depth int, underWhy string) {
	sig := &signing.Signature{Format: Format, Index: index, Path: path}
	v.out = append(v.out, sig)
	countedBy(sig)
	if underWhy != "" {
		sig.Ignore(signing.HostWindows, underWhy)
	}
	fail := func(err error) {
		if sig.Problem == nil {
			sig.Problem = &SignatureError{Index: index, Path: path, Err: err}
		}
	}
	malformed := func(err error) {
		if v.malformed == nil {
			v.malformed = &TableError{Offset: e.Offset, Index: index, Path: path, Err: err}
		}
	}
	defer func() {
		if sig.Problem == nil && v.malformed == nil && !v.structureOnly {
			sigstate.Verified(sig)
		}
	}()

	// 2. Structure: the Authenticode SignedData, its certificates, one
	// SignerInfo, and the unsigned attributes Verify reads.
	sd, err := parseAuthenticode(der)
	if err != nil {
		malformed(err)
		return
	}
	certs, err := v.certificates(sd.certs)
	if err != nil {
		malformed(fmt.Errorf("%w: an embedded certificate cannot be read: %w", ErrMalformed, err))
		return
	}
	sig.Certificates = certs
	idc, err := parseSpcIndirectData(sd.content)
	if err != nil {
		malformed(err)
		return
	}
	if len(sd.signers) != 1 {
		malformed(fmt.Errorf("%w: %d SignerInfos (Authenticode requires exactly one)", ErrMalformed, len(sd.signers)))
		return
	}
	si := &sd.signers[0]
	stamps, err := v.parseTimestamps(si)
	if err != nil {
		malformed(err)
		return
	}
	sig.Digest = bytes.Clone(idc.digest)
	imageHash, hashErr := hashForOID(idc.digestAlg.oid)
	sig.DigestAlgorithm = imageHash
	sig.SignatureAlgorithm = signatureKind(si.sigAlg.oid)
	sig.SignerDigests = signerDigests(si, imageHash)
	if !bytes.Equal(idc.dataType, oidSpcPEImageData) {
		// Firmware does not look at the data type; csv cannot establish
		// that Windows accepts anything but SPC_PE_IMAGE_DATAOBJ.
		sig.Ignore(signing.HostWindows, fmt.Sprintf("its SpcIndirectDataContent data type is %s, not SPC_PE_IMAGE_DATAOBJ (1.3.6.1.4.1.311.2.1.15): "+
			"csv cannot establish that Windows accepts it (UEFI firmware and shim do: EDK2's AuthenticodeVerify checks the content type and the image digest, never the data type)",
			dataTypeName(idc.dataType)))
	}
	if hashErr != nil {
		fail(fmt.Errorf("image digest: %w", hashErr))
	}

	if !v.structureOnly {
		// 3. The signer's certificate.
		signer := findSigner(si, certs)
		if signer != nil {
			sig.Chains = v.buildChains(signer, v.candidates(certs))
		} else {
			fail(signerNotFound(si, len(sd.certs), nil))
		}

		// 4. Image digest.
		if hashErr == nil {
			switch want, ok := v.digests[imageHash]; {
			case !ok:
				fail(fmt.Errorf("%w: the signature is over the %s image hash, which the caller did not compute", ErrDigestNotComputed, hashName(imageHash)))
			case len(want) != imageHash.Size():
				fail(fmt.Errorf("%w: the caller's %s image hash has %d bytes", ErrDigestNotComputed, hashName(imageHash), len(want)))
			case !bytes.Equal(want, idc.digest):
				fail(fmt.Errorf("%w: signed %s %x, file has %x", ErrDigestMismatch, hashName(imageHash), idc.digest, want))
			}
		}

		// 5. and 6. Signed attributes and the signer's signature.
		if err := checkSignedAttributes(si, oidSpcIndirectData, sd.digested); err != nil {
			fail(err)
		} else if signer != nil {
			if err := checkSignerSignature(si, signer); err != nil {
				fail(err)
			}
		}

		// 8. Timestamps.
		sig.Timestamp = v.timestamp(index, path, si, certs, stamps)

		if v.chainChecks < 0 {
			// What was built is not what an unbounded search builds: a
			// chain to a denied CA may be missing, so nothing is judged.
			malformed(ErrTooManyChainChecks)
			return
		}
	}

	// 9. Nested signatures.
	n := 0
	childWhy := ""
	if !v.structureOnly {
		childWhy = nestedUnder(sig)
	}
	for _, a := range si.unsignedAttrs {
		if !bytes.Equal(a.oid, oidNestedSignature) {
			continue
		}
		ok := a.each(func(val []byte) bool {
			switch {
			case depth == MaxNestingDepth:
				malformed(fmt.Errorf("%w: nested signatures deeper than %d levels", ErrLimit, MaxNestingDepth))
				return false
			case v.budget <= 0:
				malformed(fmt.Errorf("%w: nested signature %d: more than %d signatures in the table", ErrLimit, n, MaxSignatures))
				return false
			}
			v.budget--
			child := make([]int, len(path)+1)
			copy(child, path)
			child[len(path)] = n
			n++
			v.signature(e, index, child, val, depth+1, childWhy)
			return v.malformed == nil
		})
		if !ok {
			malformed(errDER("bad SPC_NESTED_SIGNATURE attribute values"))
		}
	}
}

// Why hosts do not count a signature, by where it sits in the table.
const (
	whyWindowsEntry = "Windows judges only the first WIN_CERTIFICATE entry and the signatures nested in it " +
		"(WinVerifyTrust reads certificate 0 of the table, ImageGetCertificateData index 0)"
	whyWindowsDepth = "Windows reads the signatures nested in the first one, one level deep (its secondary signatures); " +
		"csv cannot establish that it reads deeper ones, so it does not count them"
	whyUEFINested = "UEFI firmware (EDK2 DxeImageVerificationLib) and shim check each WIN_CERTIFICATE entry's own signature " +
		"against db and dbx, never the signatures nested in it"
)

// nestedUnder says why Windows would not count the signatures nested in
// parent, whose checks are done, because of parent itself: Windows judges
// the primary signature and the secondary ones nested in it, and csv cannot
// establish that it reads the secondary signatures of a primary signature
// that does not verify or that Windows does not count (its data type): a
// signature that verifies nested in one that does not (over another image,
// or by a key that did not sign it) would otherwise admit a file Windows
// may refuse. "" when parent is not the reason.
func nestedUnder(parent *signing.Signature) string {
	var se *SignatureError
	switch {
	case parent.Problem != nil && errors.As(parent.Problem, &se):
		return fmt.Sprintf("the signature it is nested in does not verify (%v), and csv cannot establish that Windows reads the signatures nested in a primary signature that fails", se.Err)
	case parent.Problem != nil:
		return fmt.Sprintf("the signature it is nested in does not verify (%v), and csv cannot establish that Windows reads the signatures nested in a primary signature that fails", parent.Problem)
	case parent.IgnoredBy[signing.HostWindows] != "":
		return "Windows does not count the signature it is nested in, and csv cannot establish that it reads the signatures nested in one it does not count: " + parent.IgnoredBy[signing.HostWindows]
	}
	return ""
}

// dataTypeName renders an SpcIndirectDataContent data type OID element, with
// its name where it is a known SPC OID (signers have been seen to write a
// statement type where the data type belongs).
func dataTypeName(oid []byte) string {
	names := map[string]string{
		"1.3.6.1.4.1.311.2.1.21": "SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID",
		"1.3.6.1.4.1.311.2.1.22": "SPC_COMMERCIAL_SP_KEY_PURPOSE_OBJID",
		"1.3.6.1.4.1.311.2.1.25": "SPC_CAB_DATA_OBJID",
		"1.3.6.1.4.1.311.2.1.30": "SPC_SIPINFO_OBJID",
	}
	s := oidString(oid)
	if n, ok := names[s]; ok {
		return s + " (" + n + ")"
	}
	return s
}

// countedBy records which hosts do not count sig, from where it sits: see
// the reasons above. Deny rules still match every signature.
func countedBy(sig *signing.Signature) {
	if sig.Index > 0 {
		sig.Ignore(signing.HostWindows, whyWindowsEntry)
	}
	if len(sig.Path) > 1 {
		sig.Ignore(signing.HostWindows, whyWindowsDepth)
	}
	if len(sig.Path) > 0 {
		sig.Ignore(signing.HostUEFI, whyUEFINested)
	}
}

// candidates are the certificates chains are built through: certs, then
// the caller's, without repeats.
func (v *verifier) candidates(certs ...[]*signing.Certificate) []*signing.Certificate {
	n := len(v.opts.Certificates)
	for _, cs := range certs {
		n += len(cs)
	}
	out := make([]*signing.Certificate, 0, n)
	for _, cs := range certs {
		out = append(out, cs...)
	}
	return signing.Dedup(append(out, v.opts.Certificates...))
}

// certificates parses the embedded certificates (through the cache). A
// well-formed certificate signed with an algorithm csv does not know (old
// chains carry MD2 roots) is left out: it can neither identify nor check
// anything. Any other certificate that cannot be read even leniently makes
// the signature malformed: its bytes would be covered by nothing.
func (v *verifier) certificates(ders [][]byte) ([]*signing.Certificate, error) {
	out := make([]*signing.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := v.opts.Cache.parse(der)
		if errors.Is(err, signing.ErrUnknownSignatureAlgorithm) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// findSigner returns the certificate the SignerInfo names.
func findSigner(si *signerInfo, certs []*signing.Certificate) *signing.Certificate {
	if si.subjectKeyID != nil {
		for _, c := range certs {
			if c.SubjectKeyID != nil && bytes.Equal(c.SubjectKeyID, si.subjectKeyID) {
				return c
			}
		}
		return nil
	}
	serial := serialNumber(si.serial)
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, si.issuer) && c.SerialNumber != nil && c.SerialNumber.Cmp(serial) == 0 {
			return c
		}
	}
	return nil
}

// serialNumber reads an INTEGER's two's-complement contents.
func serialNumber(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return n
}

func signerNotFound(si *signerInfo, n int, certErr error) error {
	var who string
	if si.subjectKeyID != nil {
		who = fmt.Sprintf("subject key identifier %x", si.subjectKeyID)
	} else {
		who = fmt.Sprintf("issuer %q, serial %s", nameString(si.issuer), serialNumber(si.serial).Text(16))
	}
	err := fmt.Errorf("%w: %s is not among the %d embedded certificates", ErrSignerNotFound, who, n)
	if certErr != nil {
		err = fmt.Errorf("%w (some could not be read: %w)", err, certErr)
	}
	return err
}

func nameString(der []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err == nil && len(rest) == 0 {
		return rdn.String()
	}
	return "0x" + hex.EncodeToString(der)
}

func hashName(h crypto.Hash) string {
	return strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
}

// checkSignedAttributes checks that si has signed attributes, each at most
// once, that contentType (if wantType is not nil) is wantType and that
// messageDigest is the hash of content with the SignerInfo's digest
// algorithm.
func checkSignedAttributes(si *signerInfo, wantType, content []byte) error {
	if si.signedAttrsRaw == nil {
		return fmt.Errorf("%w: none (Authenticode requires them)", ErrSignedAttributes)
	}
	for i, a := range si.signedAttrs {
		for _, b := range si.signedAttrs[:i] {
			if bytes.Equal(a.oid, b.oid) {
				return fmt.Errorf("%w: attribute %s appears more than once", ErrSignedAttributes, oidString(a.oid))
			}
		}
	}
	if wantType != nil {
		a, ok := findAttribute(si.signedAttrs, oidContentType)
		if !ok {
			return fmt.Errorf("%w: no contentType attribute", ErrSignedAttributes)
		}
		v, ok := a.single()
		if !ok {
			return fmt.Errorf("%w: contentType attribute does not hold exactly one value", ErrSignedAttributes)
		}
		if !bytes.Equal(v, wantType) {
			return fmt.Errorf("%w: contentType attribute is %s, want %s", ErrSignedAttributes, oidString(v), oidString(wantType))
		}
	}
	h, err := hashForOID(si.digestAlg.oid)
	if err != nil {
		return fmt.Errorf("SignerInfo digest algorithm: %w", err)
	}
	a, ok := findAttribute(si.signedAttrs, oidMessageDigest)
	if !ok {
		return fmt.Errorf("%w: no messageDigest attribute", ErrSignedAttributes)
	}
	v, ok := a.single()
	var md []byte
	if ok {
		s := cryptobyte.String(v)
		ok = s.ReadASN1Bytes(&md, cbasn1.OCTET_STRING) && s.Empty()
	}
	if !ok {
		return fmt.Errorf("%w: messageDigest attribute is not one OCTET STRING", ErrSignedAttributes)
	}
	hh := h.New()
	hh.Write(content)
	if sum := hh.Sum(nil); !bytes.Equal(sum, md) {
		return fmt.Errorf("%w: messageDigest is %s %x, the signed content hashes to %x", ErrSignedAttributes, hashName(h), md, sum)
	}
	return nil
}

// checkSignerSignature checks the SignerInfo's signature over its signed
// attributes with cert's key.
func checkSignerSignature(si *signerInfo, cert *signing.Certificate) error {
	if cert.PublicKey == nil {
		return fmt.Errorf("%w: the signer certificate %q has a public key of an unsupported type", signing.ErrSignature, cert.CommonName())
	}
	// The signature is over the DER of the attributes as a SET OF, not
	// with the [0] IMPLICIT tag they are stored with.
	data := make([]byte, len(si.signedAttrsRaw))
	copy(data, si.signedAttrsRaw)
	data[0] = 0x31
	var err error
	switch alg := si.sigAlg.oid; {
	case bytes.Equal(alg, oidRSAEncryption), bytes.Equal(alg, oidECPublicKey):
		// Key-only OIDs: the digest is the SignerInfo's.
		h, herr := hashForOID(si.digestAlg.oid)
		if herr != nil {
			return fmt.Errorf("SignerInfo digest algorithm: %w", herr)
		}
		kind := "RSA"
		if bytes.Equal(alg, oidECPublicKey) {
			kind = "ECDSA"
		}
		err = signing.CheckDigestSignature(cert.PublicKey, kind, h, data, si.signature)
	default:
		oid, ok := decodeOID(alg)
		if !ok {
			return fmt.Errorf("%w: bad signature algorithm OID", ErrMalformed)
		}
		if bytes.Equal(alg, oidMD5WithRSA) {
			return fmt.Errorf("%w: signature algorithm md5WithRSAEncryption", ErrUnsupportedAlgorithm)
		}
		var params []byte
		if bytes.Equal(alg, oidRSAPSS) {
			params = si.sigAlg.params
		}
		err = signing.CheckSignature(cert.PublicKey, oid, params, data, si.signature)
	}
	if err != nil {
		return fmt.Errorf("signature by %q (%s) over the signed attributes: %w", cert.CommonName(), signatureKind(si.sigAlg.oid), err)
	}
	return nil
}

// signerDigests returns the hashes a SignerInfo's signature goes through
// besides the image hash: its digest algorithm (content into the
// messageDigest attribute) and the hash its signature algorithm names
// (signed attributes), each once and where it is not image.
func signerDigests(si *signerInfo, image crypto.Hash) []crypto.Hash {
	var out []crypto.Hash
	add := func(h crypto.Hash) {
		if h != 0 && h != image && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if h, err := hashForOID(si.digestAlg.oid); err == nil {
		add(h)
	}
	if oid, ok := decodeOID(si.sigAlg.oid); ok {
		var params []byte
		if bytes.Equal(si.sigAlg.oid, oidRSAPSS) {
			params = si.sigAlg.params
		}
		add(signing.SignatureHash(oid, params))
	}
	return out
}

// signatureKind names a SignerInfo signature algorithm as
// signing.Signature.SignatureAlgorithm does.
func signatureKind(oid []byte) string {
	switch {
	case len(oid) < 2:
		return "unknown"
	case bytes.Equal(oid, oidRSAPSS):
		return "RSA-PSS"
	case bytes.HasPrefix(oid[2:], oidPrefixPKCS1):
		return "RSA"
	case bytes.Equal(oid, oidECPublicKey), bytes.HasPrefix(oid[2:], oidPrefixECDSA):
		return "ECDSA"
	case bytes.Equal(oid, oidEd25519):
		return "Ed25519"
	}
	return "unknown (" + oidString(oid) + ")"
}

// CertCache keeps parsed certificates across calls of Verify, keyed by the
// SHA256 of their DER: every file of a build carries the same chain, which
// is then parsed once. It also keeps the chains built from a signer through
// a set of candidates (a pure function of their fingerprints), so that the
// signature checks along a chain are made once per build, not once per
// file. It holds at most 4096 certificates of at most 64 KiB each and 4096
// chain sets (an arbitrary entry is dropped to make room; larger
// certificates are parsed every time). A nil *CertCache parses and builds
// every time; the zero value is an empty cache. Safe for concurrent use.
type CertCache struct {
	mu     sync.RWMutex
	m      map[[32]byte]cachedCert
	chains map[[32]byte]chainSet
}

type cachedCert struct {
	cert *signing.Certificate
	err  error
}

const (
	certCacheSize    = 4096
	certCacheMaxCert = 64 << 10
)

// NewCertCache returns an empty cache.
func NewCertCache() *CertCache { return &CertCache{} }

// parse returns the parsed certificate of der, from the cache if it is
// there. The certificate never aliases der.
func (c *CertCache) parse(der []byte) (*signing.Certificate, error) {
	if c == nil || len(der) > certCacheMaxCert {
		return signing.ParseCertificate(bytes.Clone(der))
	}
	key := sha256.Sum256(der)
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return e.cert, e.err
	}
	e.cert, e.err = signing.ParseCertificate(bytes.Clone(der))
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[key]; ok {
		return prev.cert, prev.err // parsed concurrently: everyone shares the first
	}
	if c.m == nil {
		c.m = make(map[[32]byte]cachedCert)
	}
	if len(c.m) >= certCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
	return e.cert, e.err
}

// buildChains builds the chains from leaf through candidates (through the
// cache) and counts the signature checks that took against the table's
// MaxChainChecks, cached or not, so that whether a table is over the cap
// does not depend on what the cache holds. Past the cap it builds nothing
// more: the table is then malformed.
func (v *verifier) buildChains(leaf *signing.Certificate, candidates []*signing.Certificate) [][]*signing.Certificate {
	if v.chainChecks < 0 {
		return [][]*signing.Certificate{{leaf}}
	}
	chains, n := v.opts.Cache.buildChains(leaf, candidates)
	v.chainChecks -= n
	return chains
}

// chainSet is what the cache keeps of a chain search: the chains and the
// signature checks it made.
type chainSet struct {
	chains [][]*signing.Certificate
	checks int
}

// buildChains returns signing.BuildChainsCounted(leaf, candidates), from
// the cache if it is there. The chains are shared: callers must not modify
// them.
func (c *CertCache) buildChains(leaf *signing.Certificate, candidates []*signing.Certificate) ([][]*signing.Certificate, int) {
	if c == nil {
		return signing.BuildChainsCounted(leaf, candidates)
	}
	h := sha256.New()
	h.Write(leaf.SHA256[:])
	for _, x := range candidates {
		h.Write(x.SHA256[:])
	}
	var key [32]byte
	h.Sum(key[:0])
	c.mu.RLock()
	set, ok := c.chains[key]
	c.mu.RUnlock()
	if ok {
		return slices.Clone(set.chains), set.checks
	}
	set.chains, set.checks = signing.BuildChainsCounted(leaf, candidates)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.chains[key]; ok {
		return slices.Clone(prev.chains), prev.checks
	}
	if c.chains == nil {
		c.chains = make(map[[32]byte]chainSet)
	}
	if len(c.chains) >= certCacheSize {
		for k := range c.chains {
			delete(c.chains, k)
			break
		}
	}
	c.chains[key] = set
	return slices.Clone(set.chains), set.checks
}
