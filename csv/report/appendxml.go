package report

import (
	"unicode/utf8"

	"github.com/codesignval/csv/csv"
)

// A JUnit report's test cases are written by hand, not by encoding/xml's
// reflection (8-13 µs a result, BenchmarkSinkResult; issue 18): the bytes
// are what xml.Encoder with Indent("", "  ") wrote for the test case of
// the result, kept as the reference in export_test.go
// (TestAppendJUnitCaseIsTheEncoders, FuzzAppendResult).

// appendXMLEscaped appends s as encoding/xml escapes text and attribute
// values (its EscapeString and EscapeText): the double quote, the
// apostrophe, '&', '<' and '>' as &#34; &#39; &amp; &lt; &gt;, tab,
// newline and carriage return as &#x9; &#xA; &#xD;, and each character
// outside XML's Char production (the control characters but those three,
// U+FFFE, U+FFFF, surrogates) and each byte of invalid UTF-8 as U+FFFD
// (TestAppendXMLEscapedIsEscapeTexts).
func appendXMLEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				esc = "&#34;"
			case '\'':
				esc = "&#39;"
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default:
				if c >= 0x20 {
					i++
					continue
				}
				esc = "\uFFFD"
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, esc...)
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !xmlChar(r) {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += n
			start = i
			continue
		}
		i += n
	}
	return append(dst, s[start:]...)
}

// xmlChar reports whether r, not ASCII, is in XML's Char production (as
// encoding/xml's isInCharacterRange).
func xmlChar(r rune) bool {
	return r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// appendXMLAttr appends ` name="value"`, the value escaped.
func appendXMLAttr(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	dst = appendXMLEscaped(dst, value)
	return append(dst, '"')
}

// junitOutcome is how a file fared in its test case.
type junitOutcome int

const (
	junitPassed junitOutcome = iota
	junitFailed
	junitSkipped
)

// junitResult is the test case of a judged binary: its name and class,
// how it fared, the message and type of its failure or skipped element,
// and the text of that element (the detail, in system-out when it
// passed; never empty).
type junitResult struct {
	name, classname string
	outcome         junitOutcome
	message, typ    string
	text            string
}

func junitResultOf(res *csv.Result) junitResult {
	d := &res.Decision
	reason := reasonText(res)
	detail := "policy: " + d.Policy + "\nrule: " + orNone(d.Rule) + "\nkind: " + string(d.Kind) +
		"\nid: " + RuleID(d.Kind) + "\nreason: " + reason + "\n"
	c := junitResult{name: res.DisplayPath(), classname: "csv." + string(res.Format)}
	switch {
	case d.Allowed():
		c.text = detail
	case res.Suppressed != nil:
		// Blocked, and accepted: shown, not failed.
		s := suppressedText(res.Suppressed)
		c.outcome, c.message, c.typ, c.text = junitSkipped, "suppressed: blocked: "+reason+" ["+s+"]", string(d.Kind), detail+s+"\n"
	case d.Enforced:
		c.outcome, c.message, c.typ, c.text = junitFailed, "blocked: "+reason, string(d.Kind), detail
	default:
		c.outcome, c.message, c.text = junitSkipped, "audit mode: would be blocked: "+reason, detail
	}
	return c
}

// appendJUnitCase appends the test case c as the JUnit document holds it
// (before textsafe.InertXML): on a line of its own, indented as a child of
// a testsuite (junitCaseIndent), its child on the next line.
func appendJUnitCase(dst []byte, c junitResult) []byte {
	dst = append(dst, junitCaseIndent...)
	dst = append(dst, "<testcase"...)
	dst = appendXMLAttr(dst, "name", c.name)
	dst = appendXMLAttr(dst, "classname", c.classname)
	dst = append(dst, ` time="0">`...)
	dst = append(dst, junitCaseIndent...)
	dst = append(dst, "  <"...)
	var tag string
	switch c.outcome {
	case junitPassed:
		tag = "system-out"
		dst = append(dst, tag...)
	case junitFailed:
		tag = "failure"
	case junitSkipped:
		tag = "skipped"
	}
	if c.outcome != junitPassed {
		dst = append(dst, tag...)
		dst = appendXMLAttr(dst, "message", c.message)
		if c.typ != "" {
			dst = appendXMLAttr(dst, "type", c.typ)
		}
	}
	dst = append(dst, '>')
	dst = appendXMLEscaped(dst, c.text)
	dst = append(dst, "</"...)
	dst = append(dst, tag...)
	dst = append(dst, '>')
	dst = append(dst, junitCaseIndent...)
	return append(dst, "</testcase>"...)
}

// inert reports whether the test case c may need textsafe.InertXML: one
// of its strings holds a '#' or a byte that is not ASCII (the escapes
// appendXMLEscaped writes are ASCII and hold no '#', but U+FFFD, which
// InertXML leaves).
func (c *junitResult) inert() bool {
	return mayNeedInert(c.name) || mayNeedInert(c.classname) || mayNeedInert(c.message) || mayNeedInert(c.typ) || mayNeedInert(c.text)
}
