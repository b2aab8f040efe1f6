package triage_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/triage"
)

// Triage a wevtutil export against the current policy: the blocked file
// is one the policy allows by its Authenticode hash, so the host runs an
// older policy.
func Example() {
	auth := strings.Repeat("2A", 32)
	export := `<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>` +
		`<Provider Name='Microsoft-Windows-CodeIntegrity'/><EventID>3077</EventID><Version>5</Version>` +
		`<TimeCreated SystemTime='2026-06-02T08:00:00Z'/><Correlation ActivityID='{E4DB489E-1037-0002-799D-F2E43710DA01}'/>` +
		`<Computer>WS01</Computer></System><EventData>` +
		`<Data Name='File Name'>\Device\HarddiskVolume3\Tools\tool.exe</Data>` +
		`<Data Name='SHA256 Hash Size'>32</Data><Data Name='SHA256 Hash'>` + auth + `</Data>` +
		`<Data Name='SI Signing Scenario'>1</Data><Data Name='PolicyName'>current</Data>` +
		`</EventData></Event>`
	l, err := triage.Parse([]byte(export), "events.xml")
	if err != nil {
		log.Fatal(err)
	}
	p, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: current\nversion: 2.0.0\nmode: enforce\nrules:\n"+
		"  - id: tool\n    action: allow\n    authenticode_sha256: "+strings.ToLower(auth)+"\n"), "policy.yaml")
	if err != nil {
		log.Fatal(err)
	}
	t, err := triage.New(triage.Options{Policies: []triage.PolicyFile{{Policy: p}}})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range t.TriageLog(l) {
		fmt.Println(f.Class, f.Event.Path, f.Current.Evidence, f.Current.Rule)
	}
	// Output:
	// old-policy HarddiskVolume3:\Tools\tool.exe hash tool
}
