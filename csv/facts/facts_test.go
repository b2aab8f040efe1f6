package facts_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// recordExamples records the example build and its untrusted files as
// csv validate --record does, and returns the facts file.
func recordExamples(tb testing.TB, gz bool) []byte {
	tb.Helper()
	p, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: all\nversion: '1'\nrules:\n  - {id: all, action: allow, all: true}\n"), "all.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, p)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := csv.NewValidator(set, csv.Options{AllDigests: true})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := facts.NewWriter(&buf, facts.NewHeader("examples", "csv test", time.Unix(0, 0)), facts.WriterOptions{Gzip: gz})
	if err != nil {
		tb.Fatal(err)
	}
	roots := []string{filepath.Join("..", "..", "examples", "build"), filepath.Join("..", "..", "examples", "untrusted")}
	if err := v.ValidateTo(context.Background(), &csv.FactsRecorder{W: w, Next: discard{}}, roots...); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

type discard struct{}

func (discard) Begin(*csv.Report) error        { return nil }
func (discard) Result(*csv.Result) error       { return nil }
func (discard) Skipped(*csv.SkippedFile) error { return nil }
func (discard) End(*csv.Report) error          { return nil }

// readAll reads every record of a facts file.
func readAll(data []byte, name string) (*facts.Reader, []*facts.Entry, error) {
	rd, err := facts.NewReader(bytes.NewReader(data), name)
	if err != nil {
		return nil, nil, err
	}
	var out []*facts.Entry
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rd, out, nil
		}
		if err != nil {
			return rd, out, err
		}
		out = append(out, e)
	}
}

// signedRecord is a record with a verified signature (chain leaf,
// intermediate, root), its timestamp, a catalog's signature, attributes
// and a problem signature whose signer was not found.
func signedRecord(t testing.TB) (*facts.Record, []*signing.Signature) {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing"})
	var chain []*signing.Certificate
	for _, c := range [][]byte{leaf.Cert.Raw, ca.Intermediate.Cert.Raw, ca.Root.Cert.Raw} {
		sc, err := signing.ParseCertificate(c)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, sc)
	}
	// The verified state comes from reading the record back: a record is
	// what a verifier wrote, so write one as it would.
	ts := &signing.Timestamp{Kind: "rfc3161", Time: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Chains: [][]*signing.Certificate{chain[1:]}}
	own := &signing.Signature{Format: "authenticode", DigestAlgorithm: crypto.SHA256, Digest: bytes.Repeat([]byte{1}, 32),
		SignerDigests: []crypto.Hash{crypto.SHA1}, SignatureAlgorithm: "RSA", Chains: [][]*signing.Certificate{chain},
		Certificates: chain[:2], PageHashes: crypto.SHA256, Timestamp: ts}
	own.Ignore(signing.HostUEFI, "a nested signature")
	missing := &signing.Signature{Format: "modsig", Index: 1, Path: []int{0}, DigestAlgorithm: crypto.SHA256, SignatureAlgorithm: "RSA",
		Problem: fmt.Errorf("signer %q: %w", "x", signing.ErrSignerNotFound)}
	cat := &signing.Signature{Format: "authenticode", DigestAlgorithm: crypto.SHA1, SignatureAlgorithm: "ECDSA", Chains: [][]*signing.Certificate{chain[1:]}}
	rec := &facts.Record{Root: "out", Path: "a.zip!/app.exe", Format: cipolicy.FormatPE, Size: 4096, Signed: true}
	var d cipolicy.Digests
	d.Set(cipolicy.SHA256, bytes.Repeat([]byte{2}, 32))
	d.Set(cipolicy.AuthenticodeSHA1, bytes.Repeat([]byte{3}, 20))
	rec.SetDigests(d)
	rec.SetSignatures([]*signing.Signature{own, missing, cat}, 2, []string{"out/pkg.cat"})
	ver := cipolicy.Version{10, 0, 1, 2}
	rec.SetAttributes(&cipolicy.FileAttributes{OriginalFileName: "app.exe", ProductName: "App", FileVersion: &ver,
		Alternatives: []cipolicy.FileAttributes{{OriginalFileName: "APP.EXE"}}})
	return rec, []*signing.Signature{own, missing, cat}
}

func encode(t testing.TB, recs ...*facts.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := facts.NewWriter(&buf, facts.NewHeader("host", "csv test", time.Unix(0, 0)), facts.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRoundTrip: a record read back holds the facts written: digests,
// each signature's state, hashes, chains (the same certificates, shared),
// timestamp, hosts that ignore it, problem (still ErrSignerNotFound),
// catalog, attributes.
func TestRoundTrip(t *testing.T) {
	rec, sigs := signedRecord(t)
	if n := len(rec.Certificates); n != 3 {
		t.Fatalf("%d certificates recorded, want 3 (deduplicated)", n)
	}
	rd, entries, err := readAll(encode(t, rec), "x.facts")
	if err != nil {
		t.Fatal(err)
	}
	if rd.Header.Origin != "host" || rd.Header.Format != facts.Version || len(entries) != 1 || entries[0].Line != 5 {
		t.Fatalf("header %+v, %d entries", rd.Header, len(entries))
	}
	s := entries[0].Subject
	if !bytes.Equal(s.Digests.Get(cipolicy.SHA256), bytes.Repeat([]byte{2}, 32)) || s.Digests.Algorithms().Len() != 2 {
		t.Errorf("digests %v", s.Digests)
	}
	if s.Own != 2 || len(s.Catalogs) != 1 || s.Catalogs[0] != "out/pkg.cat" || len(s.Signatures) != 3 {
		t.Fatalf("own %d, catalogs %q, %d signatures", s.Own, s.Catalogs, len(s.Signatures))
	}
	got := s.Signatures[0]
	// Recorded unverified: the recorder's verifier did not mark them.
	if got.Verified() || got.Timestamp == nil || got.Timestamp.Verified() {
		t.Errorf("verified %t: a signature the recorder did not verify", got.Verified())
	}
	if got.DigestAlgorithm != crypto.SHA256 || got.PageHashes != crypto.SHA256 || len(got.SignerDigests) != 1 || got.SignerDigests[0] != crypto.SHA1 ||
		got.SignatureAlgorithm != "RSA" || len(got.Chains) != 1 || len(got.Chains[0]) != 3 || len(got.Certificates) != 2 || got.IgnoredBy[signing.HostUEFI] == "" {
		t.Errorf("signature 0: %+v", got)
	}
	for i, c := range got.Chains[0] {
		if !bytes.Equal(c.Raw, sigs[0].Chains[0][i].Raw) || c.TBSHashHex() != sigs[0].Chains[0][i].TBSHashHex() {
			t.Errorf("chain certificate %d differs", i)
		}
	}
	if got.Chains[0][1] != s.Signatures[2].Chains[0][0] {
		t.Error("a certificate two signatures share is parsed twice")
	}
	if !got.Timestamp.Time.Equal(sigs[0].Timestamp.Time) || len(got.Timestamp.Chains[0]) != 2 {
		t.Errorf("timestamp %+v", got.Timestamp)
	}
	m := s.Signatures[1]
	if !errors.Is(m.Problem, signing.ErrSignerNotFound) || m.Problem.Error() != sigs[1].Problem.Error() || !m.Nested() || m.Index != 1 {
		t.Errorf("signature 1: %+v", m)
	}
	a := s.Attributes
	if a == nil || a.OriginalFileName != "app.exe" || a.FileVersion == nil || a.FileVersion.String() != "10.0.1.2" || len(a.Alternatives) != 1 {
		t.Errorf("attributes %+v", a)
	}
}

// TestRecordedVerified: a signature recorded as verified is verified once
// read back (the recorder's word), and so is its timestamp.
func TestRecordedVerified(t *testing.T) {
	rec, _ := signedRecord(t)
	rec.Signatures[0].Verified = true
	rec.Signatures[0].Timestamp.Verified = true
	_, entries, err := readAll(encode(t, rec), "x.facts")
	if err != nil {
		t.Fatal(err)
	}
	s := entries[0].Subject.Signatures
	if !s[0].Verified() || !s[0].Timestamp.Verified() || s[1].Verified() || s[2].Verified() {
		t.Errorf("verified: %t %t %t %t", s[0].Verified(), s[0].Timestamp.Verified(), s[1].Verified(), s[2].Verified())
	}
}

// TestExamplesRoundTrip: the example build's facts, plain and compressed,
// read back, record for record.
func TestExamplesRoundTrip(t *testing.T) {
	plain, gz := recordExamples(t, false), recordExamples(t, true)
	if bytes.Equal(plain, gz) || len(gz) >= len(plain) {
		t.Fatalf("gzip: %d bytes, plain %d", len(gz), len(plain))
	}
	_, a, err := readAll(plain, "plain")
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := readAll(gz, "gz")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) < 8 || len(a) != len(b) {
		t.Fatalf("%d and %d records", len(a), len(b))
	}
	problems := 0
	for i := range a {
		if a[i].Record.Path != b[i].Record.Path {
			t.Errorf("record %d: %q and %q", i, a[i].Record.Path, b[i].Record.Path)
		}
		if a[i].Record.Problem != "" {
			problems++
		}
	}
	if problems == 0 {
		t.Error("no problem recorded for the untrusted files")
	}
}

// TestStrict: every malformed facts file is an error naming the file and
// the line, wrapping ErrMalformed.
func TestStrict(t *testing.T) {
	hdr := `{"format":"csv-facts/v1","origin":"h","tool":"t","created":"2026-01-01T00:00:00Z"}` + "\n"
	ok := `{"root":"r","path":"a","format":"elf","size":1,"signed":false,"signatures":null}`
	rec, _ := signedRecord(t)
	// Three certificate lines (lines 2 to 4), then the record (line 5).
	signed := strings.TrimSuffix(strings.SplitN(string(encode(t, rec)), "\n", 2)[1], "\n")
	fp := sha256.Sum256(rec.Certificates[0].DER)
	ref := hex.EncodeToString(fp[:])
	der := base64.StdEncoding.EncodeToString(rec.Certificates[0].DER)
	tests := []struct {
		name, data string
		line       int
	}{
		{"empty", "", 0},
		{"no newline", hdr + ok, 2},
		{"wrong format", strings.Replace(hdr, "csv-facts/v1", "csv-facts/v2", 1), 1},
		{"no origin", strings.Replace(hdr, `"h"`, `""`, 1), 1},
		{"header field", strings.Replace(hdr, `"tool"`, `"tools"`, 1), 1},
		{"unknown field", hdr + ok[:len(ok)-1] + `,"trusted":true}` + "\n", 2},
		{"trailing data", hdr + ok + ` {}` + "\n", 2},
		{"not json", hdr + ok + "\n" + "{\n", 3},
		{"no path", hdr + strings.Replace(ok, `"a"`, `""`, 1) + "\n", 2},
		{"format other", hdr + strings.Replace(ok, `"elf"`, `"other"`, 1) + "\n", 2},
		{"unknown format", hdr + strings.Replace(ok, `"elf"`, `"coff"`, 1) + "\n", 2},
		{"negative size", hdr + strings.Replace(ok, `"size":1`, `"size":-1`, 1) + "\n", 2},
		{"unknown digest", hdr + ok[:len(ok)-1] + `,"digests":{"md5":"00"}}` + "\n", 2},
		{"short digest", hdr + ok[:len(ok)-1] + `,"digests":{"sha256":"00"}}` + "\n", 2},
		{"skipped with facts", hdr + ok[:len(ok)-1] + `,"skipped":"x"}` + "\n", 2},
		{"nul", hdr + strings.Replace(ok, `"a"`, `"a\u0000b"`, 1) + "\n", 2},
		{"certificate index", hdr + strings.Replace(signed, `"chains":[[0,1,2]]`, `"chains":[[0,1,7]]`, 1) + "\n", 5},
		{"empty chain", hdr + strings.Replace(signed, `"chains":[[0,1,2]]`, `"chains":[[]]`, 1) + "\n", 5},
		{"bad certificate", hdr + strings.Replace(signed, der, base64.StdEncoding.EncodeToString([]byte("not DER")), 1) + "\n", 2},
		{"tbs mismatch", hdr + strings.Replace(signed, rec.Certificates[0].TBSHash, strings.Repeat("0", len(rec.Certificates[0].TBSHash)), 1) + "\n", 2},
		{"unknown hash", hdr + strings.Replace(signed, `"digest_algorithm":"SHA-1"`, `"digest_algorithm":"SHA-3"`, 1) + "\n", 5},
		{"unknown host", hdr + strings.Replace(signed, `"uefi"`, `"beos"`, 1) + "\n", 5},
		{"catalog first", hdr + strings.Replace(strings.Replace(signed, `"catalog":"out/pkg.cat"`, `"catalog":""`, 1), `"format":"modsig"`, `"catalog":"x","format":"modsig"`, 1) + "\n", 5},
		{"verified with problem", hdr + strings.Replace(signed, `"verified":false,"problem"`, `"verified":true,"problem"`, 1) + "\n", 5},
		{"bad version", hdr + strings.Replace(signed, `"10.0.1.2"`, `"10.x"`, 1) + "\n", 5},
		{"nested alternatives", hdr + strings.Replace(signed, `{"original_file_name":"APP.EXE",`, `{"original_file_name":"APP.EXE","alternatives":[{"original_file_name":"","internal_name":"","file_description":"","product_name":""}],`, 1) + "\n", 5},
		{"undefined certificate", hdr + strings.Replace(signed[strings.LastIndex(signed, "\n")+1:], ref, strings.Repeat("ab", 32), 1) + "\n", 2},
		{"reference and der", hdr + strings.Replace(signed, `{"sha256":"`+ref+`"}`, `{"der":"`+der+`","sha256":"`+ref+`"}`, 1) + "\n", 5},
		{"reference before definition", hdr + signed[strings.LastIndex(signed, "\n")+1:] + "\n", 2},
		{"gzip garbage", "\x1f\x8bnot gzip", 0},
		{"long line", hdr + `{"root":"` + strings.Repeat("x", limits.MaxFactsLine) + `"}` + "\n", 2},
		{"long text", hdr + strings.Replace(ok, `"r"`, `"`+strings.Repeat("r", limits.MaxFactsText+1)+`"`, 1) + "\n", 2},
		{"field case", hdr + strings.Replace(ok, `"path"`, `"Path"`, 1) + "\n", 2},
		{"repeated field", hdr + strings.Replace(ok, `"path":"a"`, `"path":"a","path":"b"`, 1) + "\n", 2},
		{"repeated digest", hdr + ok[:len(ok)-1] + `,"digests":{"sha256":"` + strings.Repeat("0", 64) + `","sha256":"` + strings.Repeat("1", 64) + `"}}` + "\n", 2},
		{"bad utf-8", hdr + strings.Replace(ok, `"a"`, "\"a\xff\"", 1) + "\n", 2},
		{"bad utf-8 header", strings.Replace(hdr, `"t"`, "\"t\xff\"", 1), 1},
		{"bad escape", hdr + strings.Replace(ok, `"a"`, `"a\q"`, 1) + "\n", 2},
		{"fraction", hdr + strings.Replace(ok, `"size":1`, `"size":1.5`, 1) + "\n", 2},
		{"out of range", hdr + strings.Replace(ok, `"size":1`, `"size":99999999999999999999`, 1) + "\n", 2},
		{"wrong type", hdr + strings.Replace(ok, `"signed":false`, `"signed":"false"`, 1) + "\n", 2},
		{"certificate line field", hdr + `{"certificate":{"DER":"AA=="}}` + "\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll([]byte(tt.data), "f.facts")
			var pe *facts.ParseError
			if !errors.As(err, &pe) || !errors.Is(err, facts.ErrMalformed) || pe.File != "f.facts" || pe.Line != tt.line {
				t.Fatalf("err = %v, want a ParseError at f.facts:%d", err, tt.line)
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("facts: f.facts:%d: ", tt.line)) {
				t.Errorf("message %q", err)
			}
		})
	}
	// The valid ones parse.
	if _, e, err := readAll([]byte(hdr+ok+"\n"+signed+"\n"), "f.facts"); err != nil || len(e) != 2 {
		t.Fatalf("valid: %v (%d records)", err, len(e))
	}
}

// TestWriterRefuses: a header needs an origin.
func TestWriterRefuses(t *testing.T) {
	if _, err := facts.NewWriter(io.Discard, facts.Header{}, facts.WriterOptions{}); err == nil {
		t.Error("a header without an origin was written")
	}
}

// FuzzReader: whatever the bytes, reading a facts file returns records or
// an error naming the file and line, never a panic; a record read is
// written back and read again to the same facts.
func FuzzReader(f *testing.F) {
	f.Add(recordExamples(f, false))
	f.Add(recordExamples(f, true))
	hdr := `{"format":"csv-facts/v1","origin":"h","tool":"t","created":"2026-01-01T00:00:00Z"}` + "\n"
	signed, _ := signedRecord(f)
	signed.Signatures[0].Verified = true
	f.Add(encode(f, signed))
	f.Add([]byte(hdr + `{"root":"r","path":"a","skipped":"not a PE or ELF file","size":0,"signed":false,"signatures":null}` + "\n"))
	f.Add([]byte(hdr + `{"root":"r","path":"a.cat","format":"catalog","size":9,"signed":true,"signatures":[],"catalog_file":{"signed":true,"verified":false,"members":0,"problem":"p"}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, entries, err := readAll(data, "fuzz.facts")
		panicerr.Check(t, err)
		if err != nil {
			var pe *facts.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is no ParseError", err)
			}
		}
		for _, e := range entries {
			if e.Subject == nil || e.Record == nil {
				t.Fatal("an entry without facts")
			}
			var buf bytes.Buffer
			w, err := facts.NewWriter(&buf, facts.NewHeader("h", "t", time.Unix(0, 0)), facts.WriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(e.Record); err != nil {
				t.Fatal(err)
			}
			w.Close()
			_, again, err := readAll(buf.Bytes(), "again")
			if err != nil || len(again) != 1 {
				t.Fatalf("a record read does not read again: %v", err)
			}
			if again[0].Subject.Own != e.Subject.Own || len(again[0].Subject.Signatures) != len(e.Subject.Signatures) ||
				!again[0].Subject.Digests.Algorithms().Equal(e.Subject.Digests.Algorithms()) {
				t.Fatal("a record read back differs")
			}
		}
	})
}

// TestIsFactsFile: a facts file is told by its header, compressed or not;
// other files and directories are not facts files.
func TestIsFactsFile(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"plain.facts": recordExamples(t, false), "gz.facts.gz": recordExamples(t, true),
		"report.json": []byte(`{"mediaType":"x"}`), "empty": nil, "tool": []byte("\x7fELF")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{"plain.facts": true, "gz.facts.gz": true, "report.json": false, "empty": false, "tool": false, ".": false} {
		got, err := facts.IsFactsFile(filepath.Join(dir, name))
		if err != nil || got != want {
			t.Errorf("%s: %t, %v; want %t", name, got, err, want)
		}
	}
	if _, err := facts.IsFactsFile(filepath.Join(dir, "absent")); err == nil {
		t.Error("an absent file: no error")
	}
}

// TestCertificateDefinedLater: a record names only certificates defined on
// lines before it, also when its line is decoded (Decoder, on a worker)
// after the Reader has gone on to define later ones.
func TestCertificateDefinedLater(t *testing.T) {
	rec, _ := signedRecord(t)
	data := encode(t, rec, rec)
	lines := bytes.SplitAfter(data, []byte("\n"))
	// header, certificate lines, record, record: put the first record
	// before the certificate lines.
	var certs, recs [][]byte
	for _, l := range lines[1:] {
		switch {
		case len(l) == 0:
		case bytes.HasPrefix(l, []byte(`{"certificate":`)):
			certs = append(certs, l)
		default:
			recs = append(recs, l)
		}
	}
	if len(certs) == 0 || len(recs) != 2 {
		t.Fatalf("%d certificate lines, %d records", len(certs), len(recs))
	}
	moved := slices.Concat([][]byte{lines[0], recs[0]}, certs, [][]byte{recs[1]})
	rd, err := facts.NewReader(bytes.NewReader(bytes.Join(moved, nil)), "later.facts")
	if err != nil {
		t.Fatal(err)
	}
	first, n, err := rd.Line()
	if err != nil {
		t.Fatal(err)
	}
	second, m, err := rd.Line() // defines the certificates on the way
	if err != nil {
		t.Fatal(err)
	}
	d := rd.Decoder()
	if _, err := d.Decode(first, n); err == nil || !strings.Contains(err.Error(), "no certificate line before it defines it") {
		t.Errorf("the record before the certificate lines: %v", err)
	}
	if _, err := d.Decode(second, m); err != nil {
		t.Errorf("the record after them: %v", err)
	}
}
