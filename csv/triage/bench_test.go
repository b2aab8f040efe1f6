package triage

import (
	"fmt"
	"testing"
)

// benchExport is n block events, each with one 3089 event.
func benchExport(b *testing.B, n int, asJSON bool) []byte {
	var specs []spec
	for i := range n {
		blk := blockSpec(IDBlock, fmt.Sprintf(`\Device\HarddiskVolume3\App\f%d.exe`, i), auth1, auth256, flat1, flat256, testGUID)
		blk.activity = fmt.Sprintf("{00000000-0000-0000-0000-%012d}", i)
		specs = append(specs, blk, sigSpec(blk.activity, blk.computer, 0, 1, "Contoso", "Contoso CA", repeat(1, 32), repeat(2, 32)))
	}
	if asJSON {
		return jsonExport(b, ps51, specs...)
	}
	return xmlExport(specs...)
}

// BenchmarkParse reads 10,000 3077 events with their 3089 events
// (20,000 records), as wevtutil and Windows PowerShell export them.
func BenchmarkParse(b *testing.B) {
	for _, format := range []string{"xml", "json"} {
		data := benchExport(b, 10000, format == "json")
		b.Run(format, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				l, err := Parse(data, "bench")
				if err != nil || len(l.Events) != 10000 || len(l.Errors) != 0 {
					b.Fatalf("%v %d events %v", err, len(l.Events), l.Errors)
				}
			}
		})
	}
}
