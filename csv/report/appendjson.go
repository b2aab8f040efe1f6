package report

import (
	"bytes"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/container"
	"github.com/codesignval/csv/csv"
)

// The JSON report's results and skipped files, and the SARIF log's
// results, are written by hand, not by encoding/json's reflection: over
// 100,000 small files, encoding each result with json.Marshal, json.Indent
// and the documents' types (9-13 µs a result, BenchmarkSinkResult) on the
// one goroutine that passes results on in order held the JSON report at
// 69% of the reference's throughput (issue 18). The bytes are what the
// documents' types encode to, as json.Encoder with SetIndent("", "  ")
// writes them inside the report (TestAppendResultJSONIsTheEncoders,
// TestAppendSARIFResultIsTheEncoders, FuzzAppendResult): the fixed fields
// are appended here, and the values of open shape (signatures, a format's
// facts, a suppression) are encoded by encoding/json and indented in
// place, as before.

// jsonHex is encoding/json's hex digits (lower case).
const jsonHex = "0123456789abcdef"

// appendJSONString appends s as encoding/json's Marshal writes a string
// (HTML-safe, as json.Marshal and json.Encoder write by default): '"' and
// '\\' escaped with a backslash; \b, \f, \n, \r and \t in short form;
// the other control bytes, '<', '>' and '&' as \u00XX; each byte of
// invalid UTF-8 as \ufffd; U+2028 and U+2029 as \u2028 and \u2029; the
// rest as it is (encoding/json's appendString, Go 1.22 on;
// TestAppendJSONStringIsMarshals).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHex[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonObject appends an object's members as json.Indent writes them with
// the indent "  ": each on a line of its own, indented by in (the
// object's own indent and one more step), "key": value.
type jsonObject struct {
	b  []byte
	in string
	n  int
	// inert is set when what was written may need textsafe.InertJSON:
	// a string, or a value encoding/json wrote, holds a '#' or a byte
	// that is not ASCII (mayNeedInert).
	inert bool
}

// key starts the member k.
func (o *jsonObject) key(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(o.b, '\n')
	o.b = append(o.b, o.in...)
	o.string(k)
	o.b = append(o.b, ':', ' ')
}

// string appends the string s.
func (o *jsonObject) string(s string) {
	o.b = appendJSONString(o.b, s)
	if !o.inert {
		o.inert = mayNeedInert(s)
	}
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.string(v)
}

func (o *jsonObject) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) bool(k string, v bool) {
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

// hex writes v, hex, as DigestDocsOf does.
func (o *jsonObject) hex(k string, v []byte) {
	o.key(k)
	o.b = append(o.b, '"')
	o.b = hex.AppendEncode(o.b, v)
	o.b = append(o.b, '"')
}

// value writes v as json.Marshal encodes it, indented in place.
func (o *jsonObject) value(k string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o.key(k)
	return o.indented(raw)
}

// indented appends the JSON value raw (compact), indented in place.
func (o *jsonObject) indented(raw []byte) error {
	at := len(o.b)
	buf := bytes.NewBuffer(o.b)
	err := json.Indent(buf, raw, o.in, "  ")
	o.b = buf.Bytes()
	if !o.inert {
		o.inert = mayNeedInert(o.b[at:])
	}
	return err
}

// mayNeedInert reports whether s holds a '#' or a byte that is not
// ASCII: what textsafe.InertJSON may change (CI log commands, characters
// that are not graphic). JSON written of strings without them needs no
// pass of InertJSON.
func mayNeedInert[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '#' || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// ints writes v as json.Indent writes an array of numbers.
func (o *jsonObject) ints(k string, v []int) {
	o.key(k)
	if len(v) == 0 {
		o.b = append(o.b, '[', ']')
		return
	}
	o.b = append(o.b, '[')
	for i, x := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = append(o.b, '\n')
		o.b = append(o.b, o.in...)
		o.b = append(o.b, ' ', ' ')
		o.b = strconv.AppendInt(o.b, int64(x), 10)
	}
	o.b = append(o.b, '\n')
	o.b = append(o.b, o.in...)
	o.b = append(o.b, ']')
}

// end closes the object, whose own indent is in[:len(in)-2].
func (o *jsonObject) end() []byte {
	if o.n == 0 {
		return append(o.b, '}')
	}
	o.b = append(o.b, '\n')
	o.b = append(o.b, o.in[:len(o.in)-2]...)
	return append(o.b, '}')
}

// resultIndent is the indent of a result's members in the JSON report:
// "results" is a member of the document, each result an element of it.
const resultIndent = "      "

// appendResultJSON appends the result res as the JSON report holds it
// (NewResultDoc, with its place in the walk if shard, encoded by
// ResultDoc.MarshalJSON and indented as an element of "results"), from
// its opening brace to its closing one, before textsafe.InertJSON, which
// it needs only if inert. memo, if not nil, keeps the last facts written.
func appendResultJSON(dst []byte, res *csv.Result, shard bool, memo *factsMemo) (b []byte, inert bool, err error) {
	o := jsonObject{b: append(dst, '{'), in: resultIndent}
	if res.Origin != "" {
		o.str("origin", res.Origin)
	}
	o.str("root", res.Root)
	o.str("path", res.Path)
	o.str("format", string(res.Format))
	o.int("size", res.Size)
	res.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) {
		if len(v) > 0 {
			o.hex(string(a), v)
		}
	})
	o.bool("signed", res.Signed)
	if len(res.Signatures) > 0 {
		if err = o.value("signatures", SignatureDocs(res.Signatures)); err != nil {
			return nil, false, err
		}
	}
	if res.Info != nil {
		if err = o.facts(string(res.Format), res.Info, memo); err != nil {
			return nil, false, err
		}
	}
	d := &res.Decision
	o.str("verdict", string(d.Verdict))
	o.bool("enforced", d.Enforced)
	o.str("kind", string(d.Kind))
	o.str("policy", d.Policy)
	o.str("rule", d.Rule)
	o.int("signature", int64(d.Signature))
	o.str("reason", reasonText(res))
	if s := suppressedDoc(res.Suppressed); s != nil {
		if err = o.value("suppressed", s); err != nil {
			return nil, false, err
		}
	}
	if shard {
		o.ints("walk", walkDoc(res.Walk, shard))
	}
	return o.end(), o.inert, nil
}

// appendSkippedJSON appends the skipped file s as the JSON report holds
// it (NewSkippedDoc, indented as an element of "skipped"), before
// textsafe.InertJSON, which it needs only if inert.
func appendSkippedJSON(dst []byte, s *csv.SkippedFile, shard bool) (b []byte, inert bool) {
	o := jsonObject{b: append(dst, '{'), in: resultIndent}
	if s.Origin != "" {
		o.str("origin", s.Origin)
	}
	o.str("root", s.Root)
	o.str("path", s.Path)
	o.str("reason", s.Reason)
	if shard {
		o.ints("walk", walkDoc(s.Walk, shard))
	}
	return o.end(), o.inert
}

// facts writes a format's facts (a format.Info) under k, as value does.
// With memo, facts equal to the last ones written are written as they
// were, without encoding/json: the files of a build mostly have equal
// facts (an ELF file's class, machine and type), and encoding them was
// a third of a result's cost.
func (o *jsonObject) facts(k string, info any, memo *factsMemo) error {
	key, ok := memo.key(info)
	if ok && memo.enc != nil && key == memo.val {
		o.key(k)
		o.b = append(o.b, memo.enc...)
		o.inert = o.inert || memo.inert
		return nil
	}
	raw, err := json.Marshal(info)
	if err != nil {
		return err
	}
	o.key(k)
	at := len(o.b)
	if err := o.indented(raw); err != nil {
		return err
	}
	if ok {
		memo.val, memo.enc = key, append(memo.enc[:0], o.b[at:]...)
		memo.inert = mayNeedInert(memo.enc)
	}
	return nil
}

// factsMemo holds the last facts a sink wrote, for jsonObject.facts: the
// value they point to, of a plain type (plainType), and its encoding.
type factsMemo struct {
	val   any
	enc   []byte
	inert bool
	plain map[reflect.Type]bool
}

// key returns the value info points to, if it is of a plain type: two
// such values that are == encode alike.
func (m *factsMemo) key(info any) (any, bool) {
	if m == nil {
		return nil, false
	}
	v := reflect.ValueOf(info)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, false
	}
	t := v.Type().Elem()
	p, ok := m.plain[t]
	if !ok {
		if m.plain == nil {
			m.plain = map[reflect.Type]bool{}
		}
		p = plainType(t, 0)
		m.plain[t] = p
	}
	if !p {
		return nil, false
	}
	return v.Elem().Interface(), true
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// plainType reports whether t is made of booleans, numbers, strings and
// arrays and structs of them alone, with no method that encodes it:
// values of t that are == are encoded alike by encoding/json (nothing
// they point to can change, no code of theirs runs).
func plainType(t reflect.Type, depth int) bool {
	if depth > 8 || t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	case reflect.Array:
		return plainType(t.Elem(), depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			if !plainType(t.Field(i).Type, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// spaces indents nested JSON values.
const spaces = "                                "

// open starts the object member k, its members indented one more step.
func (o *jsonObject) open(k string) jsonObject {
	o.key(k)
	return jsonObject{b: append(o.b, '{'), in: spaces[:len(o.in)+2]}
}

// close ends the member c that open started.
func (o *jsonObject) close(c *jsonObject) {
	o.b = c.end()
	o.inert = o.inert || c.inert
}

// sarifResultIndent is the indent of a SARIF result's members: runs[0]
// results[i] in the log.
const sarifResultIndent = "          "

// appendSARIFResult appends the SARIF result of a judged binary as the log
// holds it (an element of a run's "results", as json.Encoder with
// SetIndent("", "  ") writes sarifResult), before textsafe.InertJSON,
// which it needs only if inert; ok is false, and nothing appended, for an
// allowed file unless opts.SARIFPasses.
func appendSARIFResult(dst []byte, res *csv.Result, opts Options, paths sarifPaths) (b []byte, inert, ok bool, err error) {
	d := &res.Decision
	if d.Allowed() && !opts.SARIFPasses {
		return dst, false, false, nil
	}
	id := RuleID(d.Kind)
	kind, level := "fail", "error"
	display := res.DisplayPath()
	msg := display + ": " + reasonText(res)
	switch {
	case d.Allowed():
		kind, level = "pass", "none"
	case !d.Enforced:
		level = "warning"
		msg += " (audit mode: would be blocked under enforcement)"
	}
	o := jsonObject{b: append(dst, '{'), in: sarifResultIndent}
	o.str("ruleId", id)
	o.int("ruleIndex", int64(sarifRuleIndex[id]))
	o.str("kind", kind)
	o.str("level", level)
	m := o.open("message")
	m.str("text", msg)
	o.close(&m)
	// A member's location is the file on disk that holds it (code
	// scanning shows files of the repository); the message names the
	// member. Facts judged without the files (csv validate --facts)
	// locate the file at its path, their origin a property (the message
	// says both).
	file, member, _ := strings.Cut(strings.TrimPrefix(display, originPrefix(res.Origin)), container.Separator)
	loc, stable := paths.locate(file)
	o.key("locations")
	in := o.in
	o.b = append(o.b, '[', '\n')
	o.b = append(o.b, spaces[:len(in)+2]...)
	l := jsonObject{b: append(o.b, '{'), in: spaces[:len(in)+4]}
	p := l.open("physicalLocation")
	a := p.open("artifactLocation")
	a.str("uri", loc.URI)
	if loc.URIBaseID != "" {
		a.str("uriBaseId", loc.URIBaseID)
	}
	p.close(&a)
	l.close(&p)
	o.b = l.end()
	o.inert = o.inert || l.inert
	o.b = append(o.b, '\n')
	o.b = append(o.b, in...)
	o.b = append(o.b, ']')
	f := o.open("partialFingerprints")
	f.str(FingerprintKey, fingerprint(id, stable, member))
	o.close(&f)
	// The properties, in the order of their keys, as encoding/json writes
	// a map; a digest named as another property would replace it.
	props := make([]sarifProperty, 0, 8)
	props = setProperty(props, sarifProperty{key: "verdict", str: string(d.Verdict)})
	props = setProperty(props, sarifProperty{key: "enforced", isBool: true, bool: d.Enforced})
	props = setProperty(props, sarifProperty{key: "policy", str: d.Policy})
	props = setProperty(props, sarifProperty{key: "format", str: string(res.Format)})
	if d.Rule != "" {
		props = setProperty(props, sarifProperty{key: "policyRule", str: d.Rule})
	}
	if res.Origin != "" {
		props = setProperty(props, sarifProperty{key: "origin", str: res.Origin})
	}
	res.Digests.Each(func(a cipolicy.HashAlgorithm, v []byte) {
		props = setProperty(props, sarifProperty{key: string(a), str: hexOrEmpty(v)})
	})
	slices.SortFunc(props, func(a, b sarifProperty) int { return strings.Compare(a.key, b.key) })
	pr := o.open("properties")
	for _, p := range props {
		if p.isBool {
			pr.bool(p.key, p.bool)
		} else {
			pr.str(p.key, p.str)
		}
	}
	o.close(&pr)
	if s := sarifSuppressionsOf(res); len(s) > 0 {
		if err := o.value("suppressions", s); err != nil {
			return nil, false, false, err
		}
	}
	return o.end(), o.inert, true, nil
}

// sarifProperty is a member of a SARIF result's properties: a string, or
// a boolean.
type sarifProperty struct {
	key    string
	str    string
	isBool bool
	bool   bool
}

// setProperty sets p in props, replacing the property of its key.
func setProperty(props []sarifProperty, p sarifProperty) []sarifProperty {
	for i := range props {
		if props[i].key == p.key {
			props[i] = p
			return props
		}
	}
	return append(props, p)
}
