package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/textsafe"
)

// A report is written as the run decides it: NewSink returns a csv.Sink
// that takes each result as the pipeline passes it on (csv.ValidateTo)
// and writes the whole report to w at End, so that nothing is written of
// a run that fails, and a run's memory does not grow with its files.
//
// The text, JSON and SARIF reports put what only the end knows (the
// summary line, the JSON summary and "passed", SARIF's invocation and
// summary) before the results: their sinks encode each result when it
// comes into a spool (memory up to spoolMemory, then a temporary file,
// removed at End) and write the head, then the spool, at End. A JUnit
// document carries its counts in attributes of the elements that enclose
// the results: its sink spools each result's test case the same way.

// NewSink returns the sink that writes the report of format to w. As only
// the end of the run knows whether it judged no binary,
// opts.FailedNoTargets is decided at End: set when opts.FailIfNoTargets is
// and the run judged no binary.
func NewSink(format string, opts Options, w io.Writer) (csv.Sink, error) {
	if _, err := New(format, opts); err != nil {
		return nil, err
	}
	switch format {
	case "text":
		return &textSink{opts: opts, w: w, decide: true}, nil
	case "json":
		return &jsonSink{opts: opts, w: w, decide: true}, nil
	case "sarif":
		return &sarifSink{opts: opts, w: w, decide: true, paths: newSARIFPaths(opts)}, nil
	}
	return &junitSink{opts: opts, w: w, decide: true}, nil
}

// endOptions are the options at End: with decide, FailedNoTargets is set
// when the run asked for targets and judged none.
func endOptions(opts Options, decide bool, rep *csv.Report) Options {
	if decide && opts.FailIfNoTargets && rep.Summary.Files == 0 {
		opts.FailedNoTargets = true
	}
	return opts
}

// render writes rep through the sink s, as the pipeline would have passed
// it on.
func render(s csv.Sink, rep *csv.Report) error {
	head := *rep
	head.Results, head.Skipped = nil, nil
	if err := s.Begin(&head); err != nil {
		return err
	}
	for i := range rep.Results {
		if err := s.Result(&rep.Results[i]); err != nil {
			return err
		}
	}
	for i := range rep.Skipped {
		if err := s.Skipped(&rep.Skipped[i]); err != nil {
			return err
		}
	}
	return s.End(&head)
}

// spoolMemory is how much a spool holds in memory before it moves to a
// temporary file.
const spoolMemory = 1 << 20

// spool holds what a sink writes before End: in memory, then in a
// temporary file, through a buffer (a result is a few hundred bytes: a
// write(2) each cost a third of a JSON report's encoding, issue 18).
type spool struct {
	mem bytes.Buffer
	f   *os.File
	buf *bufio.Writer
}

// spoolBuffer is the size of the buffer in front of a spool's file.
const spoolBuffer = 64 << 10

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && s.mem.Len()+len(p) > spoolMemory {
		f, err := os.CreateTemp("", "csv-report-*")
		if err != nil {
			return 0, fmt.Errorf("report: spooling the results: %w", err)
		}
		s.f, s.buf = f, bufio.NewWriterSize(f, spoolBuffer)
		if _, err := s.mem.WriteTo(f); err != nil {
			return 0, fmt.Errorf("report: spooling the results: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	if s.f != nil {
		n, err := s.buf.Write(p)
		if err != nil {
			err = fmt.Errorf("report: spooling the results: %w", err)
		}
		return n, err
	}
	return s.mem.Write(p)
}

// WriteTo writes what was spooled to w.
func (s *spool) WriteTo(w io.Writer) (int64, error) {
	if s.f == nil {
		return s.mem.WriteTo(w)
	}
	if err := s.buf.Flush(); err != nil {
		return 0, fmt.Errorf("report: spooling the results: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, s.f)
}

// Close removes the temporary file, if there is one.
func (s *spool) Close() error {
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	return errors.Join(s.f.Close(), os.Remove(name))
}

// textSink writes the text report: the lines of the results and of the
// skipped files are spooled until End writes the summary line first.
type textSink struct {
	opts             Options
	w                io.Writer
	decide           bool
	manyPolicies     bool
	results, skipped spool
	failing          int
}

func (t *textSink) Begin(rep *csv.Report) error {
	t.manyPolicies = len(rep.Policies) > 1
	return nil
}

func (t *textSink) Result(res *csv.Result) error {
	if res.Fails() {
		t.failing++
	}
	if res.Decision.Allowed() && !t.opts.Verbose {
		return nil
	}
	lbl, text := label(res.Decision), decisionText(res, t.manyPolicies)
	if res.Suppressed != nil {
		lbl, text = "SUPPRESSED", text+" ["+suppressedText(res.Suppressed)+"]"
	}
	_, err := fmt.Fprintf(&t.results, "%-11s %s: %s\n", lbl, printable(res.DisplayPath()), printable(text))
	return err
}

func (t *textSink) Skipped(s *csv.SkippedFile) error {
	if !t.opts.Verbose {
		return nil
	}
	_, err := fmt.Fprintf(&t.skipped, "%-11s %s: %s\n", "SKIPPED", printable(s.DisplayPath()), printable(s.Reason))
	return err
}

func (t *textSink) End(rep *csv.Report) (err error) {
	defer func() { err = errors.Join(err, t.results.Close(), t.skipped.Close()) }()
	if _, err := fmt.Fprintln(t.w, SummaryLine(rep)); err != nil {
		return err
	}
	if _, err := t.results.WriteTo(t.w); err != nil {
		return err
	}
	if _, err := t.skipped.WriteTo(t.w); err != nil {
		return err
	}
	if err := writeSuppressionLines(t.w, rep, t.opts); err != nil {
		return err
	}
	_, err = fmt.Fprintln(t.w, verdictLine(rep, endOptions(t.opts, t.decide, rep), t.failing))
	return err
}

// jsonSink writes the JSON report: each result and skipped file is
// encoded, indented as in the document, when it comes; End encodes the
// document without them and writes the spooled arrays in their place.
type jsonSink struct {
	opts             Options
	w                io.Writer
	decide           bool
	shard            bool
	results, skipped spool
	nres, nskip      int
	failing          int
	// buf holds the element being written, facts the last facts.
	buf   []byte
	facts factsMemo
}

func (j *jsonSink) Begin(rep *csv.Report) error {
	j.shard = rep.Shard != nil
	return nil
}

// element writes v to s as the element n of an array whose elements are
// indented by indent (json.Encoder with SetIndent("", "  ") writes them
// so: "    " in a top-level array).
func element(s io.Writer, n int, v any, indent string) error {
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		// Its own encoding, which json.Marshal would only compact again
		// (a result's is made of json.Marshal's, compact and escaped):
		// a sixth of the JSON report's cost.
		b, err = m.MarshalJSON()
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if n > 0 {
		out.WriteByte(',')
	}
	out.WriteString("\n" + indent)
	if err := json.Indent(&out, b, indent, "  "); err != nil {
		return err
	}
	_, err = s.Write(textsafe.InertJSON(out.Bytes()))
	return err
}

func (j *jsonSink) Result(res *csv.Result) error {
	if res.Fails() {
		j.failing++
	}
	b, inert, err := appendResultJSON(elementStart(j.buf[:0], j.nres, "    "), res, j.shard, &j.facts)
	if err != nil {
		return err
	}
	j.buf = b
	j.nres++
	if inert {
		b = textsafe.InertJSON(b)
	}
	_, err = j.results.Write(b)
	return err
}

func (j *jsonSink) Skipped(s *csv.SkippedFile) error {
	b, inert := appendSkippedJSON(elementStart(j.buf[:0], j.nskip, "    "), s, j.shard)
	j.buf = b
	j.nskip++
	if inert {
		b = textsafe.InertJSON(b)
	}
	_, err := j.skipped.Write(b)
	return err
}

// elementStart appends what comes before the element n of an array whose
// elements are indented by indent: a comma after the one before, a new
// line, the indent.
func elementStart(dst []byte, n int, indent string) []byte {
	if n > 0 {
		dst = append(dst, ',')
	}
	dst = append(dst, '\n')
	return append(dst, indent...)
}

func (j *jsonSink) End(rep *csv.Report) (err error) {
	defer func() { err = errors.Join(err, j.results.Close(), j.skipped.Close()) }()
	head := *rep
	head.Results, head.Skipped = nil, nil
	opts := endOptions(j.opts, j.decide, rep)
	d := NewDocument(&head, opts)
	d.Passed = !Fails(rep, opts, j.failing)
	return spliceJSON(j.w, d, "\n  ", []spliced{{`"results": [`, j.nres, &j.results}, {`"skipped": [`, j.nskip, &j.skipped}})
}

// spliced is an array written empty in a document, and the spool that
// holds its n elements.
type spliced struct {
	key string
	n   int
	s   io.WriterTo
}

// spliceJSON writes to w the document d as json.Encoder with
// SetIndent("", "  ") writes it (and textsafe.InertJSON), with the arrays
// (empty in d, in this order, their keys indented by indent) holding what
// their spools hold.
func spliceJSON(w io.Writer, d any, indent string, arrays []spliced) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return err
	}
	doc := textsafe.InertJSON(b.Bytes())
	// The keys are the document's own: a string's quotes are escaped.
	for _, a := range arrays {
		at := bytes.Index(doc, []byte(indent+a.key+"]"))
		if at < 0 {
			return fmt.Errorf("report: no %s in the document", a.key)
		}
		at += len(indent + a.key)
		if _, err := w.Write(doc[:at]); err != nil {
			return err
		}
		doc = doc[at:]
		if a.n > 0 {
			if _, err := a.s.WriteTo(w); err != nil {
				return err
			}
			if _, err := io.WriteString(w, indent); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(doc)
	return err
}

// sarifSink writes the SARIF log: each result is encoded when it comes;
// End encodes the log without them and writes the spool in their place.
type sarifSink struct {
	opts    Options
	w       io.Writer
	decide  bool
	paths   sarifPaths
	results spool
	n       int
	// buf holds the result being written.
	buf []byte
}

func (s *sarifSink) Begin(*csv.Report) error { return nil }

func (s *sarifSink) Result(res *csv.Result) error {
	if res.Decision.Allowed() && !s.opts.SARIFPasses {
		return nil
	}
	b, inert, ok, err := appendSARIFResult(elementStart(s.buf[:0], s.n, "        "), res, s.opts, s.paths)
	if err != nil || !ok {
		return err
	}
	s.buf = b
	s.n++
	if inert {
		b = textsafe.InertJSON(b)
	}
	_, err = s.results.Write(b)
	return err
}

func (s *sarifSink) Skipped(*csv.SkippedFile) error { return nil }

func (s *sarifSink) End(rep *csv.Report) (err error) {
	defer func() { err = errors.Join(err, s.results.Close()) }()
	run := sarifHead(rep, endOptions(s.opts, s.decide, rep))
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	return spliceJSON(s.w, log, "\n      ", []spliced{{`"results": [`, s.n, &s.results}})
}
