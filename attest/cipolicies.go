package attest

// The code integrity (App Control for Business / WDAC) policies Windows
// booted with, as it measures them into the WBCL, and the attestation
// policy's ci_policies requirement on them.
//
// Sources for the layouts (facts only, no code):
//
//   - SIPAEVENT_SI_POLICY = SIPAEVENTTYPE_OSPARAMETER + 0x000F = 0x0005000F,
//     and SIPAEVENT_SI_POLICY_PAYLOAD (under #pragma pack(1)): PolicyVersion
//     (ULONGLONG), PolicyNameLength (UINT16, bytes), HashAlgID (UINT16, a
//     TPM_ALG_ID), DigestLength (UINT32), then PolicyName
//     (PolicyNameLength bytes, "a WCHAR string with a terminating zero")
//     and Digest (DigestLength bytes): the Windows SDK's wbcl.h
//     (github.com/tpn/winsdk-10, Include/10.0.14393.0/um/wbcl.h). The same
//     header's SIPAEVENT_REVOCATION_LIST_PAYLOAD layout matches the
//     0x00050013 events of the real Windows logs in ../shared, which
//     confirms the packing. (0x000A0001, sometimes quoted for the SI policy
//     event, is SIPAEVENT_VBS_VSM_REQUIRED.)
//   - PolicyVersion holds four 16-bit parts, revision in the low bits and
//     major in the high ones, as Matt Graeber's TCGLogTools decodes it
//     (the same encoding as VersionEx in a binary policy).
//   - The binary policy header (.cip, or the content of a signed .p7b):
//     format version (u32), PolicyTypeID GUID, PlatformID GUID, options
//     (u32), the EKU, file rule, signer and signing scenario counts (u32
//     each), VersionEx (four u16, revision first), and the header length
//     0x40 (u32): Matt Graeber's CIPolicyParser.ps1
//     (ConvertTo-CIPolicy/ConvertTo-WDACCodeIntegrityPolicy) and the
//     "XML to binary" write-up of HotCakeX/Harden-Windows-Security, which
//     also says the header GUID of a multiple-policy-format file is its
//     BasePolicyID (the PolicyID follows in the format-6 block at the
//     end of the body, which this package does not read).
//
// None of the real logs in ../shared carries an SI policy event (their
// hosts ran without App Control policies in the measured set), so what
// Windows writes as the policy name is not established from a real log:
// the requirement matches the name as the policy's GUID (with or without
// braces, any case) or as the name the requirement gives. Likewise, whether
// the digest of a signed .p7b covers the file or its content is not
// established: a requirement from a signed file accepts either.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing/cms"
)

// sipaSIPolicy is SIPAEVENT_SI_POLICY.
const sipaSIPolicy = 0x0005000F

// siPolicyHeader is the fixed part of SIPAEVENT_SI_POLICY_PAYLOAD.
const siPolicyHeader = 16

// TPM_ALG_IDs of the digests an SI policy event may carry.
var tpmHashAlgs = map[uint16]struct {
	name string
	size int
}{
	0x0004: {"sha1", 20},
	0x000B: {"sha256", 32},
	0x000C: {"sha384", 48},
	0x000D: {"sha512", 64},
}

// ErrSIPolicyEvent is wrapped by the errors of [ParseSIPolicyEvent].
var ErrSIPolicyEvent = errors.New("malformed SIPAEVENT_SI_POLICY event")

// CIPolicy is a code integrity policy Windows measured as loaded at boot
// (one SIPAEVENT_SI_POLICY event).
type CIPolicy struct {
	// Name is the event's policy name (Windows may write the policy's
	// name or its GUID).
	Name string `json:"name"`
	// Version is the policy's version, a.b.c.d.
	Version   string `json:"version"`
	VersionEx uint64 `json:"-"`
	// HashAlg is the digest's algorithm: sha1, sha256, sha384, sha512, or
	// the TPM_ALG_ID in hex for another.
	HashAlg string `json:"hash_alg"`
	// Digest is the digest of the policy blob Windows loaded, in hex.
	Digest string `json:"digest"`
}

// ID is the policy's GUID (lowercase, without braces) when its name is
// one, and "" otherwise.
func (c *CIPolicy) ID() string {
	id, _ := NormalizeGUID(c.Name)
	return id
}

// ParseSIPolicyEvent reads the data of a SIPAEVENT_SI_POLICY event. The
// data must be exactly the payload: the 16-byte header, a name of
// PolicyNameLength bytes (UTF-16LE, an even length of at most
// limits.MaxSIPolicyName, ending in at most NUL terminators, with no NUL
// inside) and a digest of DigestLength bytes (the size of HashAlgID's
// digest for SHA-1 and SHA-2; at most 64 bytes for another algorithm).
// Errors wrap ErrSIPolicyEvent.
func ParseSIPolicyEvent(data []byte) (c *CIPolicy, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%w: internal error: %w", ErrSIPolicyEvent, panicerr.New(r))
		}
	}()
	fail := func(format string, args ...any) (*CIPolicy, error) {
		return nil, fmt.Errorf("%w: %s", ErrSIPolicyEvent, fmt.Sprintf(format, args...))
	}
	if len(data) < siPolicyHeader {
		return fail("%d bytes, shorter than its %d-byte header", len(data), siPolicyHeader)
	}
	version := binary.LittleEndian.Uint64(data)
	nameLen := int(binary.LittleEndian.Uint16(data[8:]))
	alg := binary.LittleEndian.Uint16(data[10:])
	digestLen := int64(binary.LittleEndian.Uint32(data[12:]))
	switch {
	case nameLen%2 != 0:
		return fail("policy name of %d bytes is not UTF-16", nameLen)
	case nameLen > limits.MaxSIPolicyName:
		return fail("policy name of %d bytes is over the limit of %d", nameLen, limits.MaxSIPolicyName)
	case int64(siPolicyHeader+nameLen)+digestLen != int64(len(data)):
		return fail("header says %d name and %d digest bytes, but %d bytes follow it", nameLen, digestLen, len(data)-siPolicyHeader)
	}
	a, known := tpmHashAlgs[alg]
	switch {
	case known && int64(a.size) != digestLen:
		return fail("%s digest of %d bytes (want %d)", a.name, digestLen, a.size)
	case !known && (digestLen == 0 || digestLen > 64):
		return fail("digest of %d bytes for hash algorithm 0x%04x", digestLen, alg)
	}
	name, ok := utf16Name(data[siPolicyHeader : siPolicyHeader+nameLen])
	if !ok {
		return fail("policy name is not a NUL-terminated UTF-16 string (a NUL inside, or unpaired surrogates)")
	}
	c = &CIPolicy{Name: name, VersionEx: version, Version: FormatVersionEx(version),
		Digest: hex.EncodeToString(data[siPolicyHeader+nameLen:])}
	if known {
		c.HashAlg = a.name
	} else {
		c.HashAlg = fmt.Sprintf("0x%04x", alg)
	}
	return c, nil
}

// utf16Name decodes a name: UTF-16LE code units, trailing NULs dropped;
// a NUL before the end or an unpaired surrogate is refused.
func utf16Name(b []byte) (string, bool) {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	if slices.Contains(u, 0) {
		return "", false
	}
	for i := 0; i < len(u); i++ {
		switch {
		case utf16.IsSurrogate(rune(u[i])) && u[i] < 0xDC00 && i+1 < len(u) && u[i+1] >= 0xDC00 && u[i+1] <= 0xDFFF:
			i++
		case utf16.IsSurrogate(rune(u[i])):
			return "", false
		}
	}
	return string(utf16.Decode(u)), true
}

// FormatVersionEx writes a VersionEx (four 16-bit parts, major in the high
// bits) as a.b.c.d.
func FormatVersionEx(v uint64) string {
	return fmt.Sprintf("%d.%d.%d.%d", v>>48, v>>32&0xFFFF, v>>16&0xFFFF, v&0xFFFF)
}

// ParseVersionEx reads a.b.c.d (each part 0 to 65535) into a VersionEx.
func ParseVersionEx(s string) (uint64, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return 0, fmt.Errorf("version %q: want four dot-separated numbers from 0 to 65535", s)
	}
	var v uint64
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return 0, fmt.Errorf("version %q: want four dot-separated numbers from 0 to 65535", s)
		}
		v = v<<16 | n
	}
	return v, nil
}

// NormalizeGUID returns s as a lowercase GUID without braces, if s is a
// GUID (8-4-4-4-12 hex digits, optionally in braces).
func NormalizeGUID(s string) (string, bool) {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
		default:
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// guidString formats a GUID stored as Windows does (Data1, Data2 and
// Data3 little endian, then eight bytes).
func guidString(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// BinaryCIPolicy is the header of a compiled (binary) code integrity
// policy: a .cip file, or the content of a signed SiPolicy.p7b.
type BinaryCIPolicy struct {
	// FormatVersion is the binary format's version (1 to 8 are known).
	FormatVersion uint32
	// PolicyTypeID is the header's GUID (lowercase, no braces): the
	// policy's ID in the single-policy format, its BasePolicyID in the
	// multiple-policy format (equal to its PolicyID for a base policy).
	PolicyTypeID string
	PlatformID   string
	Options      uint32
	VersionEx    uint64
	// Signed is true for a CMS SignedData (.p7b); its signature is not
	// checked here (Windows checks it when it loads the policy).
	Signed bool
	// SHA256 are the digests a measurement of this policy may carry: of
	// the file, and for a signed file also of its content.
	SHA256 [][32]byte
}

// Version is the policy's version, a.b.c.d.
func (b *BinaryCIPolicy) Version() string { return FormatVersionEx(b.VersionEx) }

// binaryPolicyHeader is the size of a binary policy's fixed header,
// including the header length field, which holds binaryPolicyHeader-4.
const binaryPolicyHeader = 0x44

// ErrBinaryCIPolicy is wrapped by the errors of [ParseBinaryCIPolicy].
var ErrBinaryCIPolicy = errors.New("malformed binary code integrity policy")

// ParseBinaryCIPolicy reads the header of a compiled code integrity policy
// (see [BinaryCIPolicy]), unwrapping a CMS SignedData first. It checks the
// format version (1 to 8), the header length field (0x40) and that the
// file is larger than its header; it does not read the body. Errors wrap
// ErrBinaryCIPolicy.
func ParseBinaryCIPolicy(data []byte) (p *BinaryCIPolicy, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: internal error: %w", ErrBinaryCIPolicy, panicerr.New(r))
		}
	}()
	p = &BinaryCIPolicy{SHA256: [][32]byte{sha256.Sum256(data)}}
	body := data
	if len(data) > 0 && data[0] == 0x30 {
		// A DER SEQUENCE: a signed policy. (A binary policy starts with
		// its format version, a small little-endian number.)
		sd, err := cms.Parse(data, cms.ParseOptions{})
		if err != nil {
			return nil, fmt.Errorf("%w: signed policy: %w", ErrBinaryCIPolicy, err)
		}
		if sd.Content == nil || !sd.OctetString {
			return nil, fmt.Errorf("%w: signed policy: the encapsulated content is not an OCTET STRING holding the policy", ErrBinaryCIPolicy)
		}
		body, p.Signed = sd.Content, true
		p.SHA256 = append(p.SHA256, sha256.Sum256(body))
	}
	if len(body) <= binaryPolicyHeader {
		return nil, fmt.Errorf("%w: %d bytes, not more than its %d-byte header", ErrBinaryCIPolicy, len(body), binaryPolicyHeader)
	}
	p.FormatVersion = binary.LittleEndian.Uint32(body)
	if p.FormatVersion < 1 || p.FormatVersion > 8 {
		return nil, fmt.Errorf("%w: format version %d (known: 1 to 8)", ErrBinaryCIPolicy, p.FormatVersion)
	}
	if hl := binary.LittleEndian.Uint32(body[0x40:]); hl != binaryPolicyHeader-4 {
		return nil, fmt.Errorf("%w: header length field is 0x%x (want 0x%x)", ErrBinaryCIPolicy, hl, binaryPolicyHeader-4)
	}
	p.PolicyTypeID = guidString(body[0x04:0x14])
	p.PlatformID = guidString(body[0x14:0x24])
	p.Options = binary.LittleEndian.Uint32(body[0x24:])
	p.VersionEx = binary.LittleEndian.Uint64(body[0x38:])
	return p, nil
}

// CIPolicyRequirement is one entry of the attestation policy's
// ci_policies: a code integrity policy the host must have booted with.
type CIPolicyRequirement struct {
	// ID is the policy's GUID (lowercase, no braces).
	ID string
	// Name, when set, is a name the SI policy event may carry instead of
	// the GUID.
	Name string
	// MinVersion is the lowest VersionEx accepted.
	MinVersion uint64
	// SHA256 are the digests accepted; none accepts any digest.
	SHA256 [][32]byte
	// Source says where the values came from, for messages.
	Source string
	Line   int
}

// String names the requirement in messages.
func (r *CIPolicyRequirement) String() string {
	s := "{" + r.ID + "}"
	if r.Name != "" {
		s += fmt.Sprintf(" (%q)", r.Name)
	}
	return s
}

// matches reports whether the measured policy c is the required one.
func (r *CIPolicyRequirement) matches(c *CIPolicy) bool {
	return c.ID() == r.ID || (r.Name != "" && strings.EqualFold(c.Name, r.Name))
}

// ciPolicies reads ci_policies: a list of {id, name, min_version, sha256,
// file, xml}.
func (d *policyDecoder) ciPolicies(n *yaml.Node) []CIPolicyRequirement {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "ci_policies must be a list")
		return nil
	}
	out := []CIPolicyRequirement{}
	for i, e := range n.Content {
		if r, ok := d.ciPolicy(e, fmt.Sprintf("ci_policies: entry %d", i+1)); ok {
			out = append(out, r)
		}
	}
	return out
}

func (d *policyDecoder) ciPolicy(n *yaml.Node, what string) (CIPolicyRequirement, bool) {
	before := len(d.Problems)
	r := CIPolicyRequirement{Line: n.Line}
	var id, minVersion, digest, file, xmlFile string
	read := func(v *yaml.Node, key, name string) []byte {
		if name == "" {
			return nil
		}
		if d.opts.ReadFile == nil {
			d.Errorf(v, "%s: %s %q: this policy was loaded without access to other files", what, key, name)
			return nil
		}
		b, err := d.opts.ReadFile(name)
		if err != nil {
			d.Errorf(v, "%s: %s %q: %v", what, key, name, err)
			return nil
		}
		return b
	}
	seen := d.Fields(n, what, map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { d.Str(v, "id", &id) },
		"name":        func(v *yaml.Node) { d.Str(v, "name", &r.Name) },
		"min_version": func(v *yaml.Node) { d.Str(v, "min_version", &minVersion) },
		"sha256":      func(v *yaml.Node) { d.Str(v, "sha256", &digest) },
		"file":        func(v *yaml.Node) { d.Str(v, "file", &file) },
		"xml":         func(v *yaml.Node) { d.Str(v, "xml", &xmlFile) },
	})
	if n.Kind != yaml.MappingNode || len(d.Problems) > before {
		return r, false
	}
	var sources []string
	// The ID: given, or from the XML, or from the binary's header.
	if id != "" {
		g, ok := NormalizeGUID(id)
		if !ok {
			d.Errorf(seen["id"], "%s: id %q is not a GUID", what, id)
		}
		r.ID = g
	}
	var fromVersion uint64
	var versionFrom, headerID string
	if xmlFile != "" {
		if b := read(seen["xml"], "xml", xmlFile); b != nil {
			cp, err := cipolicy.Parse(b, xmlFile)
			switch {
			case err != nil:
				d.Errorf(seen["xml"], "%s: xml %q: %v", what, xmlFile, err)
			case cp.Format != "sipolicy":
				d.Errorf(seen["xml"], "%s: xml %q is a %s policy, not WDAC SiPolicy XML", what, xmlFile, cp.Format)
			default:
				g, ok := NormalizeGUID(cp.ID)
				v, verr := ParseVersionEx(cp.Version)
				switch {
				case !ok:
					d.Errorf(seen["xml"], "%s: xml %q: policy ID %q is not a GUID", what, xmlFile, cp.ID)
				case verr != nil:
					d.Errorf(seen["xml"], "%s: xml %q: VersionEx: %v", what, xmlFile, verr)
				case r.ID != "" && r.ID != g:
					d.Errorf(seen["xml"], "%s: id {%s} differs from the PolicyID {%s} of xml %q", what, r.ID, g, xmlFile)
				default:
					// The binary's header holds a supplemental policy's
					// base ID, and any other policy's own.
					headerID = g
					if cp.Type == cipolicy.Supplemental {
						headerID, _ = NormalizeGUID(cp.BaseID)
					}
					r.ID, fromVersion, versionFrom = g, v, "xml "+strconv.Quote(xmlFile)
					sources = append(sources, versionFrom)
				}
			}
		}
	}
	switch {
	case file != "" && digest != "":
		d.Errorf(n, "%s: give one of sha256 and file", what)
	case digest != "":
		b, err := hex.DecodeString(digest)
		if err != nil || len(b) != 32 {
			d.Errorf(seen["sha256"], "%s: sha256 %q: want 64 hex digits", what, digest)
			break
		}
		r.SHA256 = [][32]byte{[32]byte(b)}
	case file != "":
		b := read(seen["file"], "file", file)
		if b == nil {
			break
		}
		bp, err := ParseBinaryCIPolicy(b)
		if err != nil {
			d.Errorf(seen["file"], "%s: file %q: %v", what, file, err)
			break
		}
		r.SHA256 = bp.SHA256
		sources = append(sources, "file "+strconv.Quote(file))
		switch {
		case r.ID == "":
			r.ID = bp.PolicyTypeID
		case headerID != "" && headerID != bp.PolicyTypeID:
			d.Errorf(seen["file"], "%s: the header of file %q holds the ID {%s}, but xml %q says {%s}: not the policy compiled from it", what, file, bp.PolicyTypeID, xmlFile, headerID)
		case headerID == "" && r.ID != bp.PolicyTypeID:
			// Only a base policy's ID is in the header: a supplemental
			// policy's header names its base.
			d.Errorf(seen["file"], "%s: id {%s} differs from the ID {%s} in the header of file %q (for a supplemental policy, the header holds its base policy's ID: give xml)", what, r.ID, bp.PolicyTypeID, file)
		}
		switch {
		case versionFrom == "":
			fromVersion, versionFrom = bp.VersionEx, "file "+strconv.Quote(file)
		case fromVersion != bp.VersionEx:
			d.Errorf(seen["file"], "%s: file %q is version %s, but %s says %s", what, file, bp.Version(), versionFrom, FormatVersionEx(fromVersion))
		}
	}
	if r.ID == "" && len(d.Problems) == before {
		d.Errorf(n, "%s: give id, xml or file: which policy is required", what)
	}
	r.MinVersion = fromVersion
	if minVersion != "" {
		v, err := ParseVersionEx(minVersion)
		switch {
		case err != nil:
			d.Errorf(seen["min_version"], "%s: min_version: %v", what, err)
		case file != "" && r.SHA256 != nil && v > fromVersion:
			d.Errorf(seen["min_version"], "%s: min_version %s is above version %s of %s, whose digest is required: no host could pass", what, minVersion, FormatVersionEx(fromVersion), versionFrom)
		default:
			r.MinVersion = v
		}
	}
	if len(d.Problems) > before {
		return r, false
	}
	r.Source = strings.Join(sources, ", ")
	return r, true
}

// addCIPolicy records a measured SI policy once (Windows' boot manager and
// loader each measure their settings).
func (w *WindowsState) addCIPolicy(data []byte) error {
	c, err := ParseSIPolicyEvent(data)
	if err != nil {
		return err
	}
	if slices.Contains(w.CIPolicies, *c) {
		return nil
	}
	if len(w.CIPolicies) >= limits.MaxActiveCIPolicies {
		return fmt.Errorf("more than %d distinct SI policy events", limits.MaxActiveCIPolicies)
	}
	w.CIPolicies = append(w.CIPolicies, *c)
	return nil
}

// ciPoliciesCheck is policy.ci-policies: each required policy was
// measured, every measurement of it at MinVersion or above, with an
// accepted digest.
func ciPoliciesCheck(v *Verified, bs *BootState, reqs []CIPolicyRequirement) (bool, string) {
	if bs.WindowsProblem != "" {
		return false, "the Windows boot configuration could not be read: " + bs.WindowsProblem
	}
	if bs.Windows == nil {
		msg := "no Windows boot configuration (WBCL) measured: the active code integrity policies are unknown"
		if u := uncovered(v, 12, 13, 14); len(u) > 0 {
			msg += fmt.Sprintf(" (PCRs %s are not covered by a quote)", pcrList(u))
		}
		return false, msg
	}
	active := bs.Windows.CIPolicies
	var bad, good []string
	for i := range reqs {
		r := &reqs[i]
		var problems []string
		found := 0
		for j := range active {
			c := &active[j]
			if !r.matches(c) {
				continue
			}
			found++
			switch {
			case c.VersionEx < r.MinVersion:
				problems = append(problems, fmt.Sprintf("version %s is below %s", c.Version, FormatVersionEx(r.MinVersion)))
			case len(r.SHA256) > 0 && c.HashAlg != "sha256":
				problems = append(problems, fmt.Sprintf("measured with %s, not sha256: its digest cannot be compared", c.HashAlg))
			case len(r.SHA256) > 0 && !slices.ContainsFunc(r.SHA256, func(h [32]byte) bool { return hex.EncodeToString(h[:]) == c.Digest }):
				problems = append(problems, fmt.Sprintf("version %s has digest %s, not the one required", c.Version, c.Digest))
			}
		}
		switch {
		case found == 0:
			var names []string
			for j := range active {
				if j == 8 {
					names = append(names, fmt.Sprintf("and %d more", len(active)-8))
					break
				}
				names = append(names, strconv.Quote(active[j].Name))
			}
			msg := fmt.Sprintf("%s is not active: the host measured %d code integrity policies", r, len(active))
			if len(names) > 0 {
				msg += " (" + strings.Join(names, ", ") + ")"
			}
			bad = append(bad, msg)
		case len(problems) > 0:
			bad = append(bad, fmt.Sprintf("%s: %s", r, strings.Join(problems, "; ")))
		default:
			good = append(good, r.String())
		}
	}
	if u := uncovered(v, 12, 13, 14); len(bad) > 0 && len(u) > 0 {
		bad = append(bad, fmt.Sprintf("PCRs %s are not covered by a quote: their events were not read", pcrList(u)))
	}
	if len(bad) > 0 {
		return false, strings.Join(bad, "; ")
	}
	return true, fmt.Sprintf("%d required code integrity policies active at or above their versions: %s", len(good), strings.Join(good, ", "))
}

// CIPolicyClaim is an active code integrity policy, as Windows measured
// it.
type CIPolicyClaim struct {
	Name string `json:"name"`
	// ID is the policy's GUID when the name is one.
	ID      string `json:"id,omitempty"`
	Version string `json:"version"`
	HashAlg string `json:"hashAlg"`
	Digest  string `json:"digest"`
}

func ciPolicyClaims(w *WindowsState) []CIPolicyClaim {
	out := []CIPolicyClaim{}
	for i := range w.CIPolicies {
		c := &w.CIPolicies[i]
		out = append(out, CIPolicyClaim{Name: c.Name, ID: c.ID(), Version: c.Version, HashAlg: c.HashAlg, Digest: c.Digest})
	}
	return out
}
