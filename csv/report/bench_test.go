package report_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/report"
)

// BenchmarkSinkResult: what a sink costs per result, on the emitter's
// goroutine, for results like bench/manyfiles.sh's (an allowed ELF file
// with its facts, no digest), in each format (text verbose, SARIF with
// and without passes); "-reference" encodes the result as the JSON,
// SARIF and JUnit sinks did before they were written by hand.
func BenchmarkSinkResult(b *testing.B) {
	var ok csv.Result
	for _, r := range run(b, cipolicy.Enforce).Results {
		if r.Decision.Allowed() {
			ok = r
		}
	}
	ok.Root, ok.Digests = "/tmp/csv-bench-many-100000/tree", nil
	results := make([]csv.Result, 1000)
	for i := range results {
		results[i] = ok
		results[i].Path = fmt.Sprintf("d%04d/f%07d", i/1000, i)
	}
	for _, name := range append(report.Formats, "sarif-passes") {
		b.Run(name, func(b *testing.B) {
			format, opts := name, report.Options{Verbose: true}
			if name == "sarif-passes" {
				format, opts.SARIFPasses = "sarif", true
			}
			s, err := report.NewSink(format, opts, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			rep := &csv.Report{Mode: cipolicy.Enforce}
			if err := s.Begin(rep); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r := results[i%len(results)]
				if err := s.Result(&r); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := s.End(rep); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.Run("json-reference", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := report.ResultJSONReference(&results[i%len(results)], false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sarif-passes-reference", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, _, err := report.SARIFResultReference(&results[i%len(results)], report.Options{SARIFPasses: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("junit-reference", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, _, _, err := report.JUnitCaseReference(&results[i%len(results)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
