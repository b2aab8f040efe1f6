package triage

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
)

// Event IDs of the Microsoft-Windows-CodeIntegrity/Operational log that
// triage reads ("Understanding App Control events",
// https://learn.microsoft.com/windows/security/application-security/application-control/app-control-for-business/operations/event-id-explanations).
const (
	// IDAudit (3076): a file would have been blocked by a policy in
	// audit mode.
	IDAudit = 3076
	// IDBlock (3077): a file was blocked by an enforced policy.
	IDBlock = 3077
	// IDSignature (3089): one signature of the file of a 3076 or 3077
	// event, one event per signature, correlated by the ActivityID of
	// the System element's Correlation.
	IDSignature = 3089
)

// ErrMalformed is the error of an event or export that cannot be read:
// test for it with errors.Is.
var ErrMalformed = errors.New("triage: malformed event")

// Event is one 3076 or 3077 event, with its 3089 signature events.
//
// The field names follow Microsoft's event template (see fields below):
// SHA1Hash and SHA256Hash are the Authenticode (image) hashes that App
// Control hash rules compare; SHA1FlatHash and SHA256FlatHash are the
// hashes of the whole file (the digest csv sign's manifest records).
type Event struct {
	// Source is the export the event was read from, Index its position
	// among the events of that export (1-based, counting every event).
	Source string `json:"source"`
	Index  int    `json:"index"`
	// ID is IDAudit or IDBlock; Version the event's template version
	// (-1 when the export does not say).
	ID         int       `json:"id"`
	Version    int       `json:"version"`
	RecordID   uint64    `json:"record_id,omitempty"`
	Time       time.Time `json:"time,omitzero"`
	Computer   string    `json:"computer,omitempty"`
	ActivityID string    `json:"activity_id,omitempty"`

	// FileName is the file as the event names it: usually an NT device
	// path (\Device\HarddiskVolume3\...). Path is that path made readable
	// (see ReadablePath); neither is evidence of what the file is.
	FileName    string `json:"file_name"`
	Path        string `json:"path"`
	ProcessName string `json:"process_name,omitempty"`

	RequestedSigningLevel int    `json:"requested_signing_level"`
	ValidatedSigningLevel int    `json:"validated_signing_level"`
	Status                string `json:"status,omitempty"`

	SHA1Hash       []byte `json:"-"`
	SHA256Hash     []byte `json:"-"`
	SHA1FlatHash   []byte `json:"-"`
	SHA256FlatHash []byte `json:"-"`
	USN            uint64 `json:"usn,omitempty"`
	// Scenario is the SI Signing Scenario: 0 kernel mode (drivers), 1
	// user mode.
	Scenario int `json:"signing_scenario"`

	// The policy that blocked (or would have blocked) the file.
	// PolicyName and PolicyID are its PolicyInfo settings (Name and Id),
	// PolicyGUID its <PolicyID> GUID, PolicyHash the SHA-256 of the
	// binary (compiled) policy.
	PolicyName string `json:"policy_name,omitempty"`
	PolicyID   string `json:"policy_id,omitempty"`
	PolicyGUID string `json:"policy_guid,omitempty"`
	PolicyHash []byte `json:"-"`

	// The file's version resource, as the event reports it.
	OriginalFileName  string `json:"original_file_name,omitempty"`
	InternalName      string `json:"internal_name,omitempty"`
	FileDescription   string `json:"file_description,omitempty"`
	ProductName       string `json:"product_name,omitempty"`
	FileVersion       string `json:"file_version,omitempty"`
	UserWriteable     *bool  `json:"user_writeable,omitempty"`
	PackageFamilyName string `json:"package_family_name,omitempty"`

	// Signatures are the 3089 events with the same ActivityID (and
	// computer), by their Signature index.
	Signatures []Signature `json:"signatures,omitempty"`
}

// Enforced reports whether the event is a block (3077) rather than an
// audit (3076).
func (e *Event) Enforced() bool { return e.ID == IDBlock }

// Signature is one 3089 event: a signature of the file of a 3076 or
// 3077 event, as Code Integrity read it. Nothing here was verified by
// csv: it is what the host says.
type Signature struct {
	ActivityID string `json:"-"`
	Computer   string `json:"-"`
	Source     string `json:"-"`
	Index      int    `json:"-"`

	TotalSignatureCount int `json:"total_signature_count"`
	// Number is the Signature field: this signature's index.
	Number                int       `json:"signature"`
	Hash                  []byte    `json:"-"`
	PageHash              bool      `json:"page_hash"`
	SignatureType         int       `json:"signature_type"`
	ValidatedSigningLevel int       `json:"validated_signing_level"`
	VerificationError     int       `json:"verification_error"`
	Flags                 uint64    `json:"flags"`
	NotValidBefore        time.Time `json:"not_valid_before,omitzero"`
	NotValidAfter         time.Time `json:"not_valid_after,omitzero"`
	PublisherName         string    `json:"publisher_name,omitempty"`
	IssuerName            string    `json:"issuer_name,omitempty"`
	PublisherTBSHash      []byte    `json:"-"`
	IssuerTBSHash         []byte    `json:"-"`
}

// Sound reports whether the host verified the signature itself, whatever
// its policy then decided: VerificationError 0 (verified), or one of the
// codes by which only a signing level or policy refused a signature that
// verified (16 default policy signing level, 17 and 18 custom signing
// levels, 21 "failed to pass" the App Control policy). Every other code
// (invalid hash, unsigned, revoked, expired, weak hash, invalid root,
// page hash mismatch, invalid image hash, ...) says the signature did not
// verify: a file changed after signing keeps its certificates, and its
// signer then proves nothing. Codes from Microsoft's "Understanding App
// Control event tags", VerificationError.
func (s *Signature) Sound() bool {
	switch s.VerificationError {
	case 0, 16, 17, 18, 21:
		return true
	}
	return false
}

// Templates: the field names of each event, in the order the event
// template lists them, which is the order of Get-WinEvent's positional
// Properties. Sources: Microsoft's "Understanding App Control event tags"
// (https://learn.microsoft.com/windows/security/application-security/application-control/app-control-for-business/operations/event-tag-explanations)
// for the meanings; the provider manifest's templates per version as
// Get-WinEvent -ListProvider prints them, captured on Windows 11 24H2 and
// 10 1809 LTSC in AaronMargosis/AaronLockerV2 (Scripts/3077_*.txt,
// Scripts/3089_*.txt, Scripts/CiEventsOfInterest-Win11-24H2.txt, and the
// research notes beside them), and OTRF/OSSEM's data dictionary
// (data_dictionaries/windows/etw-providers/Microsoft-Windows-CodeIntegrity/events/event-3077_v5.md).
// Each version appended fields, except that the flat hashes came in
// after the SHA256 Hash; and version 4 differs between Windows builds
// (1809 LTSC: the flat hashes and no PolicyGUID, 32 fields; 21H2 and
// later: PolicyGUID and no flat hashes, 29 fields). So a positional
// template is picked by the version and the count of values together,
// and an event whose pair is not one of these is an error.
var (
	blockV0 = []string{
		"FileNameLength", "File Name", "ProcessNameLength", "Process Name",
		"Requested Signing Level", "Validated Signing Level", "Status",
		"SHA1 Hash Size", "SHA1 Hash", "SHA256 Hash Size", "SHA256 Hash",
		"USN", "SI Signing Scenario",
	}
	blockV1 = concat(blockV0, []string{"PolicyNameLength", "PolicyName", "PolicyIDLength", "PolicyID"})
	blockV2 = concat(blockV1, []string{"PolicyHashSize", "PolicyHash"})
	blockV3 = concat(blockV2, []string{
		"OriginalFileNameLength", "OriginalFileName", "InternalNameLength", "InternalName",
		"FileDescriptionLength", "FileDescription", "ProductNameLength", "ProductName", "FileVersion",
	})
	blockFieldsV4     = concat(blockV3, []string{"PolicyGUID"})
	blockFieldsV4LTSC = withFlatHashes(blockV3)
	blockFieldsV5     = concat(withFlatHashes(blockFieldsV4), []string{"UserWriteable", "PackageFamilyNameLength", "PackageFamilyName"})

	signatureV0 = []string{
		"TotalSignatureCount", "Signature", "Hash Size", "Hash",
		"SignatureType", "ValidatedSigningLevel", "VerificationError", "Flags", "PolicyBits",
		"NotValidBefore", "NotValidAfter", "PublisherNameLength", "PublisherName",
		"IssuerNameLength", "IssuerName",
	}
	signatureV1 = concat(signatureV0[:4], []string{"PageHash"}, signatureV0[4:],
		[]string{"PublisherTBSHashSize", "PublisherTBSHash", "IssuerTBSHashSize", "IssuerTBSHash"})
	signatureFieldsV2 = concat(signatureV1[:2], []string{"CacheState"}, signatureV1[2:])
	signatureV3       = concat(signatureFieldsV2, []string{"OPUSInfoLength", "OPUSInfo", "EKUsSize", "EKUs", "KnownRoot"})

	// templates are the positional layouts by event ID and version.
	templates = map[int]map[int][][]string{
		IDBlock: {0: {blockV0}, 1: {blockV1}, 2: {blockV2}, 3: {blockV3},
			4: {blockFieldsV4, blockFieldsV4LTSC}, 5: {blockFieldsV5}},
		IDSignature: {0: {signatureV0}, 1: {signatureV1}, 2: {signatureFieldsV2}, 3: {signatureV3}},
	}
)

func init() { templates[IDAudit] = templates[IDBlock] }

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// withFlatHashes inserts the flat hash fields after the SHA256 Hash.
func withFlatHashes(t []string) []string {
	i := 11 // after "SHA256 Hash"
	return concat(t[:i], []string{"SHA1 Flat Hash Size", "SHA1 Flat Hash", "SHA256 Flat Hash Size", "SHA256 Flat Hash"}, t[i:])
}

// template returns the field names of event id's template version v for
// n positional values, or an error naming what csv knows.
func template(id, v, n int) ([]string, error) {
	known := templates[id]
	if v < 0 {
		// No version in the export: the count of values picks the
		// template, when exactly one has that many.
		var pick []string
		count := 0
		for _, ts := range known {
			for _, t := range ts {
				if len(t) == n {
					pick, count = t, count+1
				}
			}
		}
		if count == 1 {
			return pick, nil
		}
		return nil, fmt.Errorf("no Version and %d positional Properties: no single template of event %d has that many; export with the Version property, or as XML (wevtutil qe /f:xml), which names every field", n, id)
	}
	ts, ok := known[v]
	if !ok {
		return nil, fmt.Errorf("event %d template version %d is not one csv reads positionally (it knows %s); export as XML (wevtutil qe /f:xml), which names every field", id, v, knownVersions(known))
	}
	var counts []string
	for _, t := range ts {
		if len(t) == n {
			return t, nil
		}
		counts = append(counts, strconv.Itoa(len(t)))
	}
	return nil, fmt.Errorf("event %d version %d has %d positional Properties; its templates have %s; export as XML (wevtutil qe /f:xml), which names every field", id, v, n, strings.Join(counts, " or "))
}

func knownVersions(m map[int][][]string) string {
	var vs []string
	for _, v := range []int{0, 1, 2, 3, 4, 5, 6} {
		if _, ok := m[v]; ok {
			vs = append(vs, strconv.Itoa(v))
		}
	}
	return "versions " + strings.Join(vs, ", ")
}

// fieldKey is the key a field name is matched by: without spaces, in
// lower case, so that "File Name" (the XML rendering and Microsoft's
// docs) and "FileName" (the manifest's other spelling) are one field.
func fieldKey(name string) string {
	return asciiLower(strings.ReplaceAll(name, " ", ""))
}

// asciiLower lowers the ASCII letters of s, and only those: Unicode's
// lowering (strings.ToLower) takes U+0130 (İ) to i and U+212A (the Kelvin
// sign) to k, which PowerShell's ordinal ignore-case comparison does not,
// so "İd" would be csv's Id and no one else's.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// asciiName refuses a member or field name with a byte outside ASCII.
// Every name Windows writes (EventLogRecord's properties, the provider
// manifest's field names) is ASCII, and readers disagree on the others:
// Go's Unicode lowering takes İ (U+0130) for i and the Kelvin sign for k;
// .NET's ToUpperInvariant takes ſ (U+017F) for S and ı (U+0131) for I;
// .NET's OrdinalIgnoreCase (PowerShell's member lookup) takes no
// non-ASCII letter for an ASCII one since .NET 5 (dotnet/runtime#32247);
// a full case folding takes the ligature ﬁ for "fi". Such a name would
// be the field for some readers and not for others: refused rather than
// read one way.
func asciiName(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			return fmt.Errorf("%q: a name that is not ASCII (readers fold its letters differently): refused", truncate(name, 40))
		}
	}
	return nil
}

// fields is one event's EventData: field key to its value as text.
type fields map[string]string

// add stores a field, refusing a repeated one and values over the caps.
func (f fields) add(name, value string) error {
	if len(f) >= limits.MaxEventFields {
		return fmt.Errorf("more than %d fields", limits.MaxEventFields)
	}
	if len(value) > limits.MaxEventField {
		return fmt.Errorf("field %q is %d bytes, over the limit of %d", truncate(name, 40), len(value), limits.MaxEventField)
	}
	if len(name) > 256 {
		return fmt.Errorf("a field name of %d bytes", len(name))
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("field %q is not valid UTF-8", truncate(name, 40))
	}
	if err := asciiName(name); err != nil {
		return fmt.Errorf("field %w", err)
	}
	k := fieldKey(name)
	if _, dup := f[k]; dup {
		return fmt.Errorf("field %q given twice", truncate(name, 40))
	}
	f[k] = value
	return nil
}

func (f fields) str(name string) string { return f[fieldKey(name)] }

func (f fields) has(name string) bool { _, ok := f[fieldKey(name)]; return ok }

// uint reads an unsigned number field: decimal, or hex with 0x (Status
// and Flags are HexInt32). Absent is 0.
func (f fields) uint(name string, bits int) (uint64, error) {
	s := strings.TrimSpace(f.str(name))
	if s == "" {
		return 0, nil
	}
	var n uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		n, err = strconv.ParseUint(h, 16, bits)
	} else {
		n, err = strconv.ParseUint(s, 10, bits)
	}
	if err != nil {
		return 0, fmt.Errorf("field %q: %q is not a %d-bit unsigned number", name, truncate(s, 40), bits)
	}
	return n, nil
}

func (f fields) int(name string, bits int) (int, error) {
	n, err := f.uint(name, bits)
	return int(n), err
}

func (f fields) bool(name string) (*bool, error) {
	s := strings.TrimSpace(f.str(name))
	switch strings.ToLower(s) {
	case "":
		return nil, nil
	case "true", "1":
		t := true
		return &t, nil
	case "false", "0":
		b := false
		return &b, nil
	}
	return nil, fmt.Errorf("field %q: %q is not a boolean", name, truncate(s, 40))
}

// bin reads a Binary field whose length its size field states (when the
// export has it): hex (XML, and numbers arrays turned to hex), or base64
// (PowerShell 7's ConvertTo-Json writes byte arrays so). An absent or
// empty field is nil. want, when not 0, is the length the hash must have.
func (f fields) bin(name, sizeName string, want ...int) ([]byte, error) {
	s := strings.TrimSpace(f.str(name))
	size := -1
	if f.has(sizeName) {
		n, err := f.uint(sizeName, 32)
		if err != nil {
			return nil, err
		}
		size = int(n)
	}
	if s == "" {
		if size > 0 {
			return nil, fmt.Errorf("field %q is empty, but %q says %d bytes", name, sizeName, size)
		}
		return nil, nil
	}
	b, err := decodeBinary(s, size)
	if err != nil {
		return nil, fmt.Errorf("field %q: %w", name, err)
	}
	if size >= 0 && len(b) != size {
		return nil, fmt.Errorf("field %q holds %d bytes, but %q says %d", name, len(b), sizeName, size)
	}
	if len(want) > 0 {
		ok := false
		for _, w := range want {
			ok = ok || len(b) == w
		}
		if !ok {
			return nil, fmt.Errorf("field %q holds %d bytes, not a hash of %v bytes", name, len(b), want)
		}
	}
	return b, nil
}

// decodeBinary reads hex, or base64 when the text is not hex of the
// expected size (size < 0: unknown).
func decodeBinary(s string, size int) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && (size < 0 || len(b) == size) {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && (size < 0 || len(b) == size) {
		return b, nil
	}
	if s == "System.Byte[]" || strings.HasPrefix(s, "System.") {
		return nil, fmt.Errorf("%q is a .NET type name, not the bytes: ConvertTo-Json stopped at its -Depth (export with ConvertTo-Json -Depth 4)", truncate(s, 40))
	}
	return nil, fmt.Errorf("%q is neither hex nor base64 of the size stated", truncate(s, 40))
}

// parseTime reads an event time: RFC 3339 (XML SystemTime, PowerShell
// 7), or "/Date(ms)/" (Windows PowerShell's ConvertTo-Json).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "/Date("); ok {
		rest, ok = strings.CutSuffix(rest, ")/")
		if ok {
			// "/Date(1699236219834+0100)/": the offset does not move the
			// instant, which the milliseconds give.
			if i := strings.IndexAny(rest[min(1, len(rest)):], "+-"); i >= 0 {
				rest = rest[:i+1]
			}
			ms, err := strconv.ParseInt(rest, 10, 64)
			if err == nil {
				return time.UnixMilli(ms).UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("time %q is not /Date(milliseconds)/", truncate(s, 40))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is not RFC 3339", truncate(s, 40))
	}
	return t.UTC(), nil
}

// NormalizeGUID returns a GUID without braces, in upper case: how the
// events' PolicyGUID and a SiPolicy's <PolicyID> are compared.
func NormalizeGUID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	return strings.ToUpper(s)
}

// system is what an export says of an event besides its fields.
type system struct {
	id         int
	version    int
	recordID   uint64
	time       time.Time
	computer   string
	activityID string
	provider   string
}

// provider is the event provider triage reads.
const provider = "Microsoft-Windows-CodeIntegrity"

// buildEvent makes a 3076 or 3077 event of its fields.
func buildEvent(sys system, f fields, source string, index int) (*Event, error) {
	e := &Event{Source: source, Index: index, ID: sys.id, Version: sys.version, RecordID: sys.recordID,
		Time: sys.time, Computer: sys.computer, ActivityID: NormalizeGUID(sys.activityID)}
	var errs []error
	get := func(n int, err error) int { errs = append(errs, err); return n }
	e.FileName = f.str("File Name")
	if strings.TrimSpace(e.FileName) == "" {
		errs = append(errs, errors.New("no File Name"))
	}
	e.Path = ReadablePath(e.FileName)
	e.ProcessName = f.str("Process Name")
	e.RequestedSigningLevel = get(f.int("Requested Signing Level", 8))
	e.ValidatedSigningLevel = get(f.int("Validated Signing Level", 8))
	e.Status = f.str("Status")
	var err error
	e.SHA1Hash, err = f.bin("SHA1 Hash", "SHA1 Hash Size", 20)
	errs = append(errs, err)
	e.SHA256Hash, err = f.bin("SHA256 Hash", "SHA256 Hash Size", 32)
	errs = append(errs, err)
	e.SHA1FlatHash, err = f.bin("SHA1 Flat Hash", "SHA1 Flat Hash Size", 20)
	errs = append(errs, err)
	e.SHA256FlatHash, err = f.bin("SHA256 Flat Hash", "SHA256 Flat Hash Size", 32)
	errs = append(errs, err)
	u, err := f.uint("USN", 64)
	e.USN = u
	errs = append(errs, err)
	e.Scenario = get(f.int("SI Signing Scenario", 32))
	e.PolicyName = f.str("PolicyName")
	e.PolicyID = f.str("PolicyID")
	e.PolicyGUID = NormalizeGUID(f.str("PolicyGUID"))
	e.PolicyHash, err = f.bin("PolicyHash", "PolicyHashSize")
	errs = append(errs, err)
	e.OriginalFileName = f.str("OriginalFileName")
	e.InternalName = f.str("InternalName")
	e.FileDescription = f.str("FileDescription")
	e.ProductName = f.str("ProductName")
	e.FileVersion = f.str("FileVersion")
	e.UserWriteable, err = f.bool("UserWriteable")
	errs = append(errs, err)
	e.PackageFamilyName = f.str("PackageFamilyName")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if e.SHA256Hash == nil && e.SHA1Hash == nil && e.SHA256FlatHash == nil {
		return nil, errors.New("no SHA1 Hash, SHA256 Hash or SHA256 Flat Hash: nothing identifies the file")
	}
	return e, nil
}

// buildSignature makes a 3089 event of its fields.
func buildSignature(sys system, f fields, source string, index int) (*Signature, error) {
	s := &Signature{ActivityID: NormalizeGUID(sys.activityID), Computer: sys.computer, Source: source, Index: index}
	var errs []error
	get := func(n int, err error) int { errs = append(errs, err); return n }
	s.TotalSignatureCount = get(f.int("TotalSignatureCount", 32))
	s.Number = get(f.int("Signature", 32))
	var err error
	s.Hash, err = f.bin("Hash", "Hash Size")
	errs = append(errs, err)
	ph, err := f.bool("PageHash")
	errs = append(errs, err)
	s.PageHash = ph != nil && *ph
	s.SignatureType = get(f.int("SignatureType", 8))
	s.ValidatedSigningLevel = get(f.int("ValidatedSigningLevel", 8))
	s.VerificationError = get(f.int("VerificationError", 8))
	s.Flags, err = f.uint("Flags", 32)
	errs = append(errs, err)
	s.NotValidBefore, err = parseTime(f.str("NotValidBefore"))
	errs = append(errs, err)
	s.NotValidAfter, err = parseTime(f.str("NotValidAfter"))
	errs = append(errs, err)
	s.PublisherName = f.str("PublisherName")
	s.IssuerName = f.str("IssuerName")
	s.PublisherTBSHash, err = f.bin("PublisherTBSHash", "PublisherTBSHashSize", 20, 32, 48, 64)
	errs = append(errs, err)
	s.IssuerTBSHash, err = f.bin("IssuerTBSHash", "IssuerTBSHashSize", 20, 32, 48, 64)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if s.TotalSignatureCount > 64 || s.Number > 64 {
		return nil, fmt.Errorf("signature %d of %d: more than 64 signatures", s.Number, s.TotalSignatureCount)
	}
	return s, nil
}

// ReadablePath makes an event's file name readable: an NT device path
// \Device\HarddiskVolume3\Program Files\app.exe becomes
// "HarddiskVolume3:\Program Files\app.exe" and \??\C:\x becomes C:\x.
// Which drive letter a volume has is known only on the host
// (Get-Partition), so the volume is kept. The path says where the file
// was, never what it is: triage judges by hashes and signers.
func ReadablePath(name string) string {
	if rest, ok := strings.CutPrefix(name, `\??\`); ok {
		return rest
	}
	if rest, ok := cutPrefixFold(name, `\Device\`); ok {
		vol, tail, found := strings.Cut(rest, `\`)
		if found && vol != "" {
			return vol + `:\` + tail
		}
	}
	return name
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// slashPath is the event's path as a policy's path globs see it: the
// part after the volume, with slashes.
func slashPath(e *Event) string {
	p := e.Path
	if _, tail, ok := strings.Cut(p, `:\`); ok {
		p = tail
	}
	return strings.ReplaceAll(p, `\`, "/")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// MarshalJSON writes the event with its hashes in upper-case hex (as
// Windows shows them), absent ones left out.
func (e *Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		*plain
		SHA1Hash       string `json:"sha1_hash,omitempty"`
		SHA256Hash     string `json:"sha256_hash,omitempty"`
		SHA1FlatHash   string `json:"sha1_flat_hash,omitempty"`
		SHA256FlatHash string `json:"sha256_flat_hash,omitempty"`
		PolicyHash     string `json:"policy_hash,omitempty"`
	}{(*plain)(e), upperHex(e.SHA1Hash), upperHex(e.SHA256Hash), upperHex(e.SHA1FlatHash), upperHex(e.SHA256FlatHash), upperHex(e.PolicyHash)})
}

// MarshalJSON writes the signature with its hashes in upper-case hex.
func (s Signature) MarshalJSON() ([]byte, error) {
	type plain Signature
	return json.Marshal(struct {
		plain
		Hash             string `json:"hash,omitempty"`
		PublisherTBSHash string `json:"publisher_tbs_hash,omitempty"`
		IssuerTBSHash    string `json:"issuer_tbs_hash,omitempty"`
	}{plain(s), upperHex(s.Hash), upperHex(s.PublisherTBSHash), upperHex(s.IssuerTBSHash)})
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }
