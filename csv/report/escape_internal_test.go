package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"testing"
	"unicode/utf8"
)

// escapeCases are every byte alone and after a letter, every code point
// up to U+3000 and around the surrogates, U+FFFE/F and the planes' ends,
// each alone and between letters.
func escapeCases() []string {
	var out []string
	for b := range 256 {
		out = append(out, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	add := func(lo, hi rune) {
		for r := lo; r <= hi; r++ {
			out = append(out, string(r), "a"+string(r)+"z")
		}
	}
	add(0, 0x3000)
	add(0xD7F0, 0xE010)
	add(0xFFF0, 0x10010)
	add(0x10FFF0, utf8.MaxRune)
	return append(out, "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\xe2\x80", "\xe2\x80\xa8\xe2")
}

// TestAppendJSONStringIsMarshals: appendJSONString writes every string
// as json.Marshal does.
func TestAppendJSONStringIsMarshals(t *testing.T) {
	for _, s := range escapeCases() {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

// TestAppendXMLEscapedIsEscapeTexts: appendXMLEscaped escapes every string
// as xml.EscapeText does (which the encoder uses for character data, and
// its EscapeString, for attribute values, alike).
func TestAppendXMLEscapedIsEscapeTexts(t *testing.T) {
	for _, s := range escapeCases() {
		var want bytes.Buffer
		if err := xml.EscapeText(&want, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got := appendXMLEscaped(nil, s); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%q: %q, want %q", s, got, want.Bytes())
		}
	}
}
