package eventlog_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
)

// realLogs states what ../shared/testdata/eventlogs/README.md (and, for the
// event counts and banks, replay_facts.derived.json) says of every real
// log. records is the README's event count, plus one for the Spec ID header
// of a crypto-agile log (which Log.Events includes).
var realLogs = []struct {
	name    string
	format  eventlog.Format
	records int
	banks   []eventlog.HashAlg
	// workarounds are those Match must apply to reach the stated PCRs
	// (restricted to the log's banks); unlogged the stated PCRs no event
	// extends though they hold a measured value.
	workarounds []eventlog.Workaround
	unlogged    []eventlog.PCRRef
}{
	{"go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog", agile, 76, b3, nil, nil},
	{"go-attestation/crypto_agile_eventlog", agile, 27, bSHA256, nil, nil},
	{"go-attestation/ebs_event_missing_eventlog", sha1fmt, 38, bSHA1, []eventlog.Workaround{eventlog.WorkaroundExitBootServices}, nil},
	{"go-attestation/option_rom_eventlog", sha1fmt, 61, bSHA1, []eventlog.Workaround{eventlog.WorkaroundUnmeasuredEvents}, nil},
	// The source states PCR 10 (IMA, measured by the kernel into its own
	// log) for this log, which holds no PCR 10 event.
	{"go-attestation/sb_cert_eventlog", agile, 15, b3, nil, []eventlog.PCRRef{{Alg: eventlog.SHA1, PCR: 10}, {Alg: eventlog.SHA256, PCR: 10}}},
	{"go-attestation/short_no_action_eventlog", sha1fmt, 1, bSHA1, nil, nil},
	{"go-attestation/windows_gcp_shielded_vm.json", sha1fmt, 21, bSHA1, nil, nil},
	{"go-eventlog/linux_tpm12.json", sha1fmt, 40, bSHA1, nil, []eventlog.PCRRef{{Alg: eventlog.SHA1, PCR: 10}}},
	{"go-tpm-tools/eventlogs/arch-linux-workstation.bin", agile, 25, b2, nil, nil},
	{"go-tpm-tools/eventlogs/confidential-gke-debug-251000_eventlog.bin", agile, 55, b3, nil, nil},
	{"go-tpm-tools/eventlogs/cos-101-amd-sev.bin", agile, 49, b3, nil, nil},
	{"go-tpm-tools/eventlogs/cos-85-amd-sev.bin", agile, 46, b3, nil, nil},
	{"go-tpm-tools/eventlogs/cos-93-amd-sev.bin", agile, 46, b3, nil, nil},
	{"go-tpm-tools/eventlogs/debian-10.bin", sha1fmt, 25, bSHA1, nil, nil},
	{"go-tpm-tools/eventlogs/eventlogwithsp800155.bin", agile, 54, b3, nil, nil},
	{"go-tpm-tools/eventlogs/gdc-host.bin", agile, 159, bSHA256, nil, nil},
	{"go-tpm-tools/eventlogs/glinux-alex.bin", agile, 29, b2, nil, nil},
	{"go-tpm-tools/eventlogs/rhel8-uefi.bin", agile, 83, b3, nil, nil},
	{"go-tpm-tools/eventlogs/ubuntu-1804-amd-sev.bin", agile, 88, b3, nil, nil},
	{"go-tpm-tools/eventlogs/ubuntu-2104-no-dbx.bin", agile, 112, b3, nil, nil},
	{"go-tpm-tools/eventlogs/ubuntu-2104-no-secure-boot.bin", agile, 106, b3, nil, nil},
	{"go-tpm-tools/eventlogs/ubuntu-2404-amd-sevsnp.bin", agile, 117, b3, nil, nil},
	{"keylime-python3-uefi-eventlog/201123-eventlog.bin", agile, 60, b2, nil, nil},
	{"keylime-python3-uefi-eventlog/inspur.bin", agile, 101, b2, nil, nil},
	{"keylime-python3-uefi-eventlog/intel_svr.bin", agile, 119, b2, nil, nil},
	{"keylime-python3-uefi-eventlog/p511.bin", agile, 59, b2, nil, nil},
	{"keylime-python3-uefi-eventlog/rk049-s26.bin", agile, 47, b2, nil, nil},
}

const (
	agile   = eventlog.FormatCryptoAgile
	sha1fmt = eventlog.FormatSHA1
)

var (
	bSHA1   = []eventlog.HashAlg{eventlog.SHA1}
	bSHA256 = []eventlog.HashAlg{eventlog.SHA256}
	b2      = []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256}
	b3      = []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384}
)

// inBanks restricts want to the log's banks.
func inBanks(l *eventlog.Log, want eventlog.PCRs) eventlog.PCRs {
	out := eventlog.PCRs{}
	for a, b := range want {
		if l.HasAlg(a) {
			out[a] = b
		}
	}
	return out
}

func workaroundsOf(m *eventlog.Matched) []eventlog.Workaround {
	var out []eventlog.Workaround
	for _, a := range m.Applied {
		if !slices.Contains(out, a.Workaround) {
			out = append(out, a.Workaround)
		}
	}
	return out
}

// TestRealLogs parses every real log and replays it to the PCR values its
// source states, applying exactly the workarounds the README says the log
// needs.
func TestRealLogs(t *testing.T) {
	logs := attesttest.Logs(t)
	if len(logs) != len(realLogs) {
		t.Fatalf("%d logs in the shared data, %d in the table: update the table", len(logs), len(realLogs))
	}
	for i, tt := range realLogs {
		t.Run(tt.name, func(t *testing.T) {
			fx := logs[i]
			if fx.Name != tt.name {
				t.Fatalf("fixture %d is %s", i, fx.Name)
			}
			l, err := eventlog.Parse(fx.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if l.Format != tt.format || len(l.Events) != tt.records || !slices.Equal(l.Algs, tt.banks) {
				t.Fatalf("format %v, %d records, banks %v; want %v, %d, %v", l.Format, len(l.Events), l.Algs, tt.format, tt.records, tt.banks)
			}
			for i, e := range l.Events {
				if e.Index != i {
					t.Fatalf("event %d has index %d", i, e.Index)
				}
			}
			if fx.Want == nil {
				// No stated values: the replay must still give every
				// bank's PCRs, except where events lack the bank's digest.
				strict := l.Replay().Strict()
				for _, a := range l.Algs {
					if strict[a] == nil {
						t.Errorf("no %s bank replayed", a)
					}
				}
				return
			}
			m, err := l.Replay().Match(inBanks(l, fx.Want))
			if err != nil {
				t.Fatalf("does not replay to %s: %v", fx.WantSource, err)
			}
			if got := workaroundsOf(m); !slices.Equal(got, tt.workarounds) {
				t.Errorf("workarounds %v, want %v (%v)", got, tt.workarounds, m.Applied)
			}
			if !slices.Equal(m.Unlogged, tt.unlogged) {
				t.Errorf("unlogged %v, want %v", m.Unlogged, tt.unlogged)
			}
			// Every stated PCR of the log's banks is accounted for.
			for a, bank := range inBanks(l, fx.Want) {
				for p, v := range bank {
					if v != nil && !m.Verified(a, p) && !slices.Contains(m.Unlogged, eventlog.PCRRef{Alg: a, PCR: p}) {
						t.Errorf("%s PCR %d neither verified nor unlogged", a, p)
					}
				}
			}
		})
	}
}

// TestExitBootServicesWorkaround: the README says PCR 5 of this log
// replays only after appending the two ExitBootServices actions.
func TestExitBootServicesWorkaround(t *testing.T) {
	fx := attesttest.Find(t, "go-attestation/ebs_event_missing_eventlog")
	l, err := eventlog.Parse(fx.Raw)
	if err != nil {
		t.Fatal(err)
	}
	r := l.Replay()
	want := fx.Want.Get(eventlog.SHA1, 5)
	strict, _ := r.Value(eventlog.SHA1, 5)
	if bytes.Equal(strict, want) {
		t.Fatal("the strict replay of PCR 5 already matches: the log does not exercise the workaround")
	}
	m, err := r.Match(eventlog.PCRs{eventlog.SHA1: {5: want}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Applied) != 1 || m.Applied[0].Workaround != eventlog.WorkaroundExitBootServices || m.Applied[0].PCR != 5 {
		t.Fatalf("applied %v", m.Applied)
	}
	// The stated SHA256 value cannot be checked: the log has no SHA256
	// bank, and says so.
	_, err = r.Match(eventlog.PCRs{eventlog.SHA256: {5: fx.Want.Get(eventlog.SHA256, 5)}})
	var re *eventlog.ReplayError
	if !errors.As(err, &re) || len(re.Mismatches) != 1 || re.Mismatches[0].Reason != "the log has no sha256 bank" {
		t.Fatalf("err = %v", err)
	}
	// The workaround is tried on PCR 5 only: the same value wanted of
	// PCR 4 is a mismatch.
	if _, err := r.Match(eventlog.PCRs{eventlog.SHA1: {4: want}}); !errors.As(err, &re) {
		t.Fatalf("PCR 4 matched PCR 5's workaround value: %v", err)
	}
}

// TestMissingDigestWorkaround: p511 (Windows) has 16 events with a SHA256
// digest and no SHA1 digest although its header declares both banks
// (README): the SHA1 bank of PCRs 11-14 cannot be replayed strictly. The
// log states no PCR values; no event with a SHA1 digest extends PCRs 11-14,
// so a TPM whose SHA1 bank Windows never extended holds their reset value.
func TestMissingDigestWorkaround(t *testing.T) {
	fx := attesttest.Find(t, "keylime-python3-uefi-eventlog/p511.bin")
	l, err := eventlog.Parse(fx.Raw)
	if err != nil {
		t.Fatal(err)
	}
	r := l.Replay()
	zero := make([]byte, 20)
	for pcr := 11; pcr <= 14; pcr++ {
		v, why := r.Value(eventlog.SHA1, pcr)
		if v != nil || why == "" {
			t.Fatalf("PCR %d: strict SHA1 replay %x (%q), want none", pcr, v, why)
		}
		if v, why := r.Value(eventlog.SHA256, pcr); v == nil {
			t.Fatalf("PCR %d: no SHA256 replay: %s", pcr, why)
		}
		m, err := r.Match(one(eventlog.SHA1, pcr, zero))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range m.Applied {
			if a.Workaround == eventlog.WorkaroundMissingDigest && a.PCR == pcr && len(a.Events) > 0 {
				found = true
			}
		}
		if !found {
			t.Fatalf("PCR %d: applied %v", pcr, m.Applied)
		}
		// Any other value is a mismatch: skipping events is no licence
		// to match anything.
		if _, err := r.Match(one(eventlog.SHA1, pcr, bytes.Repeat([]byte{1}, 20))); err == nil {
			t.Fatalf("PCR %d matched an arbitrary value", pcr)
		}
	}
	v, why := r.Value(eventlog.SHA1, 11)
	if v != nil || why != "event 43 (offset 20783, EV_COMPACT_HASH) and 1 more have no sha1 digest" {
		t.Fatalf("PCR 11: %x %q", v, why)
	}
}

// one returns PCRs holding one value.
func one(a eventlog.HashAlg, pcr int, v []byte) eventlog.PCRs {
	p := eventlog.PCRs{}
	p.Set(a, pcr, v)
	return p
}
