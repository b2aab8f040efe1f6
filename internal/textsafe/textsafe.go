// Package textsafe escapes untrusted strings for csv's text outputs: the
// reports, warnings and errors that reach a terminal or a CI job's log.
//
// Every text output of every command passes each string it did not write
// itself (file paths, certificate subjects and issuers, version strings,
// policy names, ids and descriptions, rule ids, reasons that embed any of
// those, server answers) through [Escape], or through [Quote] where it
// quotes. The data formats (JSON, SARIF, JUnit, YAML policies) go through
// [InertJSON], [InertXML] and [InertYAML], which escape the same with the
// format's own escapes: their encoders escape control characters only.
//
// # Security
//
// A string is hostile when it can change what a reader sees beyond its own
// place on the line. Escape makes these visible, in Go's escape syntax:
//
//   - control characters (C0, DEL, and C1 such as U+0085, which some
//     terminals and log viewers take as a newline) and invalid UTF-8, so that
//     a name cannot end the line and forge the next one ("x\nresult:
//     PASSED"), or drive the terminal (ESC sequences that move the cursor,
//     rewrite the title or clear the screen);
//   - every other character that is not graphic: the bidirectional
//     overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the other
//     format characters (zero-width spaces and joiners, U+FEFF, tags), the
//     line and paragraph separators (U+2028, U+2029), private-use and
//     unassigned code points, which can hide text or reorder it on screen
//     ("Trojan Source");
//   - the CI log commands that runners find in a line that is otherwise
//     plain text: GitHub Actions' legacy "##[command]" and Azure Pipelines'
//     "##vso[" are recognised anywhere in a line (actions/runner
//     ActionCommand.TryParse and azure-pipelines-agent Command.TryParse
//     search with IndexOf), and GitHub's "::command::" at the start of a
//     line after white space (ActionCommand.TryParseV2). A "##[" or
//     "##vso[" becomes "#\x23[" or "#\x23vso[", and a string that begins
//     with "::" (after white space) has its first colon written "\x3a", so
//     that neither "::error::" nor "##[add-mask]" reaches the runner as a
//     command, wherever on the line the string is printed.
//
// Escapes are \xNN for bytes and ASCII characters, \uNNNN or \UNNNNNNNN
// for other code points, so an escaped string reads back as a Go string
// literal. A backslash is left as it is (Windows paths stay readable): the
// escapes are unambiguous enough for a reader, and nothing a name can hold
// reaches the terminal or the runner unescaped.
package textsafe

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Escape returns s with every character that could hide, reorder or forge
// text in a terminal or a CI log written as a visible escape (see the
// package documentation). A string that needs nothing is returned as it
// is.
func Escape(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	lead := leadingCommand(s)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			writeByte(&b, s[i])
		case i == lead:
			b.WriteString(`\x3a`)
		case r == '#' && ciPrefix(s[i:]):
			b.WriteString(`#\x23`)
			n = 2
		case !unicode.IsGraphic(r):
			writeRune(&b, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Quote returns s as a double-quoted Go string literal (strconv.Quote,
// which escapes every character that is not printable), with the CI log
// commands made inert as Escape does. Use it where a text output quotes an
// untrusted string (%q would let "##[" through).
func Quote(s string) string {
	q := strconv.Quote(s)
	if !strings.Contains(q, "##") {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '#' && ciPrefix(q[i:]) {
			b.WriteString(`#\x23`)
			i++
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Linef writes one line to w: the text format and args make, escaped as a
// whole (so that nothing an argument holds can end the line or start
// another), and a newline. format must not hold a newline of its own.
func Linef(w io.Writer, format string, args ...any) {
	io.WriteString(w, Escape(fmt.Sprintf(format, args...))+"\n")
}

// Lines splits s at "\n" and escapes each line: for text that is several
// lines by design (errors.Join), whose lines are each printed with a
// prefix. A newline that an untrusted string brought into s cannot be told
// from the others: escape or quote such strings where they enter s.
func Lines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return lines
}

// safe reports whether s needs no escape: printable ASCII (or graphic
// UTF-8) with no CI log command.
func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			return safeUnicode(s)
		}
	}
	return !strings.Contains(s, "##") && leadingCommand(s) < 0
}

func safeUnicode(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false
			}
		}
		if !unicode.IsGraphic(r) {
			return false
		}
	}
	return !strings.Contains(s, "##") && leadingCommand(s) < 0
}

// ciPrefix reports whether s starts with "##[" or "##vso[" (the latter in
// any case).
func ciPrefix(s string) bool {
	if !strings.HasPrefix(s, "##") {
		return false
	}
	rest := s[2:]
	return strings.HasPrefix(rest, "[") || (len(rest) >= 4 && strings.EqualFold(rest[:3], "vso") && rest[3] == '[')
}

// leadingCommand returns the offset of the first colon of a "::" that
// begins s after white space (as GitHub's runner trims it), or -1.
func leadingCommand(s string) int {
	t := strings.TrimLeftFunc(s, unicode.IsSpace)
	if !strings.HasPrefix(t, "::") {
		return -1
	}
	return len(s) - len(t)
}

const hexDigits = "0123456789abcdef"

func writeByte(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&0xf])
}

func writeRune(b *strings.Builder, r rune) {
	switch {
	case r < utf8.RuneSelf:
		writeByte(b, byte(r))
	case r <= 0xffff:
		b.WriteString(`\u`)
		for s := 12; s >= 0; s -= 4 {
			b.WriteByte(hexDigits[r>>uint(s)&0xf])
		}
	default:
		b.WriteString(`\U`)
		for s := 28; s >= 0; s -= 4 {
			b.WriteByte(hexDigits[r>>uint(s)&0xf])
		}
	}
}

// The data formats csv writes (JSON reports, SARIF, JUnit XML, policies in
// YAML) are text too, and often printed to standard output, where a CI
// runner reads them: their encoders escape control characters, not the
// CI log commands, nor the bidirectional and other characters that are
// not graphic. InertJSON, InertXML and InertYAML write those with escapes
// of the format, so that the document reads back the same.

// InertJSON returns the JSON text b with "##[" and "##vso[" written
// "#\u0023[" and "#\u0023vso[", and every non-ASCII character that is not
// graphic as a \u escape (a pair of them above U+FFFF). "#" and non-ASCII
// characters appear in JSON only within strings, where these escapes
// decode to what they replace; a line of JSON never starts with "::".
func InertJSON(b []byte) []byte {
	return inert(b, `\u0023`, func(out []byte, r rune) []byte {
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			return appendU(appendU(out, r1), r2)
		}
		return appendU(out, r)
	})
}

// InertXML returns the XML text b (as encoding/xml writes it: no comments,
// CDATA or processing instructions with untrusted text) with "##[" and
// "##vso[" written "#&#35;[" and "#&#35;vso[", and every non-ASCII
// character that is not graphic as a character reference; encoding/xml
// writes a newline in text as "&#xA;", so no line starts with "::".
func InertXML(b []byte) []byte {
	return inert(b, "&#35;", func(out []byte, r rune) []byte {
		return fmt.Appendf(out, "&#x%X;", r)
	})
}

// InertYAML returns the YAML text b with "##[" and "##vso[" written
// "#\x23[" and "#\x23vso[", and every non-ASCII character that is not
// graphic as a \u or \U escape. These escapes decode only in double-quoted
// scalars (in a comment they are read as they are, which a comment may
// be): the writer must double-quote every scalar for which YAMLQuote is
// true.
func InertYAML(b []byte) []byte {
	return inert(b, `\x23`, func(out []byte, r rune) []byte {
		if r > 0xffff {
			return fmt.Appendf(out, `\U%08x`, r)
		}
		return fmt.Appendf(out, `\u%04x`, r)
	})
}

// YAMLQuote reports whether InertYAML would change s: a YAML writer must
// then write s double-quoted.
func YAMLQuote(s string) bool {
	return ciCommand(s) || strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf && !unicode.IsGraphic(r) })
}

// ciCommand reports whether s holds "##[" or "##vso[".
func ciCommand(s string) bool {
	for i := strings.Index(s, "##"); i >= 0; {
		if ciPrefix(s[i:]) {
			return true
		}
		j := strings.Index(s[i+1:], "##")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// inert copies b, writing the second "#" of a CI log command as hash and
// each non-ASCII character that is not graphic with esc. Invalid UTF-8 is
// copied (the encoders write none).
func inert(b []byte, hash string, esc func([]byte, rune) []byte) []byte {
	if !needsInert(b) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	for i := 0; i < len(b); {
		c := b[i]
		if c == '#' && ciPrefix(string(b[i:min(len(b), i+6)])) {
			out = append(append(out, '#'), hash...)
			i += 2
			continue
		}
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if (r != utf8.RuneError || n > 1) && !unicode.IsGraphic(r) {
			out = esc(out, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

func needsInert(b []byte) bool {
	if bytes.Contains(b, []byte("##")) {
		return true
	}
	for i := 0; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

func appendU(out []byte, r rune) []byte {
	return fmt.Appendf(out, `\u%04x`, r)
}

// JSONWriter returns a writer that writes to w what is written to it with
// InertJSON applied. Each Write must hold whole JSON values, as
// json.Encoder's Encode writes them.
func JSONWriter(w io.Writer) io.Writer { return jsonWriter{w} }

type jsonWriter struct{ w io.Writer }

func (j jsonWriter) Write(p []byte) (int, error) {
	if _, err := j.w.Write(InertJSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Plural returns the count and the noun that goes with it: "1 file", "0
// files", "2 files". Every count csv prints goes through it.
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
