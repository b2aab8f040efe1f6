package eventlog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
)

func newWriter(t testing.TB, f eventlog.Format, algs ...eventlog.HashAlg) *eventlog.Writer {
	t.Helper()
	w, err := eventlog.NewWriter(f, algs...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// sampleBoot writes a short firmware boot: CRTM version, separators, an
// EFI action, a boot application.
func sampleBoot(w *eventlog.Writer) {
	w.Append(0, eventlog.EvSCRTMVersion, []byte("v1\x00"))
	for pcr := uint32(0); pcr < 8; pcr++ {
		w.Append(pcr, eventlog.EvSeparator, []byte{0, 0, 0, 0})
	}
	w.Append(5, eventlog.EvEFIAction, []byte("Exit Boot Services Invocation"))
	w.Append(4, eventlog.EvEFIBootServicesApplication, []byte("image load event"))
}

func parse(t testing.TB, b []byte) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWriterRoundTrip: what the writer writes parses back event for event,
// and replays to the values the writer computed on its own.
func TestWriterRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		f    eventlog.Format
		algs []eventlog.HashAlg
	}{
		{eventlog.FormatSHA1, nil},
		{eventlog.FormatCryptoAgile, []eventlog.HashAlg{eventlog.SHA256}},
		{eventlog.FormatCryptoAgile, []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384, eventlog.SHA512}},
	} {
		w := newWriter(t, tc.f, tc.algs...)
		sampleBoot(w)
		l := parse(t, w.Bytes())
		if l.Format != tc.f {
			t.Fatalf("format %v", l.Format)
		}
		header := 0
		if tc.f == eventlog.FormatCryptoAgile {
			header = 1
			if !slices.Equal(l.Algs, tc.algs) {
				t.Fatalf("banks %v", l.Algs)
			}
		}
		if len(l.Events) != 11+header {
			t.Fatalf("%d events", len(l.Events))
		}
		last := l.Events[len(l.Events)-1]
		if last.PCR != 4 || last.Type != eventlog.EvEFIBootServicesApplication || string(last.Data) != "image load event" {
			t.Fatalf("last event %+v", last)
		}
		for _, a := range l.Algs {
			if !bytes.Equal(last.Digest(a), a.Sum([]byte("image load event"))) {
				t.Fatalf("%s digest %x", a, last.Digest(a))
			}
		}
		m, err := l.Replay().Match(w.PCRs())
		if err != nil || len(m.Applied) != 0 {
			t.Fatalf("%v: %v %v", tc, err, m.Applied)
		}
	}
}

// TestReplayRules: one focused case per replay rule.
func TestReplayRules(t *testing.T) {
	t.Run("no action events are not extended", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		w.Append(0, eventlog.EvSeparator, []byte{0, 0, 0, 0})
		before := w.PCRs()
		w.AppendDigests(0, eventlog.EvNoAction, []byte("SP800-155 Event"), eventlog.Digest{Alg: eventlog.SHA256, Value: bytes.Repeat([]byte{7}, 32)})
		if _, err := parse(t, w.Bytes()).Replay().Match(before); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("startup locality sets PCR 0's initial value", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA1, eventlog.SHA256)
		w.StartupLocality(3)
		sampleBoot(w)
		want := w.PCRs()
		r := parse(t, w.Bytes()).Replay()
		if _, err := r.Match(want); err != nil {
			t.Fatal(err)
		}
		// The same log without the event replays to another PCR 0.
		w0 := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA1, eventlog.SHA256)
		sampleBoot(w0)
		if bytes.Equal(w0.PCRs().Get(eventlog.SHA256, 0), want.Get(eventlog.SHA256, 0)) {
			t.Fatal("locality 3 did not change PCR 0")
		}
	})
	t.Run("startup locality after a PCR 0 measurement is refused", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		w.Append(0, eventlog.EvSCRTMVersion, []byte("v1"))
		w.StartupLocality(3)
		v, why := parse(t, w.Bytes()).Replay().Value(eventlog.SHA256, 0)
		if v != nil || !strings.Contains(why, "StartupLocality event 2 comes after PCR 0 was measured") {
			t.Fatalf("%x %q", v, why)
		}
	})
	t.Run("events to PCR 0xFFFFFFFF are not extended and are reported", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatSHA1)
		sampleBoot(w)
		w.Append(eventlog.PCRUnmeasured, eventlog.EvNoAction, []byte("windows info"))
		w.Append(eventlog.PCRUnmeasured, eventlog.EvEventTag, []byte("more windows info"))
		m, err := parse(t, w.Bytes()).Replay().Match(w.PCRs())
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Applied) != 1 || m.Applied[0].Workaround != eventlog.WorkaroundUnmeasuredEvents || !slices.Equal(m.Applied[0].Events, []int{11, 12}) {
			t.Fatalf("applied %v", m.Applied)
		}
	})
	t.Run("PCRs 17-22 start as all ones", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		w.Append(17, eventlog.EvEventTag, []byte("drtm"))
		got, _ := parse(t, w.Bytes()).Replay().Value(eventlog.SHA256, 17)
		if !bytes.Equal(got, w.PCRs().Get(eventlog.SHA256, 17)) {
			t.Fatal("PCR 17")
		}
		if v, _ := parse(t, w.Bytes()).Replay().Value(eventlog.SHA256, 18); !bytes.Equal(v, bytes.Repeat([]byte{0xff}, 32)) {
			t.Fatalf("PCR 18 = %x", v)
		}
	})
	t.Run("exit boot services appended to PCR 5 only when needed", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		w.Append(5, eventlog.EvSeparator, []byte{0, 0, 0, 0})
		w.Extend(5, []byte("Exit Boot Services Invocation"))
		w.Extend(5, []byte("Exit Boot Services Returned with Failure"))
		r := parse(t, w.Bytes()).Replay()
		m, err := r.Match(w.PCRs())
		if err != nil || len(m.Applied) != 1 || m.Applied[0].Workaround != eventlog.WorkaroundExitBootServices ||
			!strings.Contains(m.Applied[0].Detail, "Failure") {
			t.Fatalf("%v %v", err, m.Applied)
		}
	})
	t.Run("exit boot services not appended when the log has them", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		w.Append(5, eventlog.EvEFIAction, []byte("Exit Boot Services Invocation"))
		w.Extend(5, []byte("Exit Boot Services Invocation"))
		w.Extend(5, []byte("Exit Boot Services Returned with Success"))
		if _, err := parse(t, w.Bytes()).Replay().Match(w.PCRs()); err == nil {
			t.Fatal("matched")
		}
	})
	t.Run("exit boot services never applied to another PCR", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		w.Append(4, eventlog.EvSeparator, []byte{0, 0, 0, 0})
		w.Extend(4, []byte("Exit Boot Services Invocation"))
		w.Extend(4, []byte("Exit Boot Services Returned with Success"))
		var re *eventlog.ReplayError
		if _, err := parse(t, w.Bytes()).Replay().Match(w.PCRs()); !errors.As(err, &re) || re.Mismatches[0].PCR != 4 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing digest: strict impossible, workaround only if it matches", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA1, eventlog.SHA256)
		w.Append(12, eventlog.EvEventTag, []byte("both"))
		w.AppendDigests(12, eventlog.EvEventTag, []byte("os"), eventlog.Digest{Alg: eventlog.SHA256, Value: eventlog.SHA256.Sum([]byte("os"))})
		r := parse(t, w.Bytes()).Replay()
		if v, why := r.Value(eventlog.SHA1, 12); v != nil || why != "event 2 (offset 145, EV_EVENT_TAG) has no sha1 digest" {
			t.Fatalf("%x %q", v, why)
		}
		m, err := r.Match(w.PCRs())
		if err != nil || len(m.Applied) != 1 || m.Applied[0].Workaround != eventlog.WorkaroundMissingDigest ||
			m.Applied[0].Alg != eventlog.SHA1 || !slices.Equal(m.Applied[0].Events, []int{2}) {
			t.Fatalf("%v %v", err, m.Applied)
		}
		if !m.Verified(eventlog.SHA256, 12) || !m.Verified(eventlog.SHA1, 12) {
			t.Fatal("PCR 12 not verified")
		}
	})
	t.Run("unlogged PCR", func(t *testing.T) {
		w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA256)
		sampleBoot(w)
		want := w.PCRs()
		want.Set(eventlog.SHA256, 10, bytes.Repeat([]byte{9}, 32))
		m, err := parse(t, w.Bytes()).Replay().Match(want)
		if err != nil || !slices.Equal(m.Unlogged, []eventlog.PCRRef{{Alg: eventlog.SHA256, PCR: 10}}) || m.Verified(eventlog.SHA256, 10) {
			t.Fatalf("%v %v", err, m.Unlogged)
		}
		// An eventless PCR holding its initial value is verified.
		if !m.Verified(eventlog.SHA256, 11) {
			t.Fatal("PCR 11")
		}
	})
}

// TestParseErrors: every malformed input is a *ParseError naming the
// event and its offset.
func TestParseErrors(t *testing.T) {
	w := newWriter(t, eventlog.FormatCryptoAgile, eventlog.SHA1, eventlog.SHA256)
	w.Append(0, eventlog.EvSeparator, []byte{0, 0, 0, 0})
	good := w.Bytes()
	hdrLen := len(good) - (12 + 2 + 20 + 2 + 32 + 4 + 4)
	le32 := binary.LittleEndian.AppendUint32
	le16 := binary.LittleEndian.AppendUint16
	agileEvent := func(pcr, typ uint32, digests []byte, count uint32, data []byte) []byte {
		b := le32(le32(le32(nil, pcr), typ), count)
		b = append(b, digests...)
		return append(le32(b, uint32(len(data))), data...)
	}
	sha1d := append(le16(nil, 0x0004), make([]byte, 20)...)
	sha256d := append(le16(nil, 0x000B), make([]byte, 32)...)
	header := good[:hdrLen]
	withHeader := func(rest ...[]byte) []byte {
		b := append([]byte(nil), header...)
		for _, r := range rest {
			b = append(b, r...)
		}
		return b
	}
	specID := func(mut func([]byte) []byte) []byte {
		// A SHA1-format EV_NO_ACTION record carrying a Spec ID header.
		data := mut(append([]byte(nil), good[32:hdrLen]...))
		b := le32(le32(nil, 0), 3)
		b = append(b, make([]byte, 20)...)
		return append(le32(b, uint32(len(data))), data...)
	}
	tests := []struct {
		name   string
		in     []byte
		index  int
		offset int
		reason string
	}{
		{"empty", nil, 0, 0, "empty log"},
		{"short first record", make([]byte, 31), 0, 0, "a TCG_PCR_EVENT header needs 32 bytes, 31 left"},
		{"truncated after header", good[:hdrLen+5], 1, hdrLen, "a TCG_PCR_EVENT2 header needs 12 bytes, 5 left"},
		{"truncated digest", good[:hdrLen+20], 1, hdrLen, "truncated: sha1 digest needs 20 bytes, 6 left"},
		{"truncated data", good[:len(good)-1], 1, hdrLen, "event data size 4 exceeds the 3 bytes left"},
		{"absurd data size", withHeader(agileEvent(0, 4, append(sha1d, sha256d...), 2, nil)[:12+22+34], le32(nil, 0xFFFFFFF0)), 1, hdrLen,
			"event data size 4294967280 is over the limit of 1048576"},
		{"data over the cap", withHeader(agileEvent(0, 4, sha256d, 1, make([]byte, 1<<20+1))), 1, hdrLen, "event data size 1048577 is over the limit of 1048576"},
		{"absurd digest count", withHeader(agileEvent(0, 4, nil, 0x7FFFFFFF, nil)), 1, hdrLen, "digest count 2147483647 is more than the 2 banks the header declares"},
		{"digest for an undeclared bank", withHeader(agileEvent(0, 4, append(le16(nil, 0x000C), make([]byte, 48)...), 1, nil)), 1, hdrLen,
			"digest 0 is for bank sha384, which the header does not declare"},
		{"two digests for one bank", withHeader(agileEvent(0, 4, append(sha256d, sha256d...), 2, nil)), 1, hdrLen, "two digests for bank sha256"},
		{"PCR out of range", withHeader(agileEvent(24, 4, sha256d, 1, nil)), 1, hdrLen, "PCR index 24 is out of range (0-23, or 0xFFFFFFFF)"},
		{"second event bad", withHeader(agileEvent(0, 4, sha256d, 1, nil), agileEvent(1, 4, sha256d, 1, nil)[:10]), 2, hdrLen + 12 + 34 + 4,
			"a TCG_PCR_EVENT2 header needs 12 bytes, 10 left"},
		{"spec id: no banks", specID(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 0); return b }), 0, 0,
			"Spec ID header: declares 0 banks (want 1 to 16)"},
		{"spec id: absurd bank count", specID(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 1<<30); return b }), 0, 0,
			"Spec ID header: declares 1073741824 banks (want 1 to 16)"},
		{"spec id: wrong digest size", specID(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[30:], 31); return b }), 0, 0,
			"Spec ID header: bank sha1 with digest size 31, want 20"},
		{"spec id: bank twice", specID(func(b []byte) []byte { copy(b[32:36], b[28:32]); return b }), 0, 0, "Spec ID header: bank sha1 declared twice"},
		{"spec id: vendor info size", specID(func(b []byte) []byte { b[36] = 5; return b }), 0, 0, "Spec ID header: vendor info size 5, but 0 bytes follow"},
		{"spec id: version", specID(func(b []byte) []byte { b[21] = 1; return b }), 0, 0, "Spec ID header: spec version 1.0, want 2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := eventlog.Parse(tt.in)
			var pe *eventlog.ParseError
			if l != nil || !errors.As(err, &pe) || !errors.Is(err, eventlog.ErrMalformed) {
				t.Fatalf("log %v, err %v", l != nil, err)
			}
			if pe.Index != tt.index || pe.Offset != tt.offset || !strings.HasSuffix(pe.Reason, tt.reason) {
				t.Fatalf("got event %d offset %d %q, want event %d offset %d %q", pe.Index, pe.Offset, pe.Reason, tt.index, tt.offset, tt.reason)
			}
		})
	}
}

// TestTooManyEvents: the event count is capped.
func TestTooManyEvents(t *testing.T) {
	w := newWriter(t, eventlog.FormatSHA1)
	for i := 0; i <= 1<<16; i++ {
		w.Append(1, eventlog.EvEventTag, nil)
	}
	_, err := eventlog.Parse(w.Bytes())
	var pe *eventlog.ParseError
	if !errors.As(err, &pe) || pe.Index != 1<<16 || pe.Offset != 32<<16 || pe.Reason != "more than 65536 events" {
		t.Fatalf("err = %v", err)
	}
}

// rewrite re-serialises a parsed log after mutate changed its events (the
// header excluded).
func rewrite(t testing.TB, l *eventlog.Log, mutate func([]eventlog.Event) []eventlog.Event) []byte {
	t.Helper()
	var algs []eventlog.HashAlg
	if l.Format == eventlog.FormatCryptoAgile {
		algs = l.Algs
	}
	w := newWriter(t, l.Format, algs...)
	evs := l.Events
	if l.Format == eventlog.FormatCryptoAgile {
		evs = evs[1:]
	}
	for _, e := range mutate(slices.Clone(evs)) {
		w.AppendDigests(e.PCR, e.Type, e.Data, e.Digests...)
	}
	return w.Bytes()
}

// TestTamperedRealLog: changes to a real log that the replay must catch,
// each named by the PCR it breaks.
func TestTamperedRealLog(t *testing.T) {
	fx := attesttest.Find(t, "go-tpm-tools/eventlogs/rhel8-uefi.bin")
	l := parse(t, fx.Raw)
	want := inBanks(l, fx.Want)
	if _, err := parse(t, rewrite(t, l, func(e []eventlog.Event) []eventlog.Event { return e })).Replay().Match(want); err != nil {
		t.Fatalf("the untouched rewrite does not replay: %v", err)
	}
	// Events of PCR 4 (boot applications) and PCR 7 (Secure Boot).
	var pcr4, pcr7 []int
	for i, e := range l.Events[1:] {
		switch e.PCR {
		case 4:
			pcr4 = append(pcr4, i)
		case 7:
			pcr7 = append(pcr7, i)
		}
	}
	// The source states SHA1 and SHA256 values; the digest change touches
	// the SHA256 digest only.
	tests := []struct {
		name       string
		mutate     func([]eventlog.Event) []eventlog.Event
		pcr        int
		mismatches int
	}{
		{"digest changed", func(e []eventlog.Event) []eventlog.Event {
			d := slices.Clone(e[pcr4[1]].Digests)
			d[1].Value = slices.Clone(d[1].Value)
			d[1].Value[0] ^= 1
			e[pcr4[1]].Digests = d
			return e
		}, 4, 1},
		{"two events of a PCR swapped", func(e []eventlog.Event) []eventlog.Event {
			e[pcr7[0]], e[pcr7[1]] = e[pcr7[1]], e[pcr7[0]]
			return e
		}, 7, 2},
		{"event removed", func(e []eventlog.Event) []eventlog.Event { return slices.Delete(e, pcr4[2], pcr4[2]+1) }, 4, 2},
		{"event appended", func(e []eventlog.Event) []eventlog.Event {
			extra := e[pcr4[1]]
			return append(e, extra)
		}, 4, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, rewrite(t, l, tt.mutate)).Replay().Match(want)
			var re *eventlog.ReplayError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v", err)
			}
			for _, m := range re.Mismatches {
				if m.PCR != tt.pcr {
					t.Errorf("mismatch of PCR %d: %s", m.PCR, m.Reason)
				}
			}
			if len(re.Mismatches) != tt.mismatches {
				t.Errorf("%d mismatches, want %d: %v", len(re.Mismatches), tt.mismatches, re)
			}
		})
	}
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{len(fx.Raw) - 1, len(fx.Raw) / 2, 40} {
			if _, err := eventlog.Parse(fx.Raw[:n]); !errors.Is(err, eventlog.ErrMalformed) {
				t.Fatalf("truncated to %d: %v", n, err)
			}
		}
	})
}

func TestHashAlgNames(t *testing.T) {
	for _, a := range []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256, eventlog.SHA384, eventlog.SHA512} {
		b, err := eventlog.ParseHashAlg(a.String())
		if err != nil || b != a || len(a.Sum(nil)) != a.Size() {
			t.Fatalf("%v: %v %v", a, b, err)
		}
	}
	if _, err := eventlog.ParseHashAlg("md5"); err == nil {
		t.Fatal("md5")
	}
	if eventlog.EvEFIVariableAuthority.String() != "EV_EFI_VARIABLE_AUTHORITY" || eventlog.EventType(0x42).String() != "EventType(0x00000042)" {
		t.Fatal("event type names")
	}
}
