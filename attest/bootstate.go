package attest

import (
	"bytes"
	"crypto/sha256"
	encasn1 "encoding/asn1"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

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
	// Components are the boot applications and drivers measured.
	Components []Component `json:"components"`
	// UEFIDebugMode: the firmware measured "UEFI Debug Mode" into PCR 7.
	UEFIDebugMode bool `json:"uefi_debug_mode"`
	// DMAProtectionDisabled: the firmware measured "DMA Protection
	// Disabled" into PCR 7.
	DMAProtectionDisabled bool `json:"dma_protection_disabled"`
	// Windows is Windows' boot configuration (WBCL, PCRs 12-14); nil when
	// the log holds no WBCL event. WindowsProblem says why it could not be
	// read.
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

// Name describes the authority.
func (a *Authority) Name() string {
	if a.CertDER != nil {
		return fmt.Sprintf("%s certificate %q", a.Source, a.Subject)
	}
	return fmt.Sprintf("%s hash %x", a.Source, a.SHA256)
}

// Component is one boot application or driver.
type Component struct {
	Event int                `json:"event"`
	PCR   int                `json:"pcr"`
	Type  eventlog.EventType `json:"-"`
	// ID names the component by what the quote proves: its PCR, its type
	// and its position among the components of that type in that PCR
	// ("pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/2"). It is the path a code
	// integrity policy's path rules match.
	ID string `json:"id"`
	// Name is the file path of the image's device path, as the log gives
	// it: nothing binds it, so it is for people only.
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
		ordinals   = map[string]int{}
		winSeen    = map[string]bool{}
		sipaCount  int
		certs      = map[string]*lazyCert{}
		lastAuth   = -1
		sbFail     = func(format string, args ...any) {
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
		case pcr == 8 && e.Type == eventlog.EvIPL:
			for _, prefix := range []string{"kernel_cmdline: ", "grub_kernel_cmdline "} {
				if !bytes.HasPrefix(e.Data, []byte(prefix)) {
					continue
				}
				cmd := bytes.TrimRight(e.Data[len(prefix):], "\x00")
				if binds(banks, e, cmd) {
					bs.KernelCmdlines = append(bs.KernelCmdlines, string(cmd))
				} else {
					note("event %d: kernel command line does not match its digest: not used", e.Index)
				}
			}
		case (pcr >= 12 && pcr <= 14) && e.Type == eventlog.EvEventTag:
			if bs.WindowsProblem != "" {
				continue
			}
			if bs.Windows == nil {
				bs.Windows = newWindowsState()
			}
			if !binds(banks, e, e.Data) {
				bs.WindowsProblem = fmt.Sprintf("event %d: WBCL tagged event does not match its digest", e.Index)
				continue
			}
			if err := bs.Windows.read(e.Data, 0, &sipaCount, winSeen); err != nil {
				bs.WindowsProblem = fmt.Sprintf("event %d: %v", e.Index, err)
				continue
			}
			bs.Windows.Events++
		case e.Type == eventlog.EvEFIBootServicesApplication || e.Type == eventlog.EvEFIBootServicesDriver || e.Type == eventlog.EvEFIRuntimeServicesDriver:
			key := fmt.Sprintf("pcr%d/%s", pcr, e.Type)
			ordinals[key]++
			c := Component{Event: e.Index, PCR: pcr, Type: e.Type, ID: fmt.Sprintf("%s/%d", key, ordinals[key]),
				AuthenticodeSHA256: digestIn(banks, e, eventlog.SHA256), AuthenticodeSHA1: digestIn(banks, e, eventlog.SHA1),
				LogOrderAuthority: lastAuth}
			name, err := imageName(e.Data)
			if err != nil {
				note("event %d: image load event: %v", e.Index, err)
			}
			c.Name = name
			bs.Components = append(bs.Components, c)
			lastAuth = -1
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
	if bs.Windows != nil && bs.WindowsProblem != "" {
		bs.Windows = nil
	}
	return bs
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
