package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
	"github.com/codesignval/csv/internal/textsafe"
)

// JUnitInOnePiece decodes the JUnit document doc and encodes it again in
// one piece, as xml.Encoder with Indent("", "  ") writes it (and
// textsafe.InertXML): what the streaming sink must write, byte for byte; and the names of its test cases, in order.
func JUnitInOnePiece(doc []byte) ([]byte, []string, error) {
	var d junitSuites
	if err := xml.Unmarshal(doc, &d); err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, nil, err
	}
	b.WriteByte('\n')
	var names []string
	for _, s := range d.Suites {
		for _, c := range s.Cases {
			names = append(names, c.Name)
		}
	}
	return textsafe.InertXML(b.Bytes()), names, nil
}

// The encoders of a result, and the encodings they replaced (through
// encoding/json and encoding/xml, as the sinks wrote them before issue
// 18): the reference the new ones must match byte for byte.

// ResultJSON is what the JSON sink writes of the result res, the second
// of its array.
func ResultJSON(res *csv.Result, shard bool) ([]byte, error) {
	return resultJSON(res, shard, nil)
}

// ResultsJSON is what the JSON sink writes of the results, each as the
// second of its array, and the facts of one kept for the next.
func ResultsJSON(res []csv.Result, shard bool) ([][]byte, error) {
	var memo factsMemo
	var out [][]byte
	for i := range res {
		b, err := resultJSON(&res[i], shard, &memo)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func resultJSON(res *csv.Result, shard bool, memo *factsMemo) ([]byte, error) {
	b, inert, err := appendResultJSON(elementStart(nil, 1, "    "), res, shard, memo)
	if err != nil {
		return nil, err
	}
	if !inert && !bytes.Equal(textsafe.InertJSON(b), b) {
		return nil, fmt.Errorf("the result needs InertJSON, and appendResultJSON says not:\n%s", b)
	}
	return textsafe.InertJSON(b), nil
}

// ResultJSONReference is what ResultJSON wrote before: NewResultDoc,
// encoded by ResultDoc.MarshalJSON and json.Indent.
func ResultJSONReference(res *csv.Result, shard bool) ([]byte, error) {
	d := NewResultDoc(res)
	d.Walk = walkDoc(res.Walk, shard)
	var b bytes.Buffer
	err := element(&b, 1, d, "    ")
	return b.Bytes(), err
}

// SkippedJSON is what the JSON sink writes of the skipped file s, the
// second of its array.
func SkippedJSON(s *csv.SkippedFile, shard bool) []byte {
	b, inert := appendSkippedJSON(elementStart(nil, 1, "    "), s, shard)
	if !inert && !bytes.Equal(textsafe.InertJSON(b), b) {
		panic(fmt.Sprintf("the skipped file needs InertJSON, and appendSkippedJSON says not:\n%s", b))
	}
	return textsafe.InertJSON(b)
}

// SkippedJSONReference is what SkippedJSON wrote before.
func SkippedJSONReference(s *csv.SkippedFile, shard bool) ([]byte, error) {
	var b bytes.Buffer
	err := element(&b, 1, NewSkippedDoc(s, shard), "    ")
	return b.Bytes(), err
}

// JUnitCase is what the JUnit sink writes of the result res, and whether
// it counts it a failure or skipped.
func JUnitCase(res *csv.Result) (doc []byte, failed, skipped bool) {
	c := junitResultOf(res)
	b := appendJUnitCase(nil, c)
	if !c.inert() && !bytes.Equal(textsafe.InertXML(b), b) {
		panic(fmt.Sprintf("the test case needs InertXML, and inert says not:\n%s", b))
	}
	return textsafe.InertXML(b), c.outcome == junitFailed, c.outcome == junitSkipped
}

// JUnitCaseReference is what JUnitCase wrote before: a junitCase encoded
// by xml.Encoder.
func JUnitCaseReference(res *csv.Result) (doc []byte, failed, skipped bool, err error) {
	d := res.Decision
	c := junitCase{Name: res.DisplayPath(), Classname: "csv." + string(res.Format), Time: "0"}
	detail := fmt.Sprintf("policy: %s\nrule: %s\nkind: %s\nid: %s\nreason: %s\n", d.Policy, orNone(d.Rule), d.Kind, RuleID(d.Kind), reasonText(res))
	switch {
	case d.Allowed():
		c.SystemOut = detail
	case res.Suppressed != nil:
		c.Skipped = &junitMessage{Message: "suppressed: blocked: " + reasonText(res) + " [" + suppressedText(res.Suppressed) + "]",
			Type: string(d.Kind), Text: detail + suppressedText(res.Suppressed) + "\n"}
		skipped = true
	case d.Enforced:
		c.Failure = &junitMessage{Message: "blocked: " + reasonText(res), Type: string(d.Kind), Text: detail}
		failed = true
	default:
		c.Skipped = &junitMessage{Message: "audit mode: would be blocked: " + reasonText(res), Text: detail}
		skipped = true
	}
	var b bytes.Buffer
	b.WriteByte('\n')
	enc := xml.NewEncoder(&b)
	enc.Indent(junitCaseIndent[1:], "  ")
	if err := enc.EncodeElement(c, xml.StartElement{Name: xml.Name{Local: "testcase"}}); err != nil {
		return nil, false, false, err
	}
	return textsafe.InertXML(b.Bytes()), failed, skipped, nil
}

// SARIFResult is what the SARIF sink writes of the result res, the second
// of its array, and whether it writes it.
func SARIFResult(res *csv.Result, opts Options) ([]byte, bool, error) {
	b, inert, ok, err := appendSARIFResult(elementStart(nil, 1, "        "), res, opts, newSARIFPaths(opts))
	if err != nil || !ok {
		return nil, ok, err
	}
	if !inert && !bytes.Equal(textsafe.InertJSON(b), b) {
		return nil, false, fmt.Errorf("the result needs InertJSON, and appendSARIFResult says not:\n%s", b)
	}
	return textsafe.InertJSON(b), true, nil
}

// SARIFResultReference is what SARIFResult wrote before: the sarifResult
// of sarifResultOf, encoded by encoding/json and json.Indent.
func SARIFResultReference(res *csv.Result, opts Options) ([]byte, bool, error) {
	out, ok := sarifResultOf(res, opts, newSARIFPaths(opts))
	if !ok {
		return nil, false, nil
	}
	var b bytes.Buffer
	err := element(&b, 1, out, "        ")
	return b.Bytes(), true, err
}

// sarifResultOf is the SARIF result of a judged binary (false for an
// allowed one, unless opts.SARIFPasses).
func sarifResultOf(res *csv.Result, opts Options, paths sarifPaths) (sarifResult, bool) {
	d := res.Decision
	if d.Allowed() && !opts.SARIFPasses {
		return sarifResult{}, false
	}
	id := RuleID(d.Kind)
	out := sarifResult{RuleID: id, RuleIndex: sarifRuleIndex[id], Kind: "fail", Level: "error"}
	msg := res.DisplayPath() + ": " + reasonText(res)
	switch {
	case d.Allowed():
		out.Kind, out.Level = "pass", "none"
	case !d.Enforced:
		out.Level = "warning"
		msg += " (audit mode: would be blocked under enforcement)"
	}
	out.Message = sarifText{msg}
	// A member's location is the file on disk that holds it (code
	// scanning shows files of the repository); the message names the member.
	// Facts judged without the files (csv validate --facts) locate the
	// file at its path, their origin a property (the message says both).
	file, member, _ := strings.Cut(strings.TrimPrefix(res.DisplayPath(), originPrefix(res.Origin)), container.Separator)
	loc, stable := paths.locate(file)
	out.Locations = []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: loc}}}
	out.PartialFingerprints = map[string]string{FingerprintKey: fingerprint(id, stable, member)}
	props := map[string]any{"verdict": d.Verdict, "enforced": d.Enforced, "policy": d.Policy, "format": res.Format}
	if d.Rule != "" {
		props["policyRule"] = d.Rule
	}
	if res.Origin != "" {
		props["origin"] = res.Origin
	}
	res.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) { props[string(a)] = hexOrEmpty(v) })
	out.Properties = props
	out.Suppressions = sarifSuppressionsOf(res)
	return out, true
}
