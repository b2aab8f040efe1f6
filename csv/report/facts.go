package report

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv"
)

// A file's digests and its format's facts are not fields of their own in
// the documents' types: a new digest (a row of cipolicy's table) or a new
// format (a handler) needs no change here. The JSON still has a field per
// digest, named as cipolicy names the algorithm ("sha256",
// "authenticode_sha256", in cipolicy.HashAlgorithms' order), and the
// format's facts under the format's name ("pe", "elf"), where the
// documents always had them.

// DigestDocs is a file's digests, hex, keyed by algorithm: one JSON field
// per digest.
type DigestDocs map[cipolicy.HashAlgorithm]string

// Each calls f with every digest, in cipolicy.HashAlgorithms' order.
func (d DigestDocs) Each(f func(cipolicy.HashAlgorithm, string)) {
	for _, a := range sortedAlgorithms(d) {
		if v := d[a]; v != "" {
			f(a, v)
		}
	}
}

// DigestDocsOf returns the digests' hex.
func DigestDocsOf(d cipolicy.Digests) DigestDocs {
	out := DigestDocs{}
	d.Each(func(a cipolicy.HashAlgorithm, v []byte) { out[a] = hex.EncodeToString(v) })
	return out
}

// Facts is a format's facts in a document, written under the format's
// name: a format.Info (from a run), or the JSON read back from a report.
type Facts struct {
	Format cipolicy.Format
	Value  any
}

// ObjectWithFacts returns one JSON object: head's fields, the digests (in
// cipolicy.HashAlgorithms' order), mid's fields, the facts under their
// format's name, then tail's fields. head, mid and tail are structs that
// encoding/json writes as objects. csv inspect's documents use it too.
func ObjectWithFacts(head any, digests DigestDocs, mid any, facts *Facts, tail any) ([]byte, error) {
	parts := make([][]byte, 0, 4+len(digests))
	add := func(v any) error {
		b, err := json.Marshal(v)
		if err == nil {
			parts = append(parts, b)
		}
		return err
	}
	field := func(key string, v any) error {
		k, err := json.Marshal(key)
		if err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err == nil {
			parts = append(parts, slices.Concat([]byte("{"), k, []byte(":"), b, []byte("}")))
		}
		return err
	}
	if err := add(head); err != nil {
		return nil, err
	}
	for _, a := range sortedAlgorithms(digests) {
		if v := digests[a]; v != "" {
			if err := field(string(a), v); err != nil {
				return nil, err
			}
		}
	}
	if err := add(mid); err != nil {
		return nil, err
	}
	if facts != nil && facts.Value != nil {
		if err := field(string(facts.Format), facts.Value); err != nil {
			return nil, err
		}
	}
	if err := add(tail); err != nil {
		return nil, err
	}
	return joinObjects(parts), nil
}

// joinObjects returns the object of every member of the JSON objects
// given, in order.
func joinObjects(objs [][]byte) []byte {
	b := []byte{'{'}
	for _, o := range objs {
		inner := bytes.TrimSpace(o)
		inner = bytes.TrimSpace(inner[1 : len(inner)-1])
		if len(inner) == 0 {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, inner...)
	}
	return append(b, '}')
}

// sortedAlgorithms lists the digests' algorithms in cipolicy's order.
func sortedAlgorithms(d DigestDocs) []cipolicy.HashAlgorithm {
	var algs []cipolicy.HashAlgorithm
	for a := range d {
		algs = append(algs, a)
	}
	set := cipolicy.NewDigestSet(algs...)
	return set.Algorithms()
}

// splitFacts reads the JSON object data: it takes out the digests (the
// fields cipolicy names) and a format's facts (the field named as a format
// csv judges), and decodes the rest into rest, refusing fields it does not
// know: a report csv did not write is not read.
func splitFacts(data []byte, digests *DigestDocs, facts **Facts, rest any) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return err
	}
	if fields == nil {
		return fmt.Errorf("report: want an object, not %s", bytes.TrimSpace(data))
	}
	for _, a := range cipolicy.HashAlgorithms {
		raw, ok := fields[string(a)]
		if !ok {
			continue
		}
		delete(fields, string(a))
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("report: digest %s: %w", a, err)
		}
		if v == "" {
			continue
		}
		if *digests == nil {
			*digests = DigestDocs{}
		}
		(*digests)[a] = v
	}
	for _, f := range csv.Formats() {
		raw, ok := fields[string(f)]
		if !ok {
			continue
		}
		delete(fields, string(f))
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		if *facts != nil {
			return fmt.Errorf("report: facts of two formats, %s and %s", (*facts).Format, f)
		}
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) || !json.Valid(raw) {
			return fmt.Errorf("report: the %s facts are not an object", f)
		}
		*facts = &Facts{Format: f, Value: json.RawMessage(slices.Clone(raw))}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(rest)
}
