package eventlog_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/panicerr"
)

// FuzzParse: Parse never panics; on error it returns no log and a
// *ParseError whose offset lies in the input; a log it accepts replays, and
// re-serialised by the Writer parses back to the same events.
func FuzzParse(f *testing.F) {
	for _, fm := range []eventlog.Format{eventlog.FormatSHA1, eventlog.FormatCryptoAgile} {
		var algs []eventlog.HashAlg
		if fm == eventlog.FormatCryptoAgile {
			algs = []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256}
		}
		w, _ := eventlog.NewWriter(fm, algs...)
		sampleBoot(w)
		w.Append(eventlog.PCRUnmeasured, eventlog.EvEventTag, []byte("x"))
		f.Add(w.Bytes())
	}
	if os.Getenv("CSV_SHARED") != "" || dirExists("../../../shared") {
		for _, l := range attesttest.Logs(f) {
			if len(l.Raw) <= 32<<10 {
				f.Add(l.Raw)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := eventlog.Parse(data)
		panicerr.Check(t, err)
		if err != nil {
			var pe *eventlog.ParseError
			if l != nil || !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(data) {
				t.Fatalf("log %v, err %v", l != nil, err)
			}
			return
		}
		r := l.Replay()
		_, _ = r.Match(r.Strict())
		var algs []eventlog.HashAlg
		if l.Format == eventlog.FormatCryptoAgile {
			algs = l.Algs
			for _, a := range algs {
				if a.Hash() == 0 {
					return // the writer cannot declare banks Go cannot hash
				}
			}
		}
		w, err := eventlog.NewWriter(l.Format, algs...)
		if err != nil {
			t.Fatal(err)
		}
		evs := l.Events
		if l.Format == eventlog.FormatCryptoAgile {
			evs = evs[1:]
		}
		for _, e := range evs {
			w.AppendDigests(e.PCR, e.Type, e.Data, e.Digests...)
		}
		l2, err := eventlog.Parse(w.Bytes())
		panicerr.Check(t, err)
		if err != nil {
			t.Fatalf("re-serialised log: %v", err)
		}
		if len(l2.Events) != len(l.Events) {
			t.Fatalf("%d events, then %d", len(l.Events), len(l2.Events))
		}
		for i := range evs {
			a, b := evs[i], l2.Events[len(l2.Events)-len(evs)+i]
			if a.PCR != b.PCR || a.Type != b.Type || !bytes.Equal(a.Data, b.Data) || len(a.Digests) != len(b.Digests) {
				t.Fatalf("event %d differs after a round trip", a.Index)
			}
		}
	})
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
