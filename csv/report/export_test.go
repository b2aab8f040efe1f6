package report

import (
	"bytes"
	"encoding/xml"

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
