package attest

import (
	"bytes"
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing"
)

// A host controls every event's type and every byte of data its digest
// does not bind: relabelling an event, or editing such data, changes no
// PCR, so the quotes still verify. These tests take real evidence, relabel
// events, and require the verdict and claims to be what the untouched
// evidence gives (or a failed check naming the event), never better.

const (
	gceAttestation = "go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json"
	winAttestation = "go-attestation/windows_gcp_shielded_vm.json"

	// GCE COS 85's boot applications (go-tpm-tools' efi_app_digests).
	gceShim   = "dba8d69ffb244496ac8ab2950695d3da539d6ac5ec660fc6b4bdde245284cf23"
	gceGrub   = "f7bad83f87940312e4642530a9a6242e88529dc37a497d7d4e7c1c070566d542"
	gceKernel = "6f6afb3caed004e727200a0c310731bd8ab4cd391b2d95cedf67d08e1e8e5e7e"

	strictPolicy = "format: csv-attest-policy/v1\nname: strict\n"
	// gceByHash allows GCE's three boot applications by their digests.
	gceByHash = `format: csv-policy/v1
name: cos-boot
rules:
  - {id: shim, action: allow, authenticode_sha256: ` + gceShim + `}
  - {id: grub, action: allow, authenticode_sha256: ` + gceGrub + `}
  - {id: kernel, action: allow, authenticode_sha256: ` + gceKernel + `}
`
	// allowsNothing allows no real boot component.
	allowsNothing = `format: csv-policy/v1
name: nothing
rules:
  - {id: other, action: allow, authenticode_sha256: 0000000000000000000000000000000000000000000000000000000000000001}
`
)

// relabel returns a log change that gives the events pred selects the
// type to, their PCR, digests and data untouched.
func relabel(to eventlog.EventType, pred func(*eventlog.Event) bool) func([]eventlog.Event) []eventlog.Event {
	return func(evs []eventlog.Event) []eventlog.Event {
		n := 0
		for i := range evs {
			if pred(&evs[i]) {
				evs[i].Type = to
				n++
			}
		}
		if n == 0 {
			panic("relabel: no event selected")
		}
		return evs
	}
}

func typed(t eventlog.EventType, pcrs ...uint32) func(*eventlog.Event) bool {
	return func(e *eventlog.Event) bool { return e.Type == t && (len(pcrs) == 0 || slices.Contains(pcrs, e.PCR)) }
}

// judgeReal verifies a real attestation, its log changed by mutate (nil:
// untouched), and evaluates it. The change must leave every PCR as it is.
func judgeReal(t *testing.T, name string, mutate func([]eventlog.Event) []eventlog.Event, policy, ci string) (*Verified, *Result) {
	t.Helper()
	a := attesttest.FindAttestation(t, name)
	ev := evidenceOf(a, true)
	if mutate != nil {
		ev.EventLog = rewriteLog(t, ev.EventLog, mutate)
	}
	v, err := Verify(context.Background(), ev, optsOf(t, a))
	if err != nil {
		t.Fatalf("the relabelled evidence must still verify: %v", err)
	}
	var set *cipolicy.Set
	if ci != "" {
		set = mustSet(t, ci)
	}
	r, err := Evaluate(context.Background(), v, mustPolicy(t, policy, nil), set)
	if err != nil {
		t.Fatal(err)
	}
	return v, r
}

// componentsOf lists the boot components as "id sha256 verdict".
func componentsOf(r *Result) []string {
	var out []string
	for _, c := range r.Claims.BootComponents {
		out = append(out, c.ID+" "+c.AuthenticodeSHA256+" "+c.Verdict)
	}
	return out
}

func failedChecks(r *Result) []string {
	var out []string
	for _, c := range r.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestRelabelledImageLoads: GCE COS 85's three image-load events
// (EV_EFI_BOOT_SERVICES_APPLICATION) relabelled: the boot components are
// still the three images, judged as before.
func TestRelabelledImageLoads(t *testing.T) {
	app := typed(eventlog.EvEFIBootServicesApplication)
	_, base := judgeReal(t, gceAttestation, nil, strictPolicy, allowsNothing)
	if c := checkOf(base, "policy.boot-components"); base.Trusted || c.Passed || !strings.HasPrefix(c.Detail, "3 of 3 boot components blocked") {
		t.Fatalf("untouched: %v", c)
	}
	want := []string{gceShim, gceGrub, gceKernel}
	for _, to := range []eventlog.EventType{eventlog.EvEFIAction, eventlog.EvSeparator, eventlog.EvIPL, eventlog.EvEventTag,
		eventlog.EvEFIVariableBoot, eventlog.EvPostCode, eventlog.EvEFIGPTEvent, eventlog.EventType(0x0000dead)} {
		t.Run(to.String(), func(t *testing.T) {
			_, r := judgeReal(t, gceAttestation, relabel(to, app), strictPolicy, allowsNothing)
			c := checkOf(r, "policy.boot-components")
			if r.Trusted || c.Passed || !strings.HasPrefix(c.Detail, "3 of 3 boot components blocked") || !strings.Contains(c.Detail, "pcr4/"+to.String()+"/1") {
				t.Fatalf("trusted %v: %v", r.Trusted, c)
			}
			var got []string
			for _, bc := range r.Claims.BootComponents {
				got = append(got, bc.AuthenticodeSHA256)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("components %v, want %v", got, want)
			}
			// Judged by their digests, they are allowed as before.
			_, r = judgeReal(t, gceAttestation, relabel(to, app), strictPolicy, gceByHash)
			if !r.Trusted || len(r.Claims.BootComponents) != 3 {
				t.Fatalf("by hash: %v", r.Checks)
			}
		})
	}
}

// TestRelabelledIntoImageLoads: GCE's PCR 4 action and the PCR 2 and 4
// separators relabelled as image loads: their digests are those of the
// fixed action string and separator, not of an image, so the components
// and their IDs are those of the untouched log.
func TestRelabelledIntoImageLoads(t *testing.T) {
	_, base := judgeReal(t, gceAttestation, nil, strictPolicy, gceByHash)
	if !base.Trusted {
		t.Fatalf("untouched: %v", base.Checks)
	}
	want := []string{
		"pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/1 " + gceShim + " allowed",
		"pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/2 " + gceGrub + " allowed",
		"pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/3 " + gceKernel + " allowed",
	}
	if got := componentsOf(base); !slices.Equal(got, want) {
		t.Fatalf("untouched: %v", got)
	}
	for name, mutate := range map[string]func([]eventlog.Event) []eventlog.Event{
		"action as an application": relabel(eventlog.EvEFIBootServicesApplication, typed(eventlog.EvEFIAction, 4)),
		"separators as drivers":    relabel(eventlog.EvEFIBootServicesDriver, typed(eventlog.EvSeparator, 2, 4)),
		"separators as runtime drivers": relabel(eventlog.EvEFIRuntimeServicesDriver, func(e *eventlog.Event) bool {
			return e.Type == eventlog.EvSeparator && (e.PCR == 2 || e.PCR == 4)
		}),
	} {
		t.Run(name, func(t *testing.T) {
			_, r := judgeReal(t, gceAttestation, mutate, strictPolicy, gceByHash)
			if got := componentsOf(r); !r.Trusted || !slices.Equal(got, want) {
				t.Fatalf("components %v, checks %v", got, r.Checks)
			}
		})
	}
}

// TestRelabelledImageTypeAndPosition: a code integrity policy whose rules
// are scoped to component paths (pcrN/TYPE/K). The type is the host's
// claim and the position must not move when other events are relabelled:
// relabelling cannot take an image out of a deny rule's scope.
func TestRelabelledImageTypeAndPosition(t *testing.T) {
	v, _ := judgeReal(t, gceAttestation, nil, strictPolicy, gceByHash)
	dbKey := v.BootState().DB.Certificates()[0]
	signer := `  - id: cos-db-key
    action: allow
    signer: {certificate: "` + strings.ReplaceAll(string(pemOf(dbKey)), "\n", `\n`) + `", level: leaf}
    scenarios: [boot]
`
	kernelByType := "format: csv-policy/v1\nname: scoped\nrules:\n" + signer +
		"  - {id: no-kernel, action: deny, authenticode_sha256: " + gceKernel + ", paths: [pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/*]}\n"
	db := "\"" + strings.ReplaceAll(string(pemOf(dbKey)), "\n", `\n`) + "\""
	thirdApp := "format: csv-policy/v1\nname: scoped\nrules:\n" + signer +
		"  - {id: no-third, action: deny, signer: {certificate: " + db + ", level: leaf}, paths: [pcr4/EV_EFI_BOOT_SERVICES_APPLICATION/3]}\n"
	kernel := func(e *eventlog.Event) bool {
		return e.Type == eventlog.EvEFIBootServicesApplication && bytes.Equal(e.Digest(eventlog.SHA256), mustHexT(t, gceKernel))
	}
	shim := func(e *eventlog.Event) bool {
		return e.Type == eventlog.EvEFIBootServicesApplication && bytes.Equal(e.Digest(eventlog.SHA256), mustHexT(t, gceShim))
	}
	for _, tc := range []struct {
		name   string
		ci     string
		mutate func([]eventlog.Event) []eventlog.Event
	}{
		{"untouched, deny by type", kernelByType, nil},
		{"kernel relabelled as a driver", kernelByType, relabel(eventlog.EvEFIBootServicesDriver, kernel)},
		{"kernel relabelled as a runtime driver", kernelByType, relabel(eventlog.EvEFIRuntimeServicesDriver, kernel)},
		{"kernel relabelled as an action", kernelByType, relabel(eventlog.EvEFIAction, kernel)},
		{"untouched, deny by position", thirdApp, nil},
		{"shim relabelled as a driver", thirdApp, relabel(eventlog.EvEFIBootServicesDriver, shim)},
		{"shim relabelled as an action", thirdApp, relabel(eventlog.EvEFIAction, shim)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := judgeReal(t, gceAttestation, tc.mutate, strictPolicy, tc.ci)
			c := checkOf(r, "policy.boot-components")
			if r.Trusted || c.Passed || !strings.HasPrefix(c.Detail, "1 of 3 boot components blocked") || !strings.Contains(c.Detail, "denied by rule") {
				t.Fatalf("%v\n%v", c, componentsOf(r))
			}
		})
	}
}

func mustHexT(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRelabelledWBCL: the Windows GCP attestation's WBCL events
// (EV_EVENT_TAG in PCRs 12-14) relabelled: the host is not thereby "not
// Windows"; the Windows checks fail naming the event and the Windows
// claims are unknown.
func TestRelabelledWBCL(t *testing.T) {
	policy := strictPolicy + "boot_components: ignore\n"
	_, base := judgeReal(t, winAttestation, nil, policy, "")
	if !base.Trusted || *base.Claims.CodeIntegrityEnabled != true || !base.Claims.BootDebuggingDisabled {
		t.Fatalf("untouched: %v", base.Checks)
	}
	tag := func(pcrs ...uint32) func(*eventlog.Event) bool { return typed(eventlog.EvEventTag, pcrs...) }
	for _, tc := range []struct {
		name string
		to   eventlog.EventType
		pick func(*eventlog.Event) bool
	}{
		{"all six as EV_EFI_ACTION", eventlog.EvEFIAction, tag(12, 13, 14)},
		{"all six as EV_IPL", eventlog.EvIPL, tag(12, 13, 14)},
		{"all six as EV_SEPARATOR", eventlog.EvSeparator, tag(12, 13, 14)},
		{"all six as EV_EFI_BOOT_SERVICES_APPLICATION", eventlog.EvEFIBootServicesApplication, tag(12, 13, 14)},
		{"all six as EV_COMPACT_HASH", eventlog.EvCompactHash, tag(12, 13, 14)},
		{"PCR 12's", eventlog.EvEFIAction, tag(12)},
		{"PCR 13's", eventlog.EvEFIAction, tag(13)},
		{"PCR 14's", eventlog.EvEFIAction, tag(14)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := judgeReal(t, winAttestation, relabel(tc.to, tc.pick), policy, "")
			if f := failedChecks(r); !slices.Equal(f, []string{"policy.debugging", "policy.code-integrity"}) {
				t.Fatalf("failed %v: %v", f, r.Checks)
			}
			for _, name := range []string{"policy.debugging", "policy.code-integrity"} {
				if c := checkOf(r, name); !strings.Contains(c.Detail, "WBCL") || !strings.Contains(c.Detail, "event ") {
					t.Errorf("%v", c)
				}
			}
			cl := r.Claims
			if cl.CodeIntegrityEnabled != nil || cl.TestSigningDisabled != nil || cl.KernelDebuggingDisabled != nil || cl.BootDebuggingDisabled {
				t.Fatalf("claims %+v", cl)
			}
			// Requiring Windows fails too.
			_, r = judgeReal(t, winAttestation, relabel(tc.to, tc.pick), policy+"code_integrity: required\n", "")
			if c := checkOf(r, "policy.code-integrity"); c.Passed {
				t.Fatalf("%v", c)
			}
		})
	}
}

// TestRelabelledIntoWBCL: Windows events relabelled as tagged events: the
// WBCL separators (their digest is that of "WBCL") still count as such;
// the boot manager's image load is still a boot component.
func TestRelabelledIntoWBCL(t *testing.T) {
	policy := strictPolicy + "boot_components: ignore\n"
	_, r := judgeReal(t, winAttestation, relabel(eventlog.EvEventTag, typed(eventlog.EvSeparator, 12, 13, 14)), policy, "")
	if !r.Trusted || *r.Claims.CodeIntegrityEnabled != true {
		t.Fatalf("separators as tagged events: %v", r.Checks)
	}
	_, r = judgeReal(t, winAttestation, relabel(eventlog.EvEventTag, typed(eventlog.EvCompactHash, 11)), policy, "")
	if !r.Trusted {
		t.Fatalf("PCR 11 as tagged events: %v", r.Checks)
	}
	// The boot manager relabelled: still judged (and blocked here).
	_, base := judgeReal(t, winAttestation, nil, strictPolicy, allowsNothing)
	_, r = judgeReal(t, winAttestation, relabel(eventlog.EvEventTag, typed(eventlog.EvEFIBootServicesApplication, 4)), strictPolicy, allowsNothing)
	for _, res := range []*Result{base, r} {
		if c := checkOf(res, "policy.boot-components"); res.Trusted || c.Passed || !strings.HasPrefix(c.Detail, "1 of 1 boot components blocked") {
			t.Fatalf("%v", c)
		}
	}
	if base.Claims.BootComponents[0].AuthenticodeSHA1 != r.Claims.BootComponents[0].AuthenticodeSHA1 {
		t.Fatalf("%+v", r.Claims.BootComponents)
	}
}

// TestRelabelledPCR7: GCE's PCR 7 events relabelled: the Secure Boot state
// becomes unknown (PCR 7 is read strictly), and so does everything PCR 7
// says: debugging and DMA protection count as possibly on.
func TestRelabelledPCR7(t *testing.T) {
	_, base := judgeReal(t, gceAttestation, nil, strictPolicy, gceByHash)
	if !base.Trusted || base.Claims.DMAProtectionDisabled {
		t.Fatalf("untouched: %v", base.Checks)
	}
	variable := func(name string) func(*eventlog.Event) bool {
		u := []byte{}
		for _, c := range name {
			u = append(u, byte(c), 0)
		}
		return func(e *eventlog.Event) bool {
			if e.PCR != 7 || e.Type != eventlog.EvEFIVariableDriverConfig {
				return false
			}
			vd, err := parseVariableData(e.Data)
			return err == nil && vd.name == name
		}
	}
	first := func(pred func(*eventlog.Event) bool) func(*eventlog.Event) bool {
		done := false
		return func(e *eventlog.Event) bool {
			if !done && pred(e) {
				done = true
				return true
			}
			return false
		}
	}
	for _, tc := range []struct {
		name string
		to   eventlog.EventType
		pick func(*eventlog.Event) bool
	}{
		{"SecureBoot as EV_EFI_VARIABLE_BOOT", eventlog.EvEFIVariableBoot, variable("SecureBoot")},
		{"SecureBoot as an authority", eventlog.EvEFIVariableAuthority, variable("SecureBoot")},
		{"PK as EV_EFI_ACTION", eventlog.EvEFIAction, variable("PK")},
		{"KEK as an application", eventlog.EvEFIBootServicesApplication, variable("KEK")},
		{"db as an authority", eventlog.EvEFIVariableAuthority, variable("db")},
		{"dbx as EV_EVENT_TAG", eventlog.EvEventTag, variable("dbx")},
		{"an authority as a variable", eventlog.EvEFIVariableDriverConfig, first(typed(eventlog.EvEFIVariableAuthority, 7))},
		{"an authority as EV_EFI_ACTION", eventlog.EvEFIAction, first(typed(eventlog.EvEFIVariableAuthority, 7))},
		{"the separator as EV_EFI_ACTION", eventlog.EvEFIAction, typed(eventlog.EvSeparator, 7)},
		{"the separator as a variable", eventlog.EvEFIVariableDriverConfig, typed(eventlog.EvSeparator, 7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, r := judgeReal(t, gceAttestation, relabel(tc.to, tc.pick), strictPolicy, gceByHash)
			bs := v.BootState()
			if bs.SecureBoot.Enabled || !strings.HasPrefix(bs.SecureBoot.Problem, "event ") || bs.PK != nil || bs.DB != nil || len(bs.Authorities) != 0 {
				t.Fatalf("secure boot %+v", bs.SecureBoot)
			}
			if f := failedChecks(r); !slices.Equal(f, []string{"policy.secure-boot", "policy.debugging"}) {
				t.Fatalf("failed %v", f)
			}
			cl := r.Claims
			if cl.SecureBootEnabled || cl.BootDebuggingDisabled || !cl.DMAProtectionDisabled {
				t.Fatalf("claims: secure boot %v, boot debugging disabled %v, DMA protection disabled %v", cl.SecureBootEnabled, cl.BootDebuggingDisabled, cl.DMAProtectionDisabled)
			}
		})
	}
}

// TestRelabelledKernelCmdline: GCE's kernel command line (GRUB's
// "kernel_cmdline: " EV_IPL event in PCR 8, its digest that of the command
// line) relabelled: still read.
func TestRelabelledKernelCmdline(t *testing.T) {
	_, base := judgeReal(t, gceAttestation, nil, strictPolicy, gceByHash)
	if len(base.Claims.KernelCmdlines) != 1 {
		t.Fatalf("untouched: %q", base.Claims.KernelCmdlines)
	}
	cmdline := func(e *eventlog.Event) bool { return e.PCR == 8 && bytes.HasPrefix(e.Data, []byte("kernel_cmdline: ")) }
	for _, to := range []eventlog.EventType{eventlog.EvEFIAction, eventlog.EvEventTag, eventlog.EvSeparator} {
		_, r := judgeReal(t, gceAttestation, relabel(to, cmdline), strictPolicy, gceByHash)
		if !slices.Equal(r.Claims.KernelCmdlines, base.Claims.KernelCmdlines) {
			t.Errorf("as %s: %q", to, r.Claims.KernelCmdlines)
		}
	}
}

// TestRelabelSynthetic: focused boots written with eventlog.Writer, each
// with events whose type or unbound data lies.
func TestRelabelSynthetic(t *testing.T) {
	pk, kek := secureBootCert(t, "GcePk.crt"), secureBootCert(t, "MicCorKEKCA2011_2011-06-24.crt")
	uefiCA := secureBootCert(t, "MicCorUEFCA2011_2011-06-27.crt")
	shim, grub := eventlog.SHA256.Sum([]byte("shim image")), eventlog.SHA256.Sum([]byte("grub image"))
	evil := eventlog.SHA256.Sum([]byte("unsigned bootkit"))
	good := bootSpec{secureBoot: 1, pk: []*signing.Certificate{pk}, kek: []*signing.Certificate{kek}, db: []*signing.Certificate{uefiCA},
		authority: uefiCA, apps: [][]byte{shim, grub}}
	ci := "format: csv-policy/v1\nname: boot\nrules:\n  - {id: shim, action: allow, authenticode_sha256: " + hexs(shim) +
		"}\n  - {id: grub, action: allow, authenticode_sha256: " + hexs(grub) + "}\n"
	sha := func(b []byte) eventlog.Digest { return eventlog.Digest{Alg: eventlog.SHA256, Value: b} }
	imageLoad := make([]byte, 32)
	winCI := [][]byte{sipa(sipaCodeIntegrity, []byte{1}), sipa(sipaTestSigning, []byte{0}), sipa(sipaBootDebugging, []byte{0})}
	tests := []struct {
		name   string
		spec   func(*bootSpec)
		failed []string
		detail string // a failed check's detail must contain it
		check  func(*testing.T, *Result)
	}{
		{name: "trusted"},
		{name: "image logged as the boot manager's action", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) {
				w.AppendDigests(4, eventlog.EvEFIAction, []byte("Calling EFI Application from Boot Option"), sha(evil))
			}
		}, failed: []string{"policy.boot-components"}, detail: "1 of 3 boot components blocked by the code integrity policy; first: pcr4/EV_EFI_ACTION/3 (an EV_EFI_ACTION event"},
		{name: "driver logged as a separator", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) { w.AppendDigests(2, eventlog.EvSeparator, []byte{0, 0, 0, 0}, sha(evil)) }
		}, failed: []string{"policy.boot-components"}, detail: "first: pcr2/EV_SEPARATOR/1"},
		{name: "image logged as EV_UNUSED, with no data", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) { w.AppendDigests(4, eventlog.EvUnused, nil, sha(evil)) }
		}, failed: []string{"policy.boot-components"}, detail: "first: pcr4/EV_UNUSED/3"},
		{name: "the action's digest logged as an image load", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) {
				w.AppendDigests(4, eventlog.EvEFIBootServicesApplication, imageLoad, sha(eventlog.SHA256.Sum([]byte("Calling EFI Application from Boot Option"))))
			}
		}, check: func(t *testing.T, r *Result) {
			if len(r.Claims.BootComponents) != 2 {
				t.Fatalf("%+v", r.Claims.BootComponents)
			}
		}},
		{name: "a separator's digest logged as a driver", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) {
				w.AppendDigests(2, eventlog.EvEFIBootServicesDriver, imageLoad, sha(eventlog.SHA256.Sum([]byte{0, 0, 0, 0})))
			}
		}},
		{name: "PCR 12 extended by a non-WBCL event", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) { w.Append(12, eventlog.EvIPL, []byte("something")) }
		}, failed: []string{"policy.debugging", "policy.code-integrity"}, detail: "PCR 12"},
		{name: "PCR 13 holds a WBCL separator only", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) { w.Append(13, eventlog.EvSeparator, []byte("WBCL")) }
		}, failed: []string{"policy.debugging", "policy.code-integrity"}, detail: "no WBCL tagged event"},
		{name: "Windows' tagged event logged as EV_EFI_ACTION", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) {
				var data []byte
				for _, e := range [][]byte{sipa(sipaCodeIntegrity, []byte{0}), sipa(sipaTestSigning, []byte{1}), sipa(sipaOSKernelDebug, []byte{1})} {
					data = append(data, e...)
				}
				w.Append(12, eventlog.EvEFIAction, sipa(0x40010001, data))
				w.Append(12, eventlog.EvSeparator, []byte("WBCL"))
			}
		}, failed: []string{"policy.debugging", "policy.code-integrity"}, detail: "is EV_EFI_ACTION, not a WBCL event"},
		{name: "shim's MOK measurements in PCR 14, no Windows", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) {
				w.AppendDigests(14, eventlog.EvIPL, []byte("MokList\x00"), sha(eventlog.SHA256.Sum([]byte("MOK certificates"))))
			}
		}},
		{name: "Windows with a non-WBCL event in PCR 14", spec: func(s *bootSpec) {
			s.windows = winCI
			s.after = func(w *eventlog.Writer) {
				w.AppendDigests(14, eventlog.EvIPL, []byte("MokList\x00"), sha(eventlog.SHA256.Sum([]byte("a test-signed policy"))))
			}
		}, failed: []string{"policy.debugging", "policy.code-integrity"}, detail: "PCR 14"},
		{name: "Windows, untouched", spec: func(s *bootSpec) { s.windows = winCI }, check: func(t *testing.T, r *Result) {
			if r.Claims.CodeIntegrityEnabled == nil || !*r.Claims.CodeIntegrityEnabled {
				t.Fatalf("%+v", r.Claims)
			}
		}},
		{name: "kernel command line logged as a tagged event", spec: func(s *bootSpec) {
			s.after = func(w *eventlog.Writer) {
				w.AppendDigests(8, eventlog.EvEventTag, []byte("kernel_cmdline: root=/dev/sda1 init=/bin/sh"), sha(eventlog.SHA256.Sum([]byte("root=/dev/sda1 init=/bin/sh"))))
			}
		}, check: func(t *testing.T, r *Result) {
			if !slices.Equal(r.Claims.KernelCmdlines, []string{"root=/dev/sda1 init=/bin/sh"}) {
				t.Fatalf("%q", r.Claims.KernelCmdlines)
			}
		}},
		{name: "UEFI debug mode logged as another type", spec: func(s *bootSpec) {
			s.pcr7Extra = func(w *eventlog.Writer) { w.Append(7, eventlog.EvEFIHandoffTables, []byte("UEFI Debug Mode")) }
		}, failed: []string{"policy.secure-boot", "policy.debugging"}, check: func(t *testing.T, r *Result) {
			if r.Claims.BootDebuggingDisabled {
				t.Fatal("boot debugging claimed disabled")
			}
		}},
		{name: "DMA protection disabled logged as another type", spec: func(s *bootSpec) {
			s.pcr7Extra = func(w *eventlog.Writer) { w.Append(7, eventlog.EvEFIHandoffTables, []byte("DMA Protection Disabled")) }
		}, failed: []string{"policy.secure-boot", "policy.debugging"}, check: func(t *testing.T, r *Result) {
			if !r.Claims.DMAProtectionDisabled {
				t.Fatal("DMA protection claimed enabled although PCR 7 cannot be read")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			if tt.spec != nil {
				tt.spec(&s)
			}
			ev, opts := bootLog(t, s)
			v, err := Verify(context.Background(), ev, opts)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Evaluate(context.Background(), v, mustPolicy(t, strictPolicy, nil), mustSet(t, ci))
			if err != nil {
				t.Fatal(err)
			}
			if f := failedChecks(r); !slices.Equal(f, tt.failed) || r.Trusted != (len(tt.failed) == 0) {
				t.Fatalf("failed %v, want %v:\n%v", f, tt.failed, r.Checks)
			}
			if tt.detail != "" && !slices.ContainsFunc(r.Checks, func(c Check) bool { return !c.Passed && strings.Contains(c.Detail, tt.detail) }) {
				t.Fatalf("no failed check says %q:\n%v", tt.detail, r.Checks)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}
