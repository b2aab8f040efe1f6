package csv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// discardSink counts what a run passes on.
type discardSink struct{ results, skipped int }

func (d *discardSink) Begin(*Report) error        { return nil }
func (d *discardSink) Result(*Result) error       { d.results++; return nil }
func (d *discardSink) Skipped(*SkippedFile) error { d.skipped++; return nil }
func (d *discardSink) End(*Report) error          { return nil }

// writeBenchFacts writes n records like bench/factsgen's (ELF files of
// 14 KB with their digests; every tenth a PE file signed by inter's
// chain, verified) to a facts file, and returns its path.
func writeBenchFacts(tb testing.TB, n int, chain []*signing.Certificate) string {
	tb.Helper()
	name := filepath.Join(tb.TempDir(), "bench.facts")
	f, err := os.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w, err := facts.NewWriter(f, facts.NewHeader("bench", "csv test", time.Unix(0, 0)), facts.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var certs []facts.Certificate
	for _, c := range chain {
		certs = append(certs, facts.Certificate{DER: c.Raw, TBSHash: c.TBSHashHex(), Subject: c.CommonName()})
	}
	hexd := func(i int, kind string, size int) string {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(append([]byte(kind), b[:]...))
		return hex.EncodeToString(s[:size])
	}
	for i := range n {
		r := &facts.Record{Root: "tree", Path: fmt.Sprintf("d%04d/f%07d", i/1000, i), Size: 14336}
		if i%10 == 9 {
			r.Path += ".exe"
			r.Format, r.Signed = cipolicy.FormatPE, true
			r.Digests = map[cipolicy.HashAlgorithm]string{cipolicy.SHA256: hexd(i, "s", 32), cipolicy.AuthenticodeSHA256: hexd(i, "a", 32),
				cipolicy.AuthenticodeSHA1: hexd(i, "1", 20), cipolicy.PageSHA256: hexd(i, "p", 32), cipolicy.PageSHA1: hexd(i, "q", 20)}
			r.Certificates = certs
			r.Signatures = []facts.Signature{{Format: "authenticode", Verified: true, DigestAlgorithm: "SHA-256",
				Digest: r.Digests[cipolicy.AuthenticodeSHA256], SignatureAlgorithm: "RSA", Chains: [][]int{{0, 1, 2}}, Certificates: []int{0, 1}}}
		} else {
			r.Format = cipolicy.FormatELF
			r.Digests = map[cipolicy.HashAlgorithm]string{cipolicy.SHA256: hexd(i, "s", 32), cipolicy.FSVeritySHA256: hexd(i, "f", 32)}
			r.Signatures = []facts.Signature{}
		}
		if err := w.Write(r); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return name
}

// BenchmarkValidateFacts judges 100,000 recorded files (90% ELF, 10%
// signed PE, as bench/facts.sh's) with a signer rule and an ELF rule,
// into a sink that keeps nothing: records/s is the judging rate without
// a report (bench/facts.sh measures csv validate --facts with reports,
// against validating files).
func BenchmarkValidateFacts(b *testing.B) {
	chain := benchChain(b)
	const n = 100000
	file := writeBenchFacts(b, n, chain)
	v := benchFactsValidator(b, chain, Options{})
	b.ResetTimer()
	for b.Loop() {
		var d discardSink
		if err := v.ValidateFacts(context.Background(), &d, file); err != nil {
			b.Fatal(err)
		}
		if d.results != n {
			b.Fatalf("%d results", d.results)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFactsStages splits a record's cost, on one goroutine, over
// bench/facts.sh's records: reading and splitting the lines (the floor:
// what any judge of the file pays), then decoding and checking them too,
// then judging them too (ValidateFacts with one worker, into a sink
// that keeps nothing). ns/record of each, and their differences, are
// the CPU each stage costs a record (cpu-ns/record: CPU time, which the
// machine's other work does not inflate as it does wall time).
func BenchmarkFactsStages(b *testing.B) {
	chain := benchChain(b)
	const n = 100000
	file := writeBenchFacts(b, n, chain)
	data, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	each := func(b *testing.B, f func(rd *facts.Reader, line []byte, num int)) {
		cpu := cpuTime(b)
		for b.Loop() {
			rd, err := facts.NewReader(bytes.NewReader(data), "bench.facts")
			if err != nil {
				b.Fatal(err)
			}
			var buf []byte
			for k := 0; ; k++ {
				out, num, err := rd.AppendLine(buf[:0])
				if errors.Is(err, io.EOF) {
					if k != n {
						b.Fatalf("%d records", k)
					}
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				buf = out
				f(rd, out, num)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/n, "cpu-ns/record")
	}
	b.Run("read", func(b *testing.B) { each(b, func(*facts.Reader, []byte, int) {}) })
	b.Run("decode", func(b *testing.B) {
		var d *facts.Decoder
		each(b, func(rd *facts.Reader, line []byte, num int) {
			if num == 2 || d == nil {
				d = rd.Decoder()
			}
			if _, err := d.Decode(line, num); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("judge", func(b *testing.B) {
		v := benchFactsValidator(b, chain, Options{Jobs: 1})
		cpu := cpuTime(b)
		for b.Loop() {
			var d discardSink
			if err := v.ValidateFacts(context.Background(), &d, file); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/n, "cpu-ns/record")
	})
}

// benchChain is a build chain of the test CA (leaf, issuing CA, root).
func benchChain(b *testing.B) []*signing.Certificate {
	ca := testca.New(b)
	leaf := ca.Leaf(b, testca.LeafOptions{CommonName: "Build Signing"})
	var chain []*signing.Certificate
	for _, c := range [][]byte{leaf.Cert.Raw, ca.Intermediate.Cert.Raw, ca.Root.Cert.Raw} {
		sc, err := signing.ParseCertificate(c)
		if err != nil {
			b.Fatal(err)
		}
		chain = append(chain, sc)
	}
	return chain
}

// benchFactsValidator judges with bench/facts.sh's policy: a signer rule
// for chain's issuing CA, an ELF rule.
func benchFactsValidator(b *testing.B, chain []*signing.Certificate, opts Options) *Validator {
	p, err := cipolicy.Parse([]byte(fmt.Sprintf("format: csv-policy/v1\nname: b\nversion: '1'\nrules:\n"+
		"  - {id: build, action: allow, signer: {tbs: %s, level: issuer}}\n  - {id: elf, action: allow, formats: [elf], all: true}\n", chain[1].TBSHashHex())), "b.yaml")
	if err != nil {
		b.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewValidator(set, opts)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
