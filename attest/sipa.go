package attest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/codesignval/csv/internal/panicerr"
)

// SIPAEvent is one Windows boot configuration log (WBCL) event: a System
// Integrity Platform Attestation event, as Windows logs them in the data
// of EV_EVENT_TAG events in PCRs 12 to 14. Container events hold others.
type SIPAEvent struct {
	Type     uint32
	Data     []byte
	Children []SIPAEvent
}

// SIPA event types this package reads.
const (
	sipaClassMask      = 0x000F0000
	sipaClassContainer = 0x00010000

	sipaBootCounter      = 0x00020002
	sipaTransferControl  = 0x00020003
	sipaBootDebugging    = 0x00040001
	sipaOSKernelDebug    = 0x00050001
	sipaCodeIntegrity    = 0x00050002
	sipaTestSigning      = 0x00050003
	sipaDEP              = 0x00050004
	sipaSafeMode         = 0x00050005
	sipaWinPE            = 0x00050006
	sipaHypervisorDebug  = 0x0005000D
	sipaFlightSigning    = 0x00050021
	sipaLoadedModuleAggr = 0x40010003
	sipaELAMAggr         = 0x40010002
	sipaFilePath         = 0x00070001
	sipaHashAlgorithmID  = 0x00070003
	sipaAuthenticodeHash = 0x00070004
	sipaELAMKeyname      = 0x00090001
)

// Caps on SIPA data.
const (
	maxSIPADepth  = 8
	maxSIPAEvents = 1 << 14
)

// ParseSIPA decodes a sequence of SIPA events (type and size, 32-bit little
// endian, then the data), descending into containers. The data must be
// exactly a sequence of events.
func ParseSIPA(data []byte) (evs []SIPAEvent, err error) {
	defer func() {
		if r := recover(); r != nil {
			evs, err = nil, fmt.Errorf("attest: SIPA events: internal error: %w", panicerr.New(r))
		}
	}()
	n := 0
	evs, err = parseSIPA(data, 0, &n)
	if err != nil {
		return nil, fmt.Errorf("attest: SIPA events: %w", err)
	}
	return evs, nil
}

// nextSIPA decodes the event at off: its type, its data, and where the
// next one starts.
func nextSIPA(b []byte, off int) (typ uint32, data []byte, next int, err error) {
	if len(b)-off < 8 {
		return 0, nil, 0, fmt.Errorf("truncated event header at offset %d (%d bytes left)", off, len(b)-off)
	}
	typ = binary.LittleEndian.Uint32(b[off:])
	size := int64(binary.LittleEndian.Uint32(b[off+4:]))
	if size > int64(len(b)-off-8) {
		return 0, nil, 0, fmt.Errorf("event 0x%08x at offset %d: size %d exceeds the %d bytes left", typ, off, size, len(b)-off-8)
	}
	end := off + 8 + int(size)
	return typ, b[off+8 : end : end], end, nil
}

// eachSIPA calls fn for each event of a sequence (not descending into
// containers), counting them against the cap.
func eachSIPA(b []byte, count *int, fn func(typ uint32, data []byte) error) error {
	for off := 0; off < len(b); {
		if *count >= maxSIPAEvents {
			return fmt.Errorf("more than %d events", maxSIPAEvents)
		}
		*count++
		typ, data, next, err := nextSIPA(b, off)
		if err != nil {
			return err
		}
		if err := fn(typ, data); err != nil {
			return err
		}
		off = next
	}
	return nil
}

func isContainer(typ uint32) bool { return typ&sipaClassMask == sipaClassContainer }

func parseSIPA(b []byte, depth int, count *int) ([]SIPAEvent, error) {
	if depth > maxSIPADepth {
		return nil, fmt.Errorf("containers nested deeper than %d", maxSIPADepth)
	}
	var out []SIPAEvent
	err := eachSIPA(b, count, func(typ uint32, data []byte) error {
		e := SIPAEvent{Type: typ, Data: data}
		if isContainer(typ) {
			children, err := parseSIPA(data, depth+1, count)
			if err != nil {
				return fmt.Errorf("in container 0x%08x: %w", typ, err)
			}
			e.Children = children
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// Ternary is a setting that may be unknown.
type Ternary string

// Ternary values.
const (
	Unknown Ternary = "unknown"
	On      Ternary = "on"
	Off     Ternary = "off"
)

// WindowsModule is a module Windows' boot loader loaded, as the WBCL says.
type WindowsModule struct {
	FilePath         string `json:"file_path"`
	AuthenticodeHash string `json:"authenticode_hash"`
	HashAlgorithm    uint32 `json:"hash_algorithm"`
}

// WindowsState is Windows' boot configuration from the WBCL. Settings that
// weaken security (debugging, test signing) count as on if any event says
// so; settings that protect (code integrity, DEP) count as on only if every
// event that reports them says so.
type WindowsState struct {
	BootDebugging       bool            `json:"boot_debugging"`
	KernelDebugging     bool            `json:"kernel_debugging"`
	HypervisorDebugging bool            `json:"hypervisor_debugging"`
	TestSigning         bool            `json:"test_signing"`
	FlightSigning       bool            `json:"flight_signing"`
	SafeMode            bool            `json:"safe_mode"`
	WinPE               bool            `json:"winpe"`
	CodeIntegrity       Ternary         `json:"code_integrity"`
	DEP                 Ternary         `json:"dep"`
	ColdBoot            bool            `json:"cold_boot"`
	BootCount           uint64          `json:"boot_count"`
	LoadedModules       []WindowsModule `json:"loaded_modules"`
	ELAMDrivers         []string        `json:"elam_drivers,omitempty"`
	// CIPolicies are the code integrity policies Windows measured as
	// loaded (SIPAEVENT_SI_POLICY events), each once, in log order.
	CIPolicies []CIPolicy `json:"ci_policies"`
	// Events is the number of tagged events read.
	Events int `json:"events"`
}

func newWindowsState() *WindowsState {
	return &WindowsState{CodeIntegrity: Unknown, DEP: Unknown, CIPolicies: []CIPolicy{}}
}

// read reads a tagged event's SIPA events into the state, descending
// into containers, without building the event tree.
func (w *WindowsState) read(b []byte, depth int, count *int, seen map[string]bool) error {
	if depth > maxSIPADepth {
		return fmt.Errorf("attest: SIPA events: containers nested deeper than %d", maxSIPADepth)
	}
	err := eachSIPA(b, count, func(typ uint32, data []byte) error {
		switch {
		case typ == sipaLoadedModuleAggr:
			return w.module(data, count, seen)
		case typ == sipaELAMAggr:
			return eachSIPA(data, count, func(t uint32, d []byte) error {
				if t == sipaELAMKeyname {
					w.ELAMDrivers = append(w.ELAMDrivers, utf16String(d))
				}
				return nil
			})
		case isContainer(typ):
			return w.read(data, depth+1, count, seen)
		}
		return w.setting(typ, data)
	})
	if err != nil {
		return fmt.Errorf("attest: SIPA events: %w", err)
	}
	return nil
}

// module reads a loaded module aggregation.
func (w *WindowsState) module(b []byte, count *int, seen map[string]bool) error {
	var m WindowsModule
	var hash []byte
	err := eachSIPA(b, count, func(t uint32, d []byte) error {
		switch t {
		case sipaFilePath:
			m.FilePath = utf16String(d)
		case sipaAuthenticodeHash:
			if len(d) > 64 {
				return fmt.Errorf("SIPA Authenticode hash of %d bytes", len(d))
			}
			hash = d
		case sipaHashAlgorithmID:
			if len(d) != 4 {
				return fmt.Errorf("SIPA hash algorithm ID of %d bytes", len(d))
			}
			m.HashAlgorithm = binary.LittleEndian.Uint32(d)
		}
		return nil
	})
	if err != nil || len(hash) == 0 || seen[string(hash)] {
		return err
	}
	seen[string(hash)] = true
	m.AuthenticodeHash = hex.EncodeToString(hash)
	w.LoadedModules = append(w.LoadedModules, m)
	return nil
}

// setting reads one boot configuration event; others are skipped.
func (w *WindowsState) setting(typ uint32, data []byte) error {
	boolean := func() (bool, error) {
		if len(data) != 1 {
			return false, fmt.Errorf("SIPA event 0x%08x: %d bytes, want 1", typ, len(data))
		}
		return data[0] != 0, nil
	}
	latchOff := func(t *Ternary, on bool) {
		switch {
		case !on:
			*t = Off
		case *t == Unknown:
			*t = On
		}
	}
	switch typ {
	case sipaBootDebugging, sipaOSKernelDebug, sipaTestSigning, sipaHypervisorDebug, sipaFlightSigning, sipaSafeMode, sipaWinPE, sipaCodeIntegrity:
		on, err := boolean()
		if err != nil {
			return err
		}
		switch typ {
		case sipaBootDebugging:
			w.BootDebugging = w.BootDebugging || on
		case sipaOSKernelDebug:
			w.KernelDebugging = w.KernelDebugging || on
		case sipaTestSigning:
			w.TestSigning = w.TestSigning || on
		case sipaHypervisorDebug:
			w.HypervisorDebugging = w.HypervisorDebugging || on
		case sipaFlightSigning:
			w.FlightSigning = w.FlightSigning || on
		case sipaSafeMode:
			w.SafeMode = w.SafeMode || on
		case sipaWinPE:
			w.WinPE = w.WinPE || on
		case sipaCodeIntegrity:
			latchOff(&w.CodeIntegrity, on)
		}
	case sipaDEP:
		if len(data) != 8 {
			return fmt.Errorf("SIPA DEP event: %d bytes, want 8", len(data))
		}
		latchOff(&w.DEP, binary.LittleEndian.Uint64(data) != 0)
	case sipaBootCounter:
		if len(data) != 8 {
			return fmt.Errorf("SIPA boot counter: %d bytes, want 8", len(data))
		}
		n := binary.LittleEndian.Uint64(data)
		if w.BootCount != 0 && w.BootCount != n {
			return fmt.Errorf("SIPA boot counters disagree: %d and %d", w.BootCount, n)
		}
		w.BootCount = n
	case sipaSIPolicy:
		return w.addCIPolicy(data)
	case sipaTransferControl:
		if len(data) != 4 {
			return fmt.Errorf("SIPA transfer control: %d bytes, want 4", len(data))
		}
		w.ColdBoot = binary.LittleEndian.Uint32(data) == 1
	}
	return nil
}

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}
