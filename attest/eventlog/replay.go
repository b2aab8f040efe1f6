package eventlog

import (
	"bytes"
	"fmt"
	"hash"
	"strings"
)

// Workaround names a known deviation of real firmware or operating systems
// from the TCG specifications that the verifier copes with. Each is applied
// only where the log needs it and is reported when used; none lets an event
// that a quote does not cover be used for a decision.
type Workaround string

// Workarounds.
const (
	// WorkaroundUnmeasuredEvents: Windows logs some events "to PCR -1"
	// (index 0xFFFFFFFF): they are parsed but extended into no PCR, so no
	// quote ever covers them and they are never used for a decision.
	// Applied by the replay whenever the log holds such events.
	WorkaroundUnmeasuredEvents Workaround = "unmeasured-pcr-events"

	// WorkaroundExitBootServices: some firmware extends PCR 5 with the
	// ExitBootServices EV_EFI_ACTION events ("Exit Boot Services Invocation"
	// and "Exit Boot Services Returned with Success" or "... with Failure")
	// without logging them. The replay appends them to PCR 5 only, only
	// when the log holds no such event, and only when that makes PCR 5
	// reach the value the TPM reported. The appended events are constants,
	// not log data: nothing unknown hides behind them.
	WorkaroundExitBootServices Workaround = "exit-boot-services-not-logged"

	// WorkaroundMissingDigest: some logs carry events with a digest for
	// some banks only (a Windows log whose OS events have a SHA256 digest
	// and no SHA1 digest although the header declares both, because Windows
	// extended only the SHA256 bank). A strict replay of the other bank is
	// then impossible; the workaround replays it without those events, for
	// the PCRs that hold them, and is kept only when the result is the value
	// the TPM reported. The skipped events are not verified by that bank: a
	// decision may use them only through a bank that has their digest.
	WorkaroundMissingDigest Workaround = "missing-bank-digest"

	// WorkaroundShimAuthorityByte: versions of shim before commit 8a27a48
	// append one stray byte to the data of their EV_EFI_VARIABLE_AUTHORITY
	// events, so the digest is that of the data without its last byte
	// (go-attestation issue 157). Package attest accepts such an event
	// when the data is a well-formed UEFI_VARIABLE_DATA followed by exactly
	// one byte and the digest matches the data without it; the stray byte
	// is ignored.
	WorkaroundShimAuthorityByte Workaround = "shim-authority-stray-byte"

	// WorkaroundVariableDataDigest: old TPM 1.2 firmware measures the PCR 7
	// Secure Boot variables (SecureBoot, PK, KEK, db, dbx) as the digest of
	// the VariableData alone, not of the whole UEFI_VARIABLE_DATA, so the
	// digest does not bind the variable's name. Package attest accepts such
	// events only in the order the specification mandates (SecureBoot, PK,
	// KEK, db, dbx, each once), which the replay of PCR 7 does bind, so
	// that a variable's contents cannot be passed off as another's.
	WorkaroundVariableDataDigest Workaround = "pcr7-variable-data-digest"
)

// Description says in one line what a workaround does.
func (w Workaround) Description() string {
	switch w {
	case WorkaroundUnmeasuredEvents:
		return "events logged to PCR index 0xFFFFFFFF (Windows) are extended nowhere and never used"
	case WorkaroundExitBootServices:
		return "the firmware extended PCR 5 with the ExitBootServices actions without logging them; they were appended"
	case WorkaroundMissingDigest:
		return "events without a digest for this bank were not extended into it (the OS extended other banks only)"
	case WorkaroundShimAuthorityByte:
		return "shim appended a stray byte to an EV_EFI_VARIABLE_AUTHORITY event; the digest covers the data without it"
	case WorkaroundVariableDataDigest:
		return "the firmware hashed only the variable data of the PCR 7 Secure Boot variables; names were bound by their mandated order"
	}
	return string(w)
}

// Applied records one use of a workaround.
type Applied struct {
	Workaround Workaround
	// Alg and PCR say which bank and PCR it was applied to (Alg 0 and PCR
	// -1 when it concerns the whole log).
	Alg HashAlg
	PCR int
	// Events are the log events concerned.
	Events []int
	// Detail adds what was done, for reports.
	Detail string
}

func (a Applied) String() string {
	var b strings.Builder
	b.WriteString(string(a.Workaround))
	if a.PCR >= 0 {
		fmt.Fprintf(&b, " (%s PCR %d)", a.Alg, a.PCR)
	}
	if len(a.Events) > 0 {
		fmt.Fprintf(&b, ", events %s", intList(a.Events, 8))
	}
	if a.Detail != "" {
		b.WriteString(": " + a.Detail)
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func intList(v []int, max int) string {
	var parts []string
	for i, x := range v {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(v)-max))
			break
		}
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, ", ")
}

// Bank holds one bank's PCR values by index; a nil entry is unknown.
type Bank [NumPCRs][]byte

// PCRs holds PCR values per bank.
type PCRs map[HashAlg]*Bank

// Set stores a value.
func (p PCRs) Set(a HashAlg, pcr int, v []byte) {
	b := p[a]
	if b == nil {
		b = new(Bank)
		p[a] = b
	}
	b[pcr] = v
}

// Get returns a value, or nil.
func (p PCRs) Get(a HashAlg, pcr int) []byte {
	if b := p[a]; b != nil && pcr >= 0 && pcr < NumPCRs {
		return b[pcr]
	}
	return nil
}

// Candidate is a value a PCR can replay to, and the workarounds that give
// it (none for the strict replay).
type Candidate struct {
	Value       []byte
	Workarounds []Workaround
	// Detail says what the workarounds did.
	Detail string
	// Events are the events the workarounds concern.
	Events []int
}

// Replay is a log replayed bank by bank: the strict value of every PCR, and
// the values the workarounds would give where they apply.
type Replay struct {
	log        *Log
	banks      []*bankReplay
	unmeasured []int
	ebsLogged  bool
}

type bankReplay struct {
	alg  HashAlg
	pcrs [NumPCRs]pcrReplay
}

type pcrReplay struct {
	// value is the strict replay, nil when impossible (problem says why).
	value   []byte
	problem string
	events  int
	// skip is the replay without the events that lack this bank's digest
	// (listed in skipped); set only when there are such events.
	skip    []byte
	skipped []int
}

const (
	ebsInvocation = "Exit Boot Services Invocation"
	ebsSuccess    = "Exit Boot Services Returned with Success"
	ebsFailure    = "Exit Boot Services Returned with Failure"
)

// ebsVariants are the event sequences firmware is known to extend PCR 5
// with at ExitBootServices without logging them.
var ebsVariants = [][]string{
	{ebsInvocation, ebsSuccess},
	{ebsInvocation, ebsFailure},
	{ebsInvocation, ebsFailure, ebsSuccess},
}

var startupLocality = []byte("StartupLocality\x00")

// initialValue is a PCR's value after a TPM reset: PCRs 17-22 (the dynamic
// root of trust's) start as all ones, the others as zeros; PCR 0 starts
// with the locality of TPM2_Startup in its last byte.
func initialValue(dst []byte, pcr int, locality byte) {
	fill := byte(0)
	if pcr >= 17 && pcr <= 22 {
		fill = 0xFF
	}
	for i := range dst {
		dst[i] = fill
	}
	if pcr == 0 {
		dst[len(dst)-1] = locality
	}
}

// Replay extends each bank's digests into PCR values. EV_NO_ACTION events
// and events logged to PCR 0xFFFFFFFF are not extended; a StartupLocality
// EV_NO_ACTION event before PCR 0's first measurement sets PCR 0's initial
// value. A PCR whose events lack its bank's digest cannot be replayed
// strictly (see [WorkaroundMissingDigest]). Replay never fails: what cannot
// be replayed is recorded per PCR ([Replay.Problem]).
func (l *Log) Replay() *Replay {
	r := &Replay{log: l}
	var locality byte
	localityProblem := ""
	pcr0Extended := false
	for i := range l.Events {
		e := &l.Events[i]
		switch {
		case e.PCR == PCRUnmeasured:
			r.unmeasured = append(r.unmeasured, e.Index)
		case e.Type == EvNoAction:
			if e.PCR == 0 && len(e.Data) == 17 && bytes.HasPrefix(e.Data, startupLocality) {
				if pcr0Extended || localityProblem != "" {
					localityProblem = fmt.Sprintf("StartupLocality event %d comes after PCR 0 was measured", e.Index)
				}
				locality = e.Data[16]
			}
		case e.PCR == 5 && e.Type == EvEFIAction && string(e.Data) == ebsInvocation:
			r.ebsLogged = true
		case e.PCR == 0:
			pcr0Extended = true
		}
	}
	for _, alg := range l.Algs {
		r.banks = append(r.banks, l.replayBank(alg, locality, localityProblem))
	}
	return r
}

func (l *Log) replayBank(alg HashAlg, locality byte, localityProblem string) *bankReplay {
	b := &bankReplay{alg: alg}
	size := 0
	for i, a := range l.Algs {
		if a == alg {
			size = alg.Size()
			if l.SpecID != nil {
				size = l.SpecID.DigestSizes[i]
			}
		}
	}
	if size == 0 {
		size = 20
	}
	store := make([]byte, NumPCRs*size)
	for p := range b.pcrs {
		b.pcrs[p].value = store[p*size : (p+1)*size : (p+1)*size]
		initialValue(b.pcrs[p].value, p, locality)
	}
	if localityProblem != "" {
		b.pcrs[0].problem = localityProblem
	}
	var h hash.Hash
	if hh := alg.Hash(); hh != 0 && hh.Available() {
		h = hh.New()
	}
	for i := range l.Events {
		e := &l.Events[i]
		if !e.Extended() {
			continue
		}
		pr := &b.pcrs[e.PCR]
		pr.events++
		if h == nil {
			if pr.problem == "" {
				pr.problem = fmt.Sprintf("bank %s cannot be replayed: its hash is not available", alg)
			}
			continue
		}
		d := e.Digest(alg)
		if d == nil {
			pr.skipped = append(pr.skipped, e.Index)
			continue
		}
		h.Reset()
		h.Write(pr.value)
		h.Write(d)
		pr.value = h.Sum(pr.value[:0])
	}
	for p := range b.pcrs {
		pr := &b.pcrs[p]
		switch {
		case pr.problem != "":
			pr.value, pr.skipped = nil, nil
		case len(pr.skipped) > 0:
			pr.skip, pr.value = pr.value, nil
			e := &l.Events[pr.skipped[0]]
			if n := len(pr.skipped); n > 1 {
				pr.problem = fmt.Sprintf("event %d (offset %d, %s) and %d more have no %s digest", e.Index, e.Offset, e.Type, n-1, alg)
			} else {
				pr.problem = fmt.Sprintf("event %d (offset %d, %s) has no %s digest", e.Index, e.Offset, e.Type, alg)
			}
		}
	}
	return b
}

func (r *Replay) bank(a HashAlg) *bankReplay {
	for _, b := range r.banks {
		if b.alg == a {
			return b
		}
	}
	return nil
}

// Log returns the replayed log.
func (r *Replay) Log() *Log { return r.log }

// Value returns a PCR's strict replay, or nil with the reason when there is
// none.
func (r *Replay) Value(a HashAlg, pcr int) ([]byte, string) {
	if pcr < 0 || pcr >= NumPCRs {
		return nil, fmt.Sprintf("PCR %d does not exist", pcr)
	}
	b := r.bank(a)
	if b == nil {
		return nil, fmt.Sprintf("the log has no %s bank", a)
	}
	return b.pcrs[pcr].value, b.pcrs[pcr].problem
}

// Events returns how many events extend a PCR (in every bank alike).
func (r *Replay) Events(pcr int) int {
	if len(r.banks) == 0 || pcr < 0 || pcr >= NumPCRs {
		return 0
	}
	return r.banks[0].pcrs[pcr].events
}

// Strict returns the strict replay of every bank (nil where impossible).
func (r *Replay) Strict() PCRs {
	out := PCRs{}
	for _, b := range r.banks {
		bank := new(Bank)
		for p := range b.pcrs {
			bank[p] = b.pcrs[p].value
		}
		out[b.alg] = bank
	}
	return out
}

// Unmeasured returns the events logged to PCR 0xFFFFFFFF.
func (r *Replay) Unmeasured() []int { return r.unmeasured }

// Candidates returns the values a PCR can replay to: the strict replay
// first (when possible), then the values workarounds give (see
// [WorkaroundMissingDigest] and [WorkaroundExitBootServices]), in order of
// preference. Empty when the PCR cannot be replayed at all.
func (r *Replay) Candidates(a HashAlg, pcr int) []Candidate {
	if pcr < 0 || pcr >= NumPCRs {
		return nil
	}
	b := r.bank(a)
	if b == nil {
		return nil
	}
	pr := &b.pcrs[pcr]
	var out []Candidate
	var bases []Candidate
	if pr.value != nil {
		bases = append(bases, Candidate{Value: pr.value})
	}
	if pr.skip != nil {
		bases = append(bases, Candidate{Value: pr.skip, Workarounds: []Workaround{WorkaroundMissingDigest},
			Events: pr.skipped, Detail: fmt.Sprintf("%s without a %s digest not extended", plural(len(pr.skipped), "event"), a)})
	}
	out = append(out, bases...)
	if pcr == 5 && !r.ebsLogged {
		h := a.Hash()
		if h == 0 || !h.Available() {
			return out
		}
		hh := h.New()
		for _, base := range bases {
			for _, v := range ebsVariants {
				val := append([]byte(nil), base.Value...)
				for _, s := range v {
					hh.Reset()
					hh.Write(val)
					hh.Write(a.Sum([]byte(s)))
					val = hh.Sum(val[:0])
				}
				c := Candidate{Value: val, Workarounds: append(append([]Workaround(nil), base.Workarounds...), WorkaroundExitBootServices),
					Events: base.Events, Detail: fmt.Sprintf("appended EV_EFI_ACTION %q", v)}
				if base.Detail != "" {
					c.Detail = base.Detail + "; " + c.Detail
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// Mismatch is a PCR the log does not replay to.
type Mismatch struct {
	Alg  HashAlg
	PCR  int
	Want []byte
	// Got is the strict replay (nil if impossible); Reason says why it
	// cannot match.
	Got    []byte
	Reason string
}

// ReplayError lists the PCRs a log does not replay to.
type ReplayError struct {
	Mismatches []Mismatch
}

func (e *ReplayError) Error() string {
	var parts []string
	for _, m := range e.Mismatches {
		parts = append(parts, fmt.Sprintf("%s PCR %d: %s", m.Alg, m.PCR, m.Reason))
	}
	return "eventlog: the log does not replay to the PCR values: " + strings.Join(parts, "; ")
}

// PCRRef names one PCR of one bank.
type PCRRef struct {
	Alg HashAlg
	PCR int
}

func (r PCRRef) String() string { return fmt.Sprintf("%s PCR %d", r.Alg, r.PCR) }

// Matched is the outcome of matching a replay with PCR values.
type Matched struct {
	// PCRs are the wanted values the log accounts for: those its events
	// replay to, and those of PCRs no event extends that hold their
	// initial value.
	PCRs PCRs
	// Unlogged are wanted PCRs that no event of the log extends but whose
	// value is not the initial one: something the log does not show
	// measured them (the kernel's IMA log for PCR 10, say). Nothing about
	// them can be learnt from this log.
	Unlogged []PCRRef
	// Applied lists the workarounds used, in bank and PCR order.
	Applied []Applied
}

// Verified reports whether the log accounts for a PCR's value.
func (m *Matched) Verified(a HashAlg, pcr int) bool { return m.PCRs.Get(a, pcr) != nil }

// Match compares the replay with the values the TPM reported (want; nil
// entries are not compared). For each wanted PCR it takes the strict replay
// if it matches, and otherwise the first workaround candidate that does
// ([Replay.Candidates]). A wanted PCR that no event extends and that does
// not hold its initial value is Unlogged, not a mismatch. Any other PCR no
// candidate matches is a mismatch: Match then returns a *ReplayError
// listing them all, with the Matched of the others.
func (r *Replay) Match(want PCRs) (*Matched, error) {
	m := &Matched{PCRs: PCRs{}}
	var bad []Mismatch
	if len(r.unmeasured) > 0 {
		m.Applied = append(m.Applied, Applied{Workaround: WorkaroundUnmeasuredEvents, PCR: -1, Events: r.unmeasured,
			Detail: plural(len(r.unmeasured), "event") + " logged to PCR 0xFFFFFFFF not replayed"})
	}
	for _, alg := range sortedAlgs(want) {
		bank := want[alg]
		for pcr, w := range bank {
			if w == nil {
				continue
			}
			c, ok := r.find(alg, pcr, w)
			if ok {
				m.PCRs.Set(alg, pcr, c.Value)
				for _, wk := range c.Workarounds {
					m.Applied = append(m.Applied, Applied{Workaround: wk, Alg: alg, PCR: pcr, Events: c.Events, Detail: c.Detail})
				}
				continue
			}
			if r.bank(alg) != nil && r.Events(pcr) == 0 {
				m.Unlogged = append(m.Unlogged, PCRRef{alg, pcr})
				continue
			}
			got, why := r.Value(alg, pcr)
			if why == "" {
				why = fmt.Sprintf("replays to %x, want %x", got, w)
				if len(r.Candidates(alg, pcr)) > 1 {
					why += " (no workaround gives it either)"
				}
			}
			bad = append(bad, Mismatch{Alg: alg, PCR: pcr, Want: w, Got: got, Reason: why})
		}
	}
	if len(bad) > 0 {
		return m, &ReplayError{Mismatches: bad}
	}
	return m, nil
}

func (r *Replay) find(alg HashAlg, pcr int, want []byte) (Candidate, bool) {
	if v, _ := r.Value(alg, pcr); v != nil && bytes.Equal(v, want) {
		return Candidate{Value: v}, true // the strict replay: the common case
	}
	for _, c := range r.Candidates(alg, pcr) {
		if bytes.Equal(c.Value, want) {
			return c, true
		}
	}
	return Candidate{}, false
}

// sortedAlgs returns the banks of p in a fixed order.
func sortedAlgs(p PCRs) []HashAlg {
	var out []HashAlg
	for a := range p {
		out = append(out, a)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
