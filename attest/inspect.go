package attest

import (
	"fmt"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/panicerr"
)

// Inspection is a log read without a quote: its events, the replayed PCR
// values of every bank, and the boot state as the log claims it. Nothing in
// it is verified.
type Inspection struct {
	Log    *eventlog.Log
	Replay *eventlog.Replay
	// Boot is the boot state read from every event (Verified false).
	Boot *BootState
	// Workarounds are those the boot state extraction needed, and
	// WorkaroundUnmeasuredEvents if the log has such events.
	Workarounds []eventlog.Applied
}

// Inspect parses a log and reads it as if every event were covered by a
// quote. Use it to look at a log, never to decide anything: a host can
// send any log. Errors wrap ErrInvalidEvidence.
func Inspect(raw []byte) (in *Inspection, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, fmt.Errorf("%w: internal error while reading the log: %w", ErrInvalidEvidence, panicerr.New(r))
		}
	}()
	l, err := eventlog.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: event log: %w", ErrInvalidEvidence, err)
	}
	in = &Inspection{Log: l, Replay: l.Replay()}
	in.Boot = extractBootState(&view{log: l})
	if u := in.Replay.Unmeasured(); len(u) > 0 {
		in.Workarounds = append(in.Workarounds, eventlog.Applied{Workaround: eventlog.WorkaroundUnmeasuredEvents, PCR: -1, Events: u})
	}
	in.Workarounds = append(in.Workarounds, in.Boot.Workarounds...)
	return in, nil
}
