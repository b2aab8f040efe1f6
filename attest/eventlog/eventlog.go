// Package eventlog parses TCG PC Client event logs (the measured-boot log
// that firmware, boot loaders and Windows keep beside the TPM) and replays
// them into PCR values.
//
// Both formats are read: the SHA1 log of TCG_PCR_EVENT records (TPM 1.2 and
// older TPM 2.0 firmware), and the crypto-agile log whose first record is the
// "Spec ID Event03" header, followed by TCG_PCR_EVENT2 records that carry one
// digest per bank the header lists. [Parse] detects the format.
//
// [Log.Replay] extends each bank's digests into PCR values, as the TPM did.
// Real firmware deviates from the specification in a few known ways; each
// deviation the replay copes with is a named [Workaround], applied only to
// the PCR that needs it and only when the workaround makes that PCR reach the
// value the TPM reported ([Replay.Match]).
//
// # Security
//
// A log is untrusted until a TPM quote vouches for the PCR values it replays
// to: everything Parse returns, including event types, PCR indexes and data,
// is what the log claims. Package attest decides which events a verified
// quote covers. Parse checks every length against what remains of the input
// and against the caps below, and fails with a [*ParseError] naming the event
// and its offset; it never allocates from a length field. Event data and
// digests alias the input: do not modify it while the Log is in use.
package eventlog

import (
	"bytes"
	"crypto"
	"crypto/sha1" //nolint:gosec // SHA1 PCR banks exist; what they prove is the verifier's decision.
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/codesignval/csv/internal/panicerr"
)

// Caps on what a log may hold. Real logs hold tens to a few hundred events
// (the largest seen here: 158) of at most tens of kilobytes each (a Windows
// WBCL aggregation event: 30 KB; a db variable with several certificates:
// 6 KB). The caps are far above that and far below what would exhaust
// memory or time.
const (
	// maxEvents caps the number of records in one log.
	maxEvents = 1 << 16
	// maxEventData caps one event's data.
	maxEventData = 1 << 20
	// maxAlgs caps the banks a Spec ID header may declare (TPMs implement
	// at most five hash algorithms).
	maxAlgs = 16
	// maxDigestSize caps a declared digest size (SHA512's is 64).
	maxDigestSize = 64
)

// NumPCRs is the number of PCRs of a PC Client TPM.
const NumPCRs = 24

// PCRUnmeasured is the PCR index Windows logs some events to: they are in
// the log for information and extended into no PCR.
const PCRUnmeasured = 0xFFFFFFFF

// Format is the format of a log.
type Format int

// Formats.
const (
	// FormatSHA1 is the log of TCG_PCR_EVENT records, each with one SHA1
	// digest.
	FormatSHA1 Format = iota + 1
	// FormatCryptoAgile is the log that starts with the Spec ID Event03
	// header, followed by TCG_PCR_EVENT2 records.
	FormatCryptoAgile
)

func (f Format) String() string {
	switch f {
	case FormatSHA1:
		return "sha1"
	case FormatCryptoAgile:
		return "crypto-agile"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// HashAlg is a TPM_ALG_ID naming a PCR bank's hash algorithm.
type HashAlg uint16

// Hash algorithms of PCR banks.
const (
	SHA1   HashAlg = 0x0004
	SHA256 HashAlg = 0x000B
	SHA384 HashAlg = 0x000C
	SHA512 HashAlg = 0x000D
	SM3256 HashAlg = 0x0012
)

// Hash returns the Go hash of the algorithm, or 0 if Go has none (SM3).
func (a HashAlg) Hash() crypto.Hash {
	switch a {
	case SHA1:
		return crypto.SHA1
	case SHA256:
		return crypto.SHA256
	case SHA384:
		return crypto.SHA384
	case SHA512:
		return crypto.SHA512
	}
	return 0
}

// Size returns the digest size of a known algorithm, 0 for others.
func (a HashAlg) Size() int {
	switch a {
	case SHA1:
		return 20
	case SHA256, SM3256:
		return 32
	case SHA384:
		return 48
	case SHA512:
		return 64
	}
	return 0
}

// String returns the algorithm's name in lower case ("sha256"), as reports
// and policy files write banks.
func (a HashAlg) String() string {
	switch a {
	case SHA1:
		return "sha1"
	case SHA256:
		return "sha256"
	case SHA384:
		return "sha384"
	case SHA512:
		return "sha512"
	case SM3256:
		return "sm3_256"
	}
	return fmt.Sprintf("alg-0x%04x", uint16(a))
}

// ParseHashAlg reads a bank name as String writes it.
func ParseHashAlg(s string) (HashAlg, error) {
	for _, a := range []HashAlg{SHA1, SHA256, SHA384, SHA512, SM3256} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("eventlog: unknown hash algorithm %q (want sha1, sha256, sha384, sha512)", s)
}

// Sum returns the digest of data, or nil if Go has no such hash.
func (a HashAlg) Sum(data []byte) []byte {
	switch a {
	case SHA1:
		s := sha1.Sum(data) //nolint:gosec
		return s[:]
	case SHA256:
		s := sha256.Sum256(data)
		return s[:]
	case SHA384:
		s := sha512.Sum384(data)
		return s[:]
	case SHA512:
		s := sha512.Sum512(data)
		return s[:]
	}
	return nil
}

// Digest is one bank's digest of an event.
type Digest struct {
	Alg   HashAlg
	Value []byte
}

// Event is one record of a log. Every field is what the log claims.
type Event struct {
	// Index is the record's position in the log, from 0; in a crypto-agile
	// log the Spec ID header is record 0.
	Index int
	// Offset is where the record starts in the log, in bytes.
	Offset int
	// PCR is the PCR index the event was extended into (PCRUnmeasured for
	// Windows' informational events).
	PCR  uint32
	Type EventType
	// Digests holds one digest per bank, in log order. A SHA1-format event
	// has exactly one SHA1 digest; a crypto-agile event has at most one per
	// bank the header lists.
	Digests []Digest
	Data    []byte
}

// Digest returns the event's digest for a bank, or nil if it has none.
func (e *Event) Digest(a HashAlg) []byte {
	for i := range e.Digests {
		if e.Digests[i].Alg == a {
			return e.Digests[i].Value
		}
	}
	return nil
}

// Extended reports whether the event was extended into a PCR: it is not an
// EV_NO_ACTION event and its PCR index is a real PCR.
func (e *Event) Extended() bool {
	return e.Type != EvNoAction && e.PCR < NumPCRs
}

// SpecID is the decoded Spec ID Event03 header of a crypto-agile log.
type SpecID struct {
	PlatformClass uint32
	VersionMinor  uint8
	VersionMajor  uint8
	Errata        uint8
	UintnSize     uint8
	// Algs are the banks the log carries and DigestSizes their digest
	// sizes, as the header declares them.
	Algs        []HashAlg
	DigestSizes []int
	VendorInfo  []byte
}

// Log is a parsed event log.
type Log struct {
	Format Format
	// Algs are the banks the log carries: those of the Spec ID header, or
	// SHA1 alone.
	Algs []HashAlg
	// SpecID is the decoded header of a crypto-agile log, nil otherwise.
	SpecID *SpecID
	// Events are every record, the header included.
	Events []Event
}

// HasAlg reports whether the log carries a bank.
func (l *Log) HasAlg(a HashAlg) bool {
	for _, b := range l.Algs {
		if a == b {
			return true
		}
	}
	return false
}

// ErrMalformed is matched by every *ParseError.
var ErrMalformed = errors.New("eventlog: malformed event log")

// ParseError says where and why a log could not be parsed.
type ParseError struct {
	// Index is the record being read and Offset where it starts.
	Index  int
	Offset int
	Reason string
	// panic is the panic Parse recovered from (a bug), which fuzz
	// targets and tests find with panicerr.Find.
	panic *panicerr.Error
}

// Unwrap returns the recovered panic the error reports, if any.
func (e *ParseError) Unwrap() error {
	if e.panic == nil {
		return nil
	}
	return e.panic
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("eventlog: event %d at offset %d (0x%x): %s", e.Index, e.Offset, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Is(target error) bool { return target == ErrMalformed }

var specIDSignature = []byte("Spec ID Event03\x00")

// Parse reads a log in either format. It fails on the first malformed
// record, with a *ParseError. An empty input is an error.
func Parse(data []byte) (l *Log, err error) {
	defer func() {
		// The parser is written not to panic; this is the last line of
		// defence, so that a bug is a rejected log and not a crash.
		if r := recover(); r != nil {
			l, err = nil, &ParseError{Reason: fmt.Sprintf("internal error: %v", r), panic: panicerr.New(r)}
		}
	}()
	p := parser{data: data}
	if len(data) == 0 {
		return nil, &ParseError{Reason: "empty log"}
	}
	first, err := p.sha1Event(0)
	if err != nil {
		return nil, err
	}
	l = &Log{Format: FormatSHA1, Algs: []HashAlg{SHA1}}
	if first.Type == EvNoAction && bytes.HasPrefix(first.Data, specIDSignature) {
		spec, err := parseSpecID(first.Data)
		if err != nil {
			return nil, &ParseError{Index: 0, Offset: 0, Reason: "Spec ID header: " + err.Error()}
		}
		l.Format, l.SpecID, l.Algs = FormatCryptoAgile, spec, spec.Algs
		p.algs, p.sizes = spec.Algs, spec.DigestSizes
	}
	// Size the slices from a typical record (real logs average 300 to 600
	// bytes) instead of growing them many times.
	estimate := min(len(data)/256+1, maxEvents)
	l.Events = make([]Event, 1, estimate)
	l.Events[0] = first
	p.digests = make([]Digest, 0, estimate*len(l.Algs))
	for p.off < len(data) {
		idx := len(l.Events)
		if idx >= maxEvents {
			return nil, &ParseError{Index: idx, Offset: p.off, Reason: fmt.Sprintf("more than %d events", maxEvents)}
		}
		var ev Event
		if l.Format == FormatCryptoAgile {
			ev, err = p.agileEvent(idx)
		} else {
			ev, err = p.sha1Event(idx)
		}
		if err != nil {
			return nil, err
		}
		l.Events = append(l.Events, ev)
	}
	return l, nil
}

type parser struct {
	data    []byte
	off     int
	algs    []HashAlg
	sizes   []int
	digests []Digest // backing store for every event's Digests
}

func (p *parser) fail(idx, start int, format string, args ...any) error {
	return &ParseError{Index: idx, Offset: start, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) left() int { return len(p.data) - p.off }

func (p *parser) u32() uint32 {
	v := binary.LittleEndian.Uint32(p.data[p.off:])
	p.off += 4
	return v
}

func (p *parser) checkPCR(idx, start int, pcr uint32) error {
	if pcr >= NumPCRs && pcr != PCRUnmeasured {
		return p.fail(idx, start, "PCR index %d is out of range (0-%d, or 0xFFFFFFFF)", pcr, NumPCRs-1)
	}
	return nil
}

// eventData reads the 4-byte size and the data that follows.
func (p *parser) eventData(idx, start int) ([]byte, error) {
	if p.left() < 4 {
		return nil, p.fail(idx, start, "truncated: no event data size (%d bytes left)", p.left())
	}
	n := p.u32()
	if n > maxEventData {
		return nil, p.fail(idx, start, "event data size %d is over the limit of %d", n, maxEventData)
	}
	if int(n) > p.left() {
		return nil, p.fail(idx, start, "event data size %d exceeds the %d bytes left", n, p.left())
	}
	d := p.data[p.off : p.off+int(n) : p.off+int(n)]
	p.off += int(n)
	return d, nil
}

// sha1Event reads a TCG_PCR_EVENT: PCR index, type, SHA1 digest, data.
func (p *parser) sha1Event(idx int) (Event, error) {
	start := p.off
	if p.left() < 32 {
		return Event{}, p.fail(idx, start, "truncated: a TCG_PCR_EVENT header needs 32 bytes, %d left", p.left())
	}
	ev := Event{Index: idx, Offset: start}
	ev.PCR = p.u32()
	ev.Type = EventType(p.u32())
	if err := p.checkPCR(idx, start, ev.PCR); err != nil {
		return Event{}, err
	}
	first := len(p.digests)
	p.digests = append(p.digests, Digest{Alg: SHA1, Value: p.data[p.off : p.off+20 : p.off+20]})
	ev.Digests = p.digests[first : first+1 : first+1]
	p.off += 20
	var err error
	if ev.Data, err = p.eventData(idx, start); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// agileEvent reads a TCG_PCR_EVENT2: PCR index, type, TPML_DIGEST_VALUES,
// data.
func (p *parser) agileEvent(idx int) (Event, error) {
	start := p.off
	if p.left() < 12 {
		return Event{}, p.fail(idx, start, "truncated: a TCG_PCR_EVENT2 header needs 12 bytes, %d left", p.left())
	}
	ev := Event{Index: idx, Offset: start}
	ev.PCR = p.u32()
	ev.Type = EventType(p.u32())
	if err := p.checkPCR(idx, start, ev.PCR); err != nil {
		return Event{}, err
	}
	count := p.u32()
	if int(count) > len(p.algs) || count > maxAlgs {
		return Event{}, p.fail(idx, start, "digest count %d is more than the %d banks the header declares", count, len(p.algs))
	}
	first := len(p.digests)
	for i := 0; i < int(count); i++ {
		if p.left() < 2 {
			return Event{}, p.fail(idx, start, "truncated: digest %d has no algorithm", i)
		}
		alg := HashAlg(binary.LittleEndian.Uint16(p.data[p.off:]))
		p.off += 2
		size := -1
		for j, a := range p.algs {
			if a == alg {
				size = p.sizes[j]
			}
		}
		if size < 0 {
			return Event{}, p.fail(idx, start, "digest %d is for bank %s, which the header does not declare", i, alg)
		}
		for _, d := range p.digests[first:] {
			if d.Alg == alg {
				return Event{}, p.fail(idx, start, "two digests for bank %s", alg)
			}
		}
		if p.left() < size {
			return Event{}, p.fail(idx, start, "truncated: %s digest needs %d bytes, %d left", alg, size, p.left())
		}
		p.digests = append(p.digests, Digest{Alg: alg, Value: p.data[p.off : p.off+size : p.off+size]})
		p.off += size
	}
	ev.Digests = p.digests[first:len(p.digests):len(p.digests)]
	var err error
	if ev.Data, err = p.eventData(idx, start); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// parseSpecID decodes TCG_EfiSpecIDEventStruct.
func parseSpecID(b []byte) (*SpecID, error) {
	const fixed = 16 + 4 + 4 + 4 // signature, platform class, versions, numberOfAlgorithms
	if len(b) < fixed {
		return nil, fmt.Errorf("%d bytes, need at least %d", len(b), fixed)
	}
	s := &SpecID{
		PlatformClass: binary.LittleEndian.Uint32(b[16:]),
		VersionMinor:  b[20],
		VersionMajor:  b[21],
		Errata:        b[22],
		UintnSize:     b[23],
	}
	if s.VersionMajor != 2 || s.VersionMinor != 0 {
		return nil, fmt.Errorf("spec version %d.%d, want 2.0", s.VersionMajor, s.VersionMinor)
	}
	n := binary.LittleEndian.Uint32(b[24:])
	if n == 0 || n > maxAlgs {
		return nil, fmt.Errorf("declares %d banks (want 1 to %d)", n, maxAlgs)
	}
	rest := b[fixed:]
	if len(rest) < int(n)*4+1 {
		return nil, fmt.Errorf("truncated: %d banks need %d bytes, %d left", n, int(n)*4+1, len(rest))
	}
	for i := 0; i < int(n); i++ {
		alg := HashAlg(binary.LittleEndian.Uint16(rest[4*i:]))
		size := int(binary.LittleEndian.Uint16(rest[4*i+2:]))
		if want := alg.Size(); want != 0 && size != want {
			return nil, fmt.Errorf("bank %s with digest size %d, want %d", alg, size, want)
		}
		if size == 0 || size > maxDigestSize {
			return nil, fmt.Errorf("bank %s with digest size %d (want 1 to %d)", alg, size, maxDigestSize)
		}
		for _, a := range s.Algs {
			if a == alg {
				return nil, fmt.Errorf("bank %s declared twice", alg)
			}
		}
		s.Algs = append(s.Algs, alg)
		s.DigestSizes = append(s.DigestSizes, size)
	}
	rest = rest[int(n)*4:]
	vendor := int(rest[0])
	if len(rest)-1 != vendor {
		return nil, fmt.Errorf("vendor info size %d, but %d bytes follow", vendor, len(rest)-1)
	}
	s.VendorInfo = rest[1:]
	return s, nil
}
