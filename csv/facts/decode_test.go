package facts_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/facts"
	"github.com/codesignval/csv/internal/limits"
)

// jsonNames are the member names of every type a line decodes into.
var jsonNames = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range []any{facts.Record{}, facts.Signature{}, facts.Timestamp{}, facts.Attributes{}, facts.CatalogFile{},
		facts.Certificate{}, facts.CertificateLine{}} {
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			if tag := t.Field(i).Tag.Get("json"); tag != "" {
				m[strings.Split(tag, ",")[0]] = true
			}
		}
	}
	return m
}()

// foldsToMember says whether encoding/json takes name for a member it is
// not ("Path" for "path": it matches names case-insensitively).
func foldsToMember(name string) bool {
	if jsonNames[name] {
		return false
	}
	for n := range jsonNames {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// repeatsMember says whether an object of the JSON line holds the member
// name twice (which encoding/json takes, keeping the last).
func repeatsMember(line []byte, name string) bool {
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	var st []*frame
	afterValue := func() {
		if len(st) > 0 && st[len(st)-1].obj {
			st[len(st)-1].wantKey = true
		}
	}
	d := json.NewDecoder(bytes.NewReader(line))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if n := len(st); n > 0 && st[n-1].obj && st[n-1].wantKey {
			if k, ok := tok.(string); ok {
				if k == name && st[n-1].keys[k] {
					return true
				}
				st[n-1].keys[k], st[n-1].wantKey = true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			st = append(st, &frame{obj: true, wantKey: true, keys: map[string]bool{}})
		case json.Delim('['):
			st = append(st, &frame{})
		case json.Delim('}'), json.Delim(']'):
			st = st[:len(st)-1]
			afterValue()
		default:
			afterValue()
		}
	}
}

// diffSetup is the decoder FuzzDecodeDifferential checks records with:
// the certificates of its seeds defined.
var diffSetup struct {
	once  sync.Once
	dec   *facts.Decoder
	seeds [][]byte
}

func differentialSeeds(tb testing.TB) ([][]byte, *facts.Decoder) {
	diffSetup.once.Do(func() {
		rec, _ := signedRecord(tb)
		signed := *rec
		signed.Signatures = append([]facts.Signature(nil), rec.Signatures...)
		signed.Signatures[0].Verified = true
		var all bytes.Buffer
		for i, data := range [][]byte{recordExamples(tb, false), encode(tb, rec, &signed)} {
			lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
			if i > 0 {
				lines = lines[1:] // one header
			}
			for _, l := range lines {
				all.Write(l)
				all.WriteByte('\n')
			}
		}
		rd, err := facts.NewReader(bytes.NewReader(all.Bytes()), "seeds.facts")
		if err != nil {
			tb.Fatal(err)
		}
		for {
			if _, err := rd.Next(); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				tb.Fatal(err)
			}
		}
		diffSetup.dec = rd.Decoder()
		lines := bytes.Split(all.Bytes(), []byte("\n"))
		for _, l := range lines[1:] {
			if len(l) > 0 {
				diffSetup.seeds = append(diffSetup.seeds, l)
			}
		}
	})
	if diffSetup.dec == nil {
		tb.Fatal("no seeds")
	}
	return diffSetup.seeds, diffSetup.dec
}

// differentialLines are hand-made lines at the edges of the grammar
// (each seeds the fuzzer, and TestDecodeDifferential runs them).
var differentialLines = []string{
	`{"root":"r","path":"a","format":"elf","size":1,"signed":false,"signatures":null}`,
	`null`,
	` {"root":"r" , "path":"a\u00e9\ud83d\ude00\/\"\\\b\f\n\r\t","format":"elf","size":-0,"signatures":[]}  `,
	`{"root":"r","path":"\ud800x\udc00\ud800\u0041","format":"elf"}`,
	`{"Root":"r","path":"a"}`,
	`{"root":"r","root":"s","path":"a"}`,
	`{"root":"r","path":"a","digests":{"sha256":"00","sha256":"11"}}`,
	`{"root":"r","path":"a","\u017Fize":1}`,
	`{"root":"r","path":"a","size":1.0}`,
	`{"root":"r","path":"a","size":1e3}`,
	`{"root":"r","path":"a","size":9223372036854775807}`,
	`{"root":"r","path":"a","size":9223372036854775808}`,
	`{"root":"r","path":"a","size":-9223372036854775808}`,
	`{"root":"r","path":"a","size":012}`,
	`{"root":null,"path":null,"file_root":null,"size":null,"digests":null,"signatures":null,"certificates":null,"attributes":null,"catalog_file":null,"catalog_lookup":null}`,
	`{"root":"r","path":"a","digests":{},"signatures":[{}],"certificates":[{},null],"attributes":{"alternatives":[null,{}]},"catalog_file":{},"catalog_lookup":[]}`,
	`{"root":"r","path":"a","signatures":[{"path":[1,null],"chains":[[0],null,[]],"certificates":[],"signer_digests":[null],"ignored_by":{"uefi":null},"timestamp":{"time":null,"chains":null}}]}`,
	`{"root":"r","path":"a","signatures":[{"timestamp":{"time":"2026-01-01T00:00:00.123456789+02:00"}}]}`,
	`{"root":"r","path":"a","signatures":[{"timestamp":{"time":"2026-01-01"}}]}`,
	`{"root":"r","path":"a","certificates":[{"der":"","sha256":"00"},{"der":"AAEC\r\nAw=="}]}`,
	`{"root":"r","path":"a","certificates":[{"der":"AAEC*w=="}]}`,
	`{"root":"r","path":"a"} x`,
	"null\x00",
	"{\"root\":\"r\",\"path\":\"a\"} \x00",
	"{\"root\":\"r\",\x00\"path\":\"a\"}",
	`{"root":"r","path":"a"}{}`,
	`{"root":"r","path":"a",}`,
	`{"root":"r" "path":"a"}`,
	`{"root":"r","path":"a\x01"}`,
	"{\"root\":\"r\",\"path\":\"a\xff\"}",
	`{"root":"r","path":"a\x"}`,
	`{"root":"r","path":"a\u12"}`,
	`{"root":tru}`,
	`[]`,
	`{"certificate":null}`,
	`{"certificate":{"der":"AAEC","tbs_hash":"x","subject":"y"}}`,
	`{"certificate":{"der":"AAEC"},"certificate":{}}`,
}

// checkDifferential decodes line with both decoders: both refuse it, or
// both take it to the same record; where only encoding/json takes it, it
// is for a documented leniency of encoding/json (a member name matched
// case-insensitively, a repeated member) or past a cap that the checks
// after decoding refuse too.
func checkDifferential(t *testing.T, dec *facts.Decoder, line []byte) {
	t.Helper()
	lenient := func(fastErr error, check func() error) {
		t.Helper()
		if name, repeated, ok := facts.MemberError(fastErr); ok {
			if repeated && !repeatsMember(line, name) || !repeated && !foldsToMember(name) {
				t.Fatalf("%q: refused for member %q (repeated %v), which encoding/json takes and is no leniency of it", line, name, repeated)
			}
			return
		}
		if facts.IsCapError(fastErr) {
			if check() == nil {
				t.Fatalf("%q: refused past a cap (%v), which the checks take", line, fastErr)
			}
			return
		}
		t.Fatalf("%q: refused (%v), which encoding/json takes", line, fastErr)
	}
	fast, fastErr := facts.DecodeFast(line)
	ref, refErr := facts.DecodeReference(line)
	switch {
	case fastErr == nil && refErr != nil:
		t.Fatalf("%q: taken, which encoding/json refuses: %v", line, refErr)
	case fastErr == nil && !reflect.DeepEqual(fast, ref):
		t.Fatalf("%q: decoded\n%#v\nencoding/json:\n%#v", line, fast, ref)
	case fastErr == nil:
		// The same record: the checks take or refuse both alike.
		if (dec.Check(fast, 1<<30) == nil) != (dec.Check(ref, 1<<30) == nil) {
			t.Fatalf("%q: the checks differ", line)
		}
	case refErr == nil:
		lenient(fastErr, func() error { return dec.Check(ref, 1<<30) })
	}
	fc, fastErr := facts.DecodeCertificateFast(line)
	rc, refErr := facts.DecodeCertificateReference(line)
	switch {
	case fastErr == nil && refErr != nil:
		t.Fatalf("%q: taken as a certificate line, which encoding/json refuses: %v", line, refErr)
	case fastErr == nil && !reflect.DeepEqual(fc, rc):
		t.Fatalf("%q: certificate line decoded\n%#v\nencoding/json:\n%#v", line, fc, rc)
	case fastErr != nil && refErr == nil:
		lenient(fastErr, func() error {
			if rc.Certificate == nil {
				return errors.New("none")
			}
			return dec.CheckCertificate(rc.Certificate)
		})
	}
}

// TestDecodeDifferential runs the differential check over the seeds: real
// records (the example build, a signed record) and the edge cases.
func TestDecodeDifferential(t *testing.T) {
	seeds, dec := differentialSeeds(t)
	for _, l := range differentialLines {
		seeds = append(seeds, []byte(l))
	}
	refused := 0
	for _, l := range seeds {
		checkDifferential(t, dec, l)
		if _, err := facts.DecodeFast(l); err != nil {
			refused++
		}
	}
	if refused == 0 || refused == len(seeds) {
		t.Fatalf("%d of %d seeds refused: the seeds test nothing", refused, len(seeds))
	}
	// The documented leniencies are refused, each for what it is.
	for _, tt := range []struct {
		line, name string
		repeated   bool
	}{
		{`{"Root":"r","path":"a"}`, "Root", false},
		{`{"root":"r","path":"a","\u017Fize":1}`, "\u017Fize", false},
		{`{"root":"r","root":"s","path":"a"}`, "root", true},
		{`{"root":"r","path":"a","digests":{"sha256":"00","sha256":"11"}}`, "sha256", true},
	} {
		_, err := facts.DecodeFast([]byte(tt.line))
		if name, repeated, ok := facts.MemberError(err); !ok || name != tt.name || repeated != tt.repeated {
			t.Errorf("%s: %v, want member %q refused (repeated %v)", tt.line, err, tt.name, tt.repeated)
		}
		if _, err := facts.DecodeReference([]byte(tt.line)); err != nil {
			t.Errorf("%s: encoding/json refuses it (%v): no leniency", tt.line, err)
		}
	}
}

// FuzzDecodeDifferential: the hand-written decoder of record and
// certificate lines against encoding/json (checkDifferential), seeded
// with the lines csv validate --record writes for the example build and
// a signed record, and edge cases of the grammar.
func FuzzDecodeDifferential(f *testing.F) {
	seeds, dec := differentialSeeds(f)
	for _, l := range seeds {
		f.Add(l)
	}
	for _, l := range differentialLines {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return // a line
		}
		checkDifferential(t, dec, line)
	})
}

// TestDigestsFit: every digest cipolicy knows fits a Subject's fixed
// arrays (a longer one would be refused as a record's).
func TestDigestsFit(t *testing.T) {
	for _, a := range cipolicy.HashAlgorithms {
		if a.Size() == 0 || a.Size() > facts.MaxDigest {
			t.Errorf("%s: %d bytes, want 1 to %d", a, a.Size(), facts.MaxDigest)
		}
	}
}

// TestGzipCap: a gzip-compressed facts file may decompress to so many
// bytes (limits.MaxFactsDecompressed; smaller here): at the cap it reads
// whole, past it the read stops with an error naming the file and the
// line being read.
func TestGzipCap(t *testing.T) {
	rec, _ := signedRecord(t)
	plain := encode(t, rec, rec, rec)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(plain); err != nil || zw.Close() != nil {
		t.Fatal("gzip", err)
	}
	read := func(max int64) ([]*facts.Entry, error) {
		rd, err := facts.NewReaderLimit(bytes.NewReader(gz.Bytes()), "c.facts.gz", max)
		if err != nil {
			return nil, err
		}
		var out []*facts.Entry
		for {
			e, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, e)
		}
	}
	if e, err := read(int64(len(plain))); err != nil || len(e) != 3 {
		t.Fatalf("at the cap: %d records, %v; want 3", len(e), err)
	}
	lines := bytes.Count(plain, []byte("\n"))
	e, err := read(int64(len(plain) - 1))
	var pe *facts.ParseError
	if !errors.As(err, &pe) || !errors.Is(err, facts.ErrMalformed) || pe.File != "c.facts.gz" || pe.Line != lines ||
		!strings.Contains(err.Error(), "decompresses to more than") || len(e) != 2 {
		t.Fatalf("past the cap: %d records, %v; want 2, then a ParseError at line %d", len(e), err, lines)
	}
	if limits.MaxFactsDecompressed < 1<<30 {
		t.Errorf("limits.MaxFactsDecompressed %d: less than a build's facts", limits.MaxFactsDecompressed)
	}
}
