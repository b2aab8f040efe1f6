package attest

import (
	"bytes"
	"crypto/sha256"
	encasn1 "encoding/asn1"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/signing"
)

// BootState is what the event log says of the boot, established from the
// events a verified quote covers (or, from Inspect, from every event:
// Verified false).
type BootState struct {
	// Verified is false for Inspect's boot state: nothing in it is proven.
	Verified bool `json:"verified"`
	// VerifiedPCRs are the PCRs whose events the quotes cover, in any bank.
	VerifiedPCRs []int `json:"verified_pcrs"`

	SecureBoot SecureBoot `json:"secure_boot"`
	// PK, KEK, DB and DBX are the Secure Boot databases as measured into
	// PCR 7; nil when not measured.
	PK  *SignatureDB `json:"pk"`
	KEK *SignatureDB `json:"kek"`
	DB  *SignatureDB `json:"db"`
	DBX *SignatureDB `json:"dbx"`
	// Authorities are the EV_EFI_VARIABLE_AUTHORITY events: the db entry
	// (or shim's own certificate, or a MOK) that admitted a boot component.
	Authorities []Authority `json:"authorities"`
	// Components are the boot applications and drivers measured: every
	// event of PCRs 2 and 4 whose digest is not that of a separator or of
	// a known action, whatever type it claims (see Component), and events
	// of other PCRs that claim an image load type.
	Components []Component `json:"components"`
	// UEFIDebugMode: the firmware measured "UEFI Debug Mode" into PCR 7.
	UEFIDebugMode bool `json:"uefi_debug_mode"`
	// DMAProtectionDisabled: the firmware measured "DMA Protection
	// Disabled" into PCR 7.
	DMAProtectionDisabled bool `json:"dma_protection_disabled"`
	// Windows is Windows' boot configuration (WBCL, PCRs 12-14); nil when
	// the boot is not Windows' (PCRs 12 and 13 not extended, PCR 14 holding
	// no WBCL event) or the WBCL could not be read: WindowsProblem then
	// says why. Every event a quote covers in PCRs 12 and 13 (and in PCR 14
	// of a Windows boot) must be a WBCL tagged event whose digest matches
	// its data or a WBCL separator; an event of another type there is not
	// ignored (its type is the host's claim), it is a problem.
	Windows        *WindowsState `json:"windows,omitempty"`
	WindowsProblem string        `json:"windows_problem,omitempty"`
	// KernelCmdlines are the kernel command lines the boot loader measured
	// (GRUB, into PCR 8), in order.
	KernelCmdlines []string `json:"kernel_cmdlines"`
	// Workarounds are those used to read events (see eventlog.Workaround).
	Workarounds []eventlog.Applied `json:"-"`
	// Notes are what could not be read and why.
	Notes []string `json:"notes,omitempty"`
}

// SecureBoot is the Secure Boot state as PCR 7 shows it.
type SecureBoot struct {
	// Enabled is true only if PCR 7 was read strictly (see
	// [BootState.SecureBoot]) and the SecureBoot variable is 1.
	Enabled bool `json:"enabled"`
	// Problem says why the state could not be established; Enabled is then
	// false.
	Problem string `json:"problem,omitempty"`
}

// Authority is one EV_EFI_VARIABLE_AUTHORITY event.
type Authority struct {
	Event int `json:"event"`
	// Source is the variable the entry came from: "db", "Shim" (shim's
	// built-in certificate), "MokList", ...
	Source       string `json:"source"`
	VariableGUID GUID   `json:"variable_guid"`
	// CertDER is the certificate (nil for a hash entry), Subject its
	// subject common name and CertSHA256 its SHA-256 fingerprint, in hex.
	CertDER    []byte `json:"-"`
	Subject    string `json:"subject,omitempty"`
	CertSHA256 string `json:"certificate_sha256,omitempty"`
	// SHA256 is set for an entry that is an image hash, not a certificate.
	SHA256 []byte `json:"sha256,omitempty"`
	// AfterSeparator says the event came after PCR 7's separator (the OS
	// loader and what it loaded).
	AfterSeparator bool `json:"after_separator"`

	cert *lazyCert
}

// lazyCert parses a certificate when first asked (signer rules need it;
// hash rules and reports do not).
type lazyCert struct {
	der  []byte
	once sync.Once
	c    *signing.Certificate
}

func (l *lazyCert) get() *signing.Certificate {
	l.once.Do(func() { l.c, _ = signing.ParseCertificate(l.der) })
	return l.c
}

// Certificate returns the authority's certificate, parsed leniently (see
// signing.ParseCertificate); nil for a hash entry or a certificate that
// cannot be read.
func (a *Authority) Certificate() *signing.Certificate {
	if a.cert == nil {
		return nil
	}
	return a.cert.get()
}

// Name describes the authority. The variable and subject names are the
// host's and are cut to maxNameBytes each: a name is repeated for every
// boot component the authority could have admitted.
func (a *Authority) Name() string {
	if a.CertDER != nil {
		return fmt.Sprintf("%s certificate %q", shorten(a.Source), shorten(a.Subject))
	}
	return fmt.Sprintf("%s hash %x", shorten(a.Source), a.SHA256)
}

// maxNameBytes caps a name from the log in a message.
const maxNameBytes = 128

// shorten cuts s to maxNameBytes, at a character boundary, and says so.
func shorten(s string) string {
	if len(s) <= maxNameBytes {
		return s
	}
	i := maxNameBytes
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:i], len(s))
}

// Component is one boot application or driver.
type Component struct {
	Event int                `json:"event"`
	PCR   int                `json:"pcr"`
	Type  eventlog.EventType `json:"-"`
	// ID names the component: its PCR, its type and its position among the
	// components of that PCR ("pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/2").
	// It is the path a code integrity policy's path rules match. The PCR
	// and the position are proven (which events of PCRs 2 and 4 are
	// components depends on their digests alone); the type is the host's
	// claim, so Evaluate judges a component under every image load type
	// its ID could carry (see Evaluate).
	ID string `json:"id"`
	// Name is the file path of the image's device path, as the log gives
	// it: nothing binds it, so it is for people only. For an event that
	// does not claim an image load type, it says so.
	Name string `json:"name"`
	// AuthenticodeSHA256 and AuthenticodeSHA1 are the event's digests in
	// the covering SHA256 and SHA1 banks (the image's Authenticode hash);
	// nil where no such bank covers the event.
	AuthenticodeSHA256 []byte `json:"authenticode_sha256"`
	AuthenticodeSHA1   []byte `json:"authenticode_sha1,omitempty"`
	// LogOrderAuthority is the index (in Authorities) of the last
	// authority event logged before the component, -1 if none. The order
	// of events of different PCRs is not proven: see Evaluate.
	LogOrderAuthority int `json:"log_order_authority"`

	// position is the component's position among those of its PCR, from 1.
	position int
}

// view says which events of a log may be read: those a verified quote
// covers (matched set), or all (matched nil: Inspect).
type view struct {
	log     *eventlog.Log
	matched *eventlog.Matched
}

// banks returns the banks that vouch for an event.
func (v *view) banks(e *eventlog.Event) []eventlog.HashAlg {
	if v.matched != nil {
		return coveringBanks(v.log, v.matched, e)
	}
	if !e.Extended() {
		return nil
	}
	var out []eventlog.HashAlg
	for _, d := range e.Digests {
		if d.Alg.Hash() != 0 {
			out = append(out, d.Alg)
		}
	}
	return out
}

// pcrCovered reports whether a PCR's events can be read: a quote covers
// it and the log accounts for its value (Inspect: always).
func (v *view) pcrCovered(pcr int) bool {
	if v.matched == nil {
		return true
	}
	for _, a := range v.log.Algs {
		if v.matched.Verified(a, pcr) {
			return true
		}
	}
	return false
}

// binds reports whether the event's digest in the strongest vouching bank
// is the hash of data: that bank authenticates the data (the others, when
// the quotes cover them too, add nothing).
func binds(banks []eventlog.HashAlg, e *eventlog.Event, data []byte) bool {
	if len(banks) == 0 {
		return false
	}
	a, d := strongest(banks, e)
	return bytes.Equal(d, a.Sum(data))
}

// strongest returns the bank that vouches best for an event, and the
// event's digest in it: SHA-256 where it is one of them (as strong as
// needed, and fast), else the largest digest.
func strongest(banks []eventlog.HashAlg, e *eventlog.Event) (eventlog.HashAlg, []byte) {
	var best eventlog.HashAlg
	for _, a := range banks {
		if a == eventlog.SHA256 {
			return a, e.Digest(a)
		}
		if a.Size() > best.Size() {
			best = a
		}
	}
	return best, e.Digest(best)
}

// measures reports whether the event measured data: its digest in every
// bank that vouches for it is the hash of data. It reads neither the
// event's type nor its data, which are the host's claims: a host can
// relabel an event and rewrite the data its digest does not bind without
// changing any PCR, but it cannot make an image's digest the hash of a
// fixed string.
func measures(banks []eventlog.HashAlg, e *eventlog.Event, data []byte) bool {
	if len(banks) == 0 {
		return false
	}
	for _, a := range banks {
		if !bytes.Equal(e.Digest(a), fixedDigest(a, data)) {
			return false
		}
	}
	return true
}

var (
	separatorData = []byte{0, 0, 0, 0}
	wbclSeparator = []byte("WBCL")
	// bootPCRFixed are the fixed measurements firmware makes in PCRs 2 and
	// 4 besides images: the separator, and the boot manager's actions
	// around the applications it calls (PC Client Platform Firmware
	// Profile, EV_EFI_ACTION and EV_OMIT_BOOT_DEVICE_EVENTS).
	bootPCRFixed = [][]byte{separatorData, []byte("Calling EFI Application from Boot Option"),
		[]byte("Returning from EFI Application from Boot Option"), []byte("BOOT ATTEMPTS OMITTED")}
	// grubPrefixes are the prefixes GRUB gives its PCR 8 events; the
	// digest is that of what follows. cmdlinePrefixes are those of kernel
	// command lines.
	grubPrefixes    = []string{"grub_cmd: ", "kernel_cmdline: ", "module_cmdline: ", "grub_kernel_cmdline ", "grub_cmd "}
	cmdlinePrefixes = []string{"kernel_cmdline: ", "grub_kernel_cmdline "}

	fixedDigests = func() map[eventlog.HashAlg]map[string][]byte {
		m := map[eventlog.HashAlg]map[string][]byte{}
		for _, a := range []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384, eventlog.SHA512} {
			m[a] = map[string][]byte{}
			for _, d := range append(slices.Clone(bootPCRFixed), wbclSeparator) {
				m[a][string(d)] = a.Sum(d)
			}
		}
		return m
	}()
)

// fixedDigest returns a.Sum(data), precomputed for the fixed measurements.
func fixedDigest(a eventlog.HashAlg, data []byte) []byte {
	if d, ok := fixedDigests[a][string(data)]; ok {
		return d
	}
	return a.Sum(data)
}

// isImageLoad reports whether an event claims to load an image.
func isImageLoad(t eventlog.EventType) bool {
	return t == eventlog.EvEFIBootServicesApplication || t == eventlog.EvEFIBootServicesDriver || t == eventlog.EvEFIRuntimeServicesDriver
}

// imageLoadTypes are the types a component's ID may carry: Evaluate
// judges a component under each, the type being the host's claim.
var imageLoadTypes = []eventlog.EventType{eventlog.EvEFIBootServicesApplication, eventlog.EvEFIBootServicesDriver, eventlog.EvEFIRuntimeServicesDriver}

// secureBootVars are the PCR 7 variables in the order the PC Client
// Platform Firmware Profile mandates, with their vendor GUIDs.
var secureBootVars = []struct {
	name string
	guid GUID
}{
	{"SecureBoot", guidGlobalVariable}, {"PK", guidGlobalVariable}, {"KEK", guidGlobalVariable},
	{"db", guidImageSecurity}, {"dbx", guidImageSecurity},
}

// shimConfigVars are shim's EV_EFI_VARIABLE_AUTHORITY events that record
// configuration, not the authority that admitted an image.
var shimConfigVars = []string{"SbatLevel", "MokListTrusted", "MokPolicy"}

// extractBootState reads the boot state from the events v lets it read.
func extractBootState(v *view) *BootState {
	bs := &BootState{Verified: v.matched != nil, VerifiedPCRs: []int{}, Authorities: []Authority{}, Components: []Component{}, KernelCmdlines: []string{}}
	for p := 0; p < eventlog.NumPCRs; p++ {
		if v.matched != nil && v.pcrCovered(p) {
			bs.VerifiedPCRs = append(bs.VerifiedPCRs, p)
		}
	}
	var (
		sbProblem  string
		sbSeen     bool
		sbValue    byte
		separator7 bool
		varsSeen   = map[string]int{}
		varOrder   int
		dataOnly   []int
		shimByte   []int
		positions  = map[int]int{}
		winSeen    = map[string]bool{}
		// windows: an event a quote covers extends PCR 12 or 13, or PCR 14
		// holds a WBCL event; pcr14Other are PCR 14's other events (shim's
		// MOK measurements on a Linux boot).
		windows     bool
		pcr14Other  []string
		pcr8Unknown []int
		winFail     = func(format string, args ...any) {
			if bs.WindowsProblem == "" {
				bs.WindowsProblem = fmt.Sprintf(format, args...)
			}
		}
		sipaCount int
		certs     = map[string]*lazyCert{}
		lastAuth  = -1
		sbFail    = func(format string, args ...any) {
			if sbProblem == "" {
				sbProblem = fmt.Sprintf(format, args...)
			}
		}
	)
	if !v.pcrCovered(7) {
		sbFail("PCR 7 is not covered by a verified quote")
	}
	note := func(format string, args ...any) { bs.Notes = append(bs.Notes, fmt.Sprintf(format, args...)) }
	for i := range v.log.Events {
		e := &v.log.Events[i]
		banks := v.banks(e)
		if len(banks) == 0 {
			continue
		}
		pcr := int(e.PCR)
		switch {
		case pcr == 7:
			switch e.Type {
			case eventlog.EvSeparator:
				switch {
				case separator7:
					sbFail("event %d: a second separator in PCR 7", e.Index)
				case !bytes.Equal(e.Data, []byte{0, 0, 0, 0}) || !binds(banks, e, e.Data):
					sbFail("event %d: PCR 7 separator is not 00000000 or does not match its digest", e.Index)
				}
				separator7 = true
			case eventlog.EvEFIAction:
				if !binds(banks, e, e.Data) {
					sbFail("event %d: EV_EFI_ACTION does not match its digest", e.Index)
					continue
				}
				switch string(e.Data) {
				case "UEFI Debug Mode":
					bs.UEFIDebugMode = true
				case "DMA Protection Disabled":
					bs.DMAProtectionDisabled = true
				default:
					sbFail("event %d: unexpected EV_EFI_ACTION %q in PCR 7", e.Index, e.Data)
				}
			case eventlog.EvEFIVariableDriverConfig:
				vd, err := parseVariableData(e.Data)
				if err != nil {
					sbFail("event %d: %v", e.Index, err)
					continue
				}
				pos := varOrder
				varOrder++
				if vd.size != len(e.Data) || !binds(banks, e, e.Data) {
					// Old TPM 1.2 firmware: the digest is of the data
					// alone; accepted in the mandated order only.
					if vd.size == len(e.Data) && pos < len(secureBootVars) && vd.name == secureBootVars[pos].name &&
						vd.guid == secureBootVars[pos].guid && binds(banks, e, vd.data) {
						dataOnly = append(dataOnly, e.Index)
					} else {
						sbFail("event %d: variable %q does not match its digest", e.Index, vd.name)
						continue
					}
				}
				if prev, dup := varsSeen[vd.name]; dup {
					sbFail("event %d: variable %q measured twice (first in event %d)", e.Index, vd.name, prev)
					continue
				}
				varsSeen[vd.name] = e.Index
				if separator7 {
					sbFail("event %d: variable %q measured after the separator", e.Index, vd.name)
					continue
				}
				bs.readVariable(vd, e, banks, sbFail)
				if vd.name == "SecureBoot" && vd.guid == guidGlobalVariable {
					if len(vd.data) != 1 || vd.data[0] > 1 {
						sbFail("event %d: SecureBoot variable is %d bytes (%x), want one byte 0 or 1", e.Index, len(vd.data), vd.data)
					} else {
						sbSeen, sbValue = true, vd.data[0]
					}
				}
			case eventlog.EvEFIVariableAuthority:
				a, stray, err := readAuthority(e, banks, certs)
				if err != nil {
					sbFail("event %d: %v", e.Index, err)
					continue
				}
				if stray {
					shimByte = append(shimByte, e.Index)
				}
				if a == nil {
					continue // shim configuration, not an image's authority
				}
				a.AfterSeparator = separator7
				bs.Authorities = append(bs.Authorities, *a)
				lastAuth = len(bs.Authorities) - 1
			default:
				sbFail("event %d: unexpected %s in PCR 7", e.Index, e.Type)
			}
		case pcr == 2 || pcr == 4:
			// Every measurement but the fixed ones is code to judge,
			// whatever type the event claims: an image relabelled
			// EV_EFI_ACTION is still an image, and an action relabelled
			// as an image load is still an action.
			if !slices.ContainsFunc(bootPCRFixed, func(d []byte) bool { return measures(banks, e, d) }) {
				bs.addComponent(e, banks, positions, lastAuth, note)
				lastAuth = -1
			}
		case pcr >= 12 && pcr <= 14:
			if pcr != 14 {
				windows = true
			}
			switch {
			case measures(banks, e, wbclSeparator):
				windows = true
			case e.Type == eventlog.EvEventTag && binds(banks, e, e.Data):
				windows = true
				if bs.WindowsProblem != "" {
					continue
				}
				if bs.Windows == nil {
					bs.Windows = newWindowsState()
				}
				if err := bs.Windows.read(e.Data, 0, &sipaCount, winSeen); err != nil {
					winFail("event %d: %v", e.Index, err)
					continue
				}
				bs.Windows.Events++
			case pcr == 14:
				pcr14Other = append(pcr14Other, fmt.Sprintf("event %d (%s)", e.Index, e.Type))
			case e.Type == eventlog.EvEventTag:
				winFail("event %d: WBCL tagged event in PCR %d does not match its digest", e.Index, pcr)
			default:
				winFail("event %d in PCR %d is %s, not a WBCL event (a tagged event whose digest matches its data, or a WBCL separator): what was measured there cannot be read", e.Index, pcr, e.Type)
			}
		default:
			if pcr == 8 {
				// Kernel command lines, whatever type the event claims.
				// The prefix is not bound: an event whose data does not
				// account for its digest may hide one.
				accounted := binds(banks, e, e.Data) || binds(banks, e, bytes.TrimRight(e.Data, "\x00"))
				for _, prefix := range grubPrefixes {
					if !bytes.HasPrefix(e.Data, []byte(prefix)) {
						continue
					}
					// GRUB hashes what follows the prefix, with its NUL
					// (RHEL) or without.
					rest := e.Data[len(prefix):]
					cmd := bytes.TrimRight(rest, "\x00")
					if !binds(banks, e, cmd) && !binds(banks, e, rest) {
						continue
					}
					accounted = true
					if slices.Contains(cmdlinePrefixes, prefix) {
						bs.KernelCmdlines = append(bs.KernelCmdlines, string(cmd))
					}
					break
				}
				if !accounted {
					pcr8Unknown = append(pcr8Unknown, e.Index)
				}
			}
			if isImageLoad(e.Type) {
				bs.addComponent(e, banks, positions, lastAuth, note)
				lastAuth = -1
			}
		}
	}
	switch {
	case sbProblem != "":
	case !separator7:
		sbFail("PCR 7 has no separator: the Secure Boot configuration is incomplete")
	case !sbSeen:
		sbFail("the SecureBoot variable was not measured")
	case sbValue == 1 && len(bs.Authorities) == 0:
		sbFail("Secure Boot is on, but no authority admitted any image")
	case sbValue == 1 && (bs.PK == nil || bs.KEK == nil || bs.DB == nil):
		sbFail("Secure Boot is on, but PK, KEK or db was not measured")
	}
	bs.SecureBoot = SecureBoot{Enabled: sbProblem == "" && sbValue == 1, Problem: sbProblem}
	if sbProblem != "" {
		// A PCR 7 that cannot be read strictly says nothing reliable.
		bs.PK, bs.KEK, bs.DB, bs.DBX = nil, nil, nil, nil
		bs.Authorities = []Authority{}
		for i := range bs.Components {
			bs.Components[i].LogOrderAuthority = -1
		}
	}
	if len(dataOnly) > 0 {
		bs.Workarounds = append(bs.Workarounds, eventlog.Applied{Workaround: eventlog.WorkaroundVariableDataDigest, PCR: 7, Events: dataOnly,
			Detail: "variable digests cover the variable data only; names bound by the mandated order"})
	}
	if len(shimByte) > 0 {
		bs.Workarounds = append(bs.Workarounds, eventlog.Applied{Workaround: eventlog.WorkaroundShimAuthorityByte, PCR: 7, Events: shimByte,
			Detail: "authority events with shim's stray trailing byte"})
	}
	if windows {
		// The boot is Windows': what Windows measured must be read in
		// full. (A boot that does not extend PCRs 12 and 13 is not
		// Windows'; its PCR 14 is shim's.)
		switch {
		case len(pcr14Other) > 0:
			winFail("%s in PCR 14 is not a WBCL event, although PCRs 12-14 hold Windows' boot configuration log: what was measured there cannot be read", pcr14Other[0])
		case bs.Windows == nil:
			winFail("PCRs 12-14 are extended but hold no WBCL tagged event whose digest matches its data: whether and how Windows booted cannot be told")
		}
	}
	if bs.WindowsProblem != "" {
		bs.Windows = nil
	}
	if len(pcr8Unknown) > 0 {
		note("PCR 8: %d events (first: event %d) whose data does not account for their digest: the kernel command lines listed may not be all", len(pcr8Unknown), pcr8Unknown[0])
	}
	return bs
}

// addComponent adds the event as a boot component, numbered among the
// components of its PCR.
func (bs *BootState) addComponent(e *eventlog.Event, banks []eventlog.HashAlg, positions map[int]int, lastAuth int, note func(string, ...any)) {
	pcr := int(e.PCR)
	positions[pcr]++
	c := Component{Event: e.Index, PCR: pcr, Type: e.Type, ID: fmt.Sprintf("pcr%d/%s/%d", pcr, e.Type, positions[pcr]),
		AuthenticodeSHA256: digestIn(banks, e, eventlog.SHA256), AuthenticodeSHA1: digestIn(banks, e, eventlog.SHA1),
		LogOrderAuthority: lastAuth, position: positions[pcr]}
	if isImageLoad(e.Type) {
		name, err := imageName(e.Data)
		if err != nil {
			note("event %d: image load event: %v", e.Index, err)
		}
		c.Name = name
	} else {
		c.Name = fmt.Sprintf("an %s event, judged as an image: its digest is not a separator's or a known action's", e.Type)
		note("event %d: %s in PCR %d measured neither a separator nor a known action: judged as a boot component", e.Index, e.Type, pcr)
	}
	bs.Components = append(bs.Components, c)
}

func digestIn(banks []eventlog.HashAlg, e *eventlog.Event, a eventlog.HashAlg) []byte {
	if slices.Contains(banks, a) {
		return e.Digest(a)
	}
	return nil
}

// readVariable stores a Secure Boot database variable.
func (bs *BootState) readVariable(vd variableData, e *eventlog.Event, banks []eventlog.HashAlg, fail func(string, ...any)) {
	var slot **SignatureDB
	switch {
	case vd.name == "PK" && vd.guid == guidGlobalVariable:
		slot = &bs.PK
	case vd.name == "KEK" && vd.guid == guidGlobalVariable:
		slot = &bs.KEK
	case vd.name == "db" && vd.guid == guidImageSecurity:
		slot = &bs.DB
	case vd.name == "dbx" && vd.guid == guidImageSecurity:
		slot = &bs.DBX
	default:
		return
	}
	entries, err := parseSignatureLists(vd.data)
	if err != nil {
		fail("event %d: variable %s: %v", e.Index, vd.name, err)
		return
	}
	db := newSignatureDB(entries)
	db.Event = e.Index
	s := sha256.Sum256(vd.data)
	db.DataSHA256 = s[:]
	alg, d := strongest(banks, e)
	db.EventDigest, db.EventDigestAlg = d, alg.String()
	*slot = db
}

// readAuthority decodes an EV_EFI_VARIABLE_AUTHORITY event, checking that
// its digest binds its data (with shim's stray byte: see
// eventlog.WorkaroundShimAuthorityByte). It returns nil for shim's
// configuration events.
func readAuthority(e *eventlog.Event, banks []eventlog.HashAlg, certs map[string]*lazyCert) (a *Authority, stray bool, err error) {
	vd, err := parseVariableData(e.Data)
	if err != nil {
		return nil, false, err
	}
	switch {
	case vd.size == len(e.Data) && binds(banks, e, e.Data):
	case shimStrayByte(e.Data, vd.size) && binds(banks, e, e.Data[:len(e.Data)-1]):
		stray = true
	default:
		return nil, false, fmt.Errorf("authority %q does not match its digest", vd.name)
	}
	if vd.guid == guidShimLock && slices.Contains(shimConfigVars, vd.name) {
		return nil, stray, nil
	}
	a = &Authority{Event: e.Index, Source: vd.name, VariableGUID: vd.guid}
	d := vd.data
	// An EFI_SIGNATURE_DATA (owner GUID, then a certificate or a hash), or
	// (shim) the certificate alone.
	for _, der := range [][]byte{d[min(16, len(d)):], d} {
		if cn, ok := subjectCN(der); ok {
			fp := sha256.Sum256(der)
			a.CertDER, a.Subject, a.CertSHA256 = der, cn, hex.EncodeToString(fp[:])
			if a.cert = certs[a.CertSHA256]; a.cert == nil {
				a.cert = &lazyCert{der: der}
				certs[a.CertSHA256] = a.cert
			}
			return a, stray, nil
		}
	}
	if len(d) == 16+32 {
		a.SHA256 = d[16:]
		return a, stray, nil
	}
	return nil, false, fmt.Errorf("authority %q holds neither a certificate nor a SHA-256 hash (%d bytes)", vd.name, len(d))
}

// subjectCN reads a DER certificate's structure as far as the subject and
// returns the subject's common name (empty if it has none). It is what
// reports need of an authority; the certificate is parsed in full only
// when a signer rule needs it.
func subjectCN(der []byte) (string, bool) {
	in := cryptobyte.String(der)
	var cert, tbs, skip, subject cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return "", false
	}
	if tbs.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) && !tbs.ReadASN1(&skip, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return "", false
	}
	if !tbs.ReadASN1(&skip, cbasn1.INTEGER) || !tbs.ReadASN1(&skip, cbasn1.SEQUENCE) || !tbs.ReadASN1(&skip, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1(&skip, cbasn1.SEQUENCE) || !tbs.ReadASN1(&subject, cbasn1.SEQUENCE) {
		return "", false
	}
	cn := ""
	for !subject.Empty() {
		var rdn cryptobyte.String
		if !subject.ReadASN1(&rdn, cbasn1.SET) {
			return "", false
		}
		for !rdn.Empty() {
			var atv cryptobyte.String
			var oid encasn1.ObjectIdentifier
			var tag cbasn1.Tag
			var val cryptobyte.String
			if !rdn.ReadASN1(&atv, cbasn1.SEQUENCE) || !atv.ReadASN1ObjectIdentifier(&oid) || !atv.ReadAnyASN1(&val, &tag) {
				return "", false
			}
			if oid.Equal(oidCommonName) {
				cn = string(val)
			}
		}
	}
	return cn, true
}

var oidCommonName = encasn1.ObjectIdentifier{2, 5, 4, 3}

// shimStrayByte reports whether data is a structure of size bytes followed
// by up to seven zero bytes of padding and one stray byte, as shim logs
// its authority events.
func shimStrayByte(data []byte, size int) bool {
	extra := len(data) - size
	if extra < 1 || extra > 8 {
		return false
	}
	return bytes.Count(data[size:len(data)-1], []byte{0}) == extra-1
}

// DistinctAuthorities returns the authorities with distinct certificates or
// hashes, in order.
func (bs *BootState) DistinctAuthorities() []Authority {
	var out []Authority
	seen := map[string]bool{}
	for _, a := range bs.Authorities {
		k := string(a.SHA256)
		if a.CertDER != nil {
			k = a.CertSHA256
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}
