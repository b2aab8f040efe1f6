package textsafe_test

import (
	"encoding/json"
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/internal/textsafe"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "bin/app.exe", "bin/app.exe"},
		{"windows path", `C:\build\app.exe`, `C:\build\app.exe`},
		{"unicode letters", "bin/résumé-日本.exe", "bin/résumé-日本.exe"},
		{"replacement character", "a\uFFFDb", "a\uFFFDb"},
		{"newline forges a line", "x\nresult: PASSED", `x\x0aresult: PASSED`},
		{"carriage return", "x\rresult: PASSED", `x\x0dresult: PASSED`},
		{"tab", "a\tb", `a\x09b`},
		{"escape sequence", "a\x1b[2Jb", `a\x1b[2Jb`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1 next line", "a\u0085b", `a\u0085b`},
		{"C1 CSI", "a\u009b31mb", `a\u009b31mb`},
		{"invalid UTF-8", "a\xff\xfeb", `a\xff\xfeb`},
		{"truncated UTF-8", "a\xe2\x80", `a\xe2\x80`},
		{"NUL", "a\x00b", `a\x00b`},
		{"right-to-left override", "invoice\u202Eexe.pdf", `invoice\u202eexe.pdf`},
		{"bidi isolates", "\u2066a\u2067b\u2068c\u2069", `\u2066a\u2067b\u2068c\u2069`},
		{"bidi embeddings", "\u202Aa\u202Bb\u202Cc\u202Dd", `\u202aa\u202bb\u202cc\u202dd`},
		{"marks", "a\u200Eb\u200Fc\u061Cd", `a\u200eb\u200fc\u061cd`},
		{"zero width", "a\u200Bb\u200Dc\uFEFFd", `a\u200bb\u200dc\ufeffd`},
		{"line separator", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"tag characters", "a\U000E0041b", `a\U000e0041b`},
		{"private use", "a\uE000b", `a\ue000b`},
		{"GitHub workflow command at start", "::error file=x::boom", `\x3a:error file=x::boom`},
		{"GitHub workflow command after spaces", "  ::add-mask::PASSED", `  \x3a:add-mask::PASSED`},
		{"GitHub workflow command after a newline", "x\n::error::boom", `x\x0a::error::boom`},
		{"colons inside are fine", "a::b", "a::b"},
		{"GitHub legacy command anywhere", "x##[error]boom", `x#\x23[error]boom`},
		{"GitHub legacy set-output", "##[set-output name=result;]PASSED", `#\x23[set-output name=result;]PASSED`},
		{"Azure logging command", "x##vso[task.setvariable variable=ok]true", `x#\x23vso[task.setvariable variable=ok]true`},
		{"Azure logging command, any case", "##VSO[task.complete result=Succeeded]", `#\x23VSO[task.complete result=Succeeded]`},
		{"three hashes", "###[x]", `##\x23[x]`},
		{"hashes alone", "C## and ##x", "C## and ##x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := textsafe.Escape(tt.in)
			if got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// The escapes are Go escapes: wrapped in quotes, the output reads
			// back as the input (backslashes aside, which stay as they are).
			if !strings.Contains(tt.in, `\`) {
				back, err := strconv.Unquote(`"` + strings.ReplaceAll(got, `"`, `\"`) + `"`)
				if err != nil || back != tt.in {
					t.Errorf("Escape(%q) = %q reads back as %q (%v)", tt.in, got, back, err)
				}
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{"x\nresult: PASSED", `"x\nresult: PASSED"`},
		{"a\u202Eb", `"a\u202eb"`},
		{"##[add-mask]FAILED", `"#\x23[add-mask]FAILED"`},
		{"##vso[task.complete]", `"#\x23vso[task.complete]"`},
		{"::error::x", `"::error::x"`}, // quoted, it no longer starts the line
	}
	for _, tt := range tests {
		got := textsafe.Quote(tt.in)
		if got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if back, err := strconv.Unquote(got); err != nil || back != tt.in {
			t.Errorf("Quote(%q) = %s reads back as %q (%v)", tt.in, got, back, err)
		}
	}
}

func TestLinef(t *testing.T) {
	var b strings.Builder
	textsafe.Linef(&b, "%s: %s", "bin/x\nresult: PASSED", "ok")
	textsafe.Linef(&b, "%s", "::error::x")
	if want := "bin/x\\x0aresult: PASSED: ok\n\\x3a:error::x\n"; b.String() != want {
		t.Errorf("Linef wrote %q, want %q", b.String(), want)
	}
}

func TestLines(t *testing.T) {
	got := textsafe.Lines("first: \x1b[31m\nsecond ##[error]x")
	want := []string{`first: \x1b[31m`, `second #\x23[error]x`}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Lines = %q, want %q", got, want)
	}
}

// checkSafe fails if out holds anything Escape promises to remove.
func checkSafe(t *testing.T, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("Escape(%q) = %q: invalid UTF-8", in, out)
	}
	for _, r := range out {
		if !unicode.IsGraphic(r) {
			t.Fatalf("Escape(%q) = %q: holds %U", in, out, r)
		}
	}
	if strings.Contains(out, "##[") || strings.Contains(strings.ToLower(out), "##vso[") {
		t.Fatalf("Escape(%q) = %q: holds a CI log command", in, out)
	}
	if strings.HasPrefix(strings.TrimLeftFunc(out, unicode.IsSpace), "::") {
		t.Fatalf("Escape(%q) = %q: starts a workflow command", in, out)
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"bin/app.exe", "x\nresult: PASSED", "\x1b]0;title\x07", "a\u202Eb", "##[error]x", "#\x00#[", " ::warning::x", "\xff##vso[", "\u2028::x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := textsafe.Escape(s)
		checkSafe(t, s, out)
		if textsafe.Escape(out) != out {
			t.Fatalf("Escape is not idempotent on %q: %q then %q", s, out, textsafe.Escape(out))
		}
		q := textsafe.Quote(s)
		if strings.Contains(q, "##[") || strings.Contains(strings.ToLower(q), "##vso[") {
			t.Fatalf("Quote(%q) = %s: holds a CI log command", s, q)
		}
		if back, err := strconv.Unquote(q); err != nil || (utf8.ValidString(s) && back != s) {
			t.Fatalf("Quote(%q) = %s reads back as %q (%v)", s, q, back, err)
		}
	})
}

// FuzzInert: a string written by the JSON, XML and YAML encoders csv uses,
// then made inert, holds no CI log command and no non-ASCII character
// that is not graphic, and reads back as what the encoder alone wrote.
func FuzzInert(f *testing.F) {
	for _, s := range []string{"bin/app.exe", "x\nresult: PASSED", "##[add-mask]FAILED", "a ##vso[task.complete]", "##VSO[x]",
		"\u202egnp.exe", "a\U000E0041b", "\u2028::error::x", "###[x", "#", "##", "CN=\\##[x", "a\xffb##[", "\x1b]0;t\x07"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inertOK := func(format string, b []byte) {
			t.Helper()
			out := string(b)
			if strings.Contains(out, "##[") || strings.Contains(strings.ToLower(out), "##vso[") {
				t.Fatalf("%s of %q: %s holds a CI log command", format, s, out)
			}
			for _, r := range out {
				if r >= utf8.RuneSelf && !unicode.IsGraphic(r) {
					t.Fatalf("%s of %q: %s holds %U", format, s, out, r)
				}
			}
		}

		j, _ := json.Marshal(map[string]string{"k": s})
		ij := textsafe.InertJSON(j)
		inertOK("JSON", ij)
		var a, b map[string]string
		if err := json.Unmarshal(ij, &b); err != nil || json.Unmarshal(j, &a) != nil || a["k"] != b["k"] {
			t.Fatalf("JSON %s reads back as %q, not %q (%v)", ij, b["k"], a["k"], err)
		}

		type doc struct {
			A string `xml:"a,attr"`
			T string `xml:",chardata"`
		}
		x, err := xml.Marshal(doc{A: s, T: s})
		if err == nil {
			ix := textsafe.InertXML(x)
			inertOK("XML", ix)
			var xa, xb doc
			if err := xml.Unmarshal(ix, &xb); err != nil || xml.Unmarshal(x, &xa) != nil || xa != xb {
				t.Fatalf("XML %s reads back as %+v, not %+v (%v)", ix, xb, xa, err)
			}
		}

		if !utf8.ValidString(s) {
			return // yaml.v3 refuses it
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
		if textsafe.YAMLQuote(s) {
			n.Style = yaml.DoubleQuotedStyle
		}
		y, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "k"}, n}})
		if err != nil {
			return
		}
		iy := textsafe.InertYAML(y)
		inertOK("YAML", iy)
		var ya, yb map[string]string
		if err := yaml.Unmarshal(iy, &yb); err != nil || yaml.Unmarshal(y, &ya) != nil || ya["k"] != yb["k"] {
			t.Fatalf("YAML %s reads back as %q, not %q (%v)", iy, yb["k"], ya["k"], err)
		}
	})
}
