package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/textsafe"
)

// JUnit is a JUnit XML report, as Jenkins and GitLab read it: one test case
// per judged file, a failure for each blocked one. In audit mode a file that
// would be blocked is a skipped test case whose message says so, which CI
// UIs show without failing the build.
type JUnit struct{ opts Options }

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// Render implements Renderer.
func (j *JUnit) Render(w io.Writer, r *csv.Report) error {
	return render(&junitSink{opts: j.opts, w: w}, r)
}

// junitSink writes the JUnit document. Its counts are attributes of the
// elements that enclose the test cases, so each result's test case is
// encoded when it comes, indented as in the document, into a spool
// (memory up to spoolMemory, then a temporary file, removed at End); End
// encodes the document without them and writes the spool in their place.
type junitSink struct {
	opts     Options
	w        io.Writer
	decide   bool
	cases    spool
	n        int
	failures int
	skipped  int
	// buf holds the test case being written.
	buf []byte
}

func (j *junitSink) Begin(*csv.Report) error { return nil }

func (j *junitSink) Result(res *csv.Result) error {
	c := junitResultOf(res)
	switch c.outcome {
	case junitFailed:
		j.failures++
	case junitSkipped:
		j.skipped++
	}
	j.n++
	j.buf = appendJUnitCase(j.buf[:0], c)
	b := j.buf
	if c.inert() {
		b = textsafe.InertXML(b)
	}
	_, err := j.cases.Write(b)
	return err
}

// junitCaseIndent is how xml.Encoder with Indent("", "  ") indents a test
// case: testsuites > testsuite > testcase.
const junitCaseIndent = "\n    "

func (j *junitSink) Skipped(*csv.SkippedFile) error { return nil }

func (j *junitSink) End(r *csv.Report) (err error) {
	defer func() { err = errors.Join(err, j.cases.Close()) }()
	opts := endOptions(j.opts, j.decide, r)
	secs := fmt.Sprintf("%.3f", r.Duration.Seconds())
	suite := junitSuite{Name: "csv validate", Time: secs, Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"),
		Failures: j.failures, Skipped: j.skipped}
	for _, p := range r.Policies {
		suite.Properties = append(suite.Properties,
			junitProperty{"policy", p.Ref()}, junitProperty{"policy.version", p.Version},
			junitProperty{"policy.sha256", p.SHA256Hex()}, junitProperty{"policy.mode", string(p.Mode)})
	}
	suite.Properties = append(suite.Properties, junitProperty{"mode", string(r.Mode)}, junitProperty{"scenario", string(r.Scenario)})
	// The run's own test cases follow the files'.
	if opts.FailedNoTargets {
		suite.Cases = append(suite.Cases, junitCase{Name: "binaries found", Classname: "csv.run", Time: "0",
			Failure: &junitMessage{Message: "no PE or ELF binaries found (--fail-if-no-targets)", Type: "no-targets"}})
		suite.Failures++
	}
	junitSuppressionCases(&suite, r, opts)
	suite.Tests = j.n + len(suite.Cases)
	doc := junitSuites{Name: "csv", Tests: suite.Tests, Failures: suite.Failures, Skipped: suite.Skipped, Time: secs, Suites: []junitSuite{suite}}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	b.WriteByte('\n')
	out := textsafe.InertXML(b.Bytes())
	// The files' test cases go before the run's, or, if it has none, at
	// the end of the suite (which always has children: its properties).
	at := bytes.Index(out, []byte(junitCaseIndent+"<testcase"))
	if at < 0 {
		at = bytes.Index(out, []byte("\n  </testsuite>"))
	}
	if at < 0 {
		return errors.New("report: no testsuite in the JUnit document")
	}
	if _, err := j.w.Write(out[:at]); err != nil {
		return err
	}
	if _, err := j.cases.WriteTo(j.w); err != nil {
		return err
	}
	_, err = j.w.Write(out[at:])
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
