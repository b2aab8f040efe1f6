package cipolicy

// The fast path for SiPolicy XML. encoding/xml's Decoder.Token reads a
// byte at a time through a bufio.Reader, resolves namespaces and copies
// every name and value: on a 100,000-rule policy (90,000 hash rules and
// 10,000 signers, 21.5 MB) the tokenizer alone took 0.51 s, 105 MB and 2.6
// million allocations, and Decoder.RawToken, which skips the namespace
// work, 0.42 s, 84 MB and 2.2 million; fastTree builds the whole tree in
// 0.15 s with 41,000 allocations (BenchmarkSiPolicyTokens, one run), well
// within the half second a whole load may take.
//
// fastTree reads the subset of XML that WDAC's tools write and people
// edit: elements and attributes with ASCII names and no prefix, one
// default namespace declared on the root (SiPolicy's), quoted attribute
// values, text, the five predefined entities, comments, and an XML
// declaration for UTF-8 (or for UTF-16 when the file was UTF-16). It
// builds the tree parseTree builds with encoding/xml (names, namespaces,
// attributes, lines, and text after entity and line-end normalisation as
// its readers see it, trimmed), and takes names and values as substrings
// of one copy of the document instead of a string each. Anything outside
// the subset (a prefixed name, a numeric character reference, CDATA, a
// DOCTYPE, any other processing instruction, a non-ASCII name, a namespace
// declared below the root) and anything encoding/xml would reject (bad
// nesting, an unknown entity, an illegal character, a second root, the
// caps of internal/limits) makes the whole document go to xmlTree, so its
// errors and its reading stay the only ones: FuzzFastXML checks that for
// every input the fast path accepts it builds the same tree as xmlTree, and
// that it accepts nothing xmlTree rejects.

import (
	"bytes"
	"encoding/xml"
	"strings"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/panicerr"
)

// fastScanner reads one document. src and str hold the same bytes; names
// and values that need no decoding are substrings of str.
type fastScanner struct {
	src   []byte
	str   string
	pos   int
	line  int
	utf16 bool
	nodes []xnode    // slab the nodes are carved from
	attrs []xml.Attr // slab the attribute lists are carved from
}

// fastTree is parseTree for the subset; ok is false when data is outside
// it (the caller then uses parseTree).
func fastTree(data []byte, utf16 bool) (root *xnode, ok bool) {
	root, ok, _ = fastTreePanic(data, utf16)
	return root, ok
}

// fastTreePanic is fastTree that also returns the panic it recovered
// from (a bug), which the fuzz target fails on: a bug here must not take
// the load down (parseTree reads the document instead), but must not go
// unseen either.
func fastTreePanic(data []byte, utf16 bool) (root *xnode, ok bool, p *panicerr.Error) {
	defer func() {
		if r := recover(); r != nil {
			root, ok, p = nil, false, panicerr.New(r)
		}
	}()
	s := &fastScanner{src: data, str: string(data), line: 1, utf16: utf16}
	root, ok = s.document()
	return root, ok, nil
}

func (s *fastScanner) newNode(name string, line int) *xnode {
	if len(s.nodes) == 0 {
		s.nodes = make([]xnode, 256)
	}
	n := &s.nodes[0]
	s.nodes = s.nodes[1:]
	n.name, n.line = name, line
	return n
}

// attrList returns room for attributes, carved from a slab with its
// capacity cut so that an append never writes into the next list.
func (s *fastScanner) attrList(n int) []xml.Attr {
	if cap(s.attrs)-len(s.attrs) < n {
		s.attrs = make([]xml.Attr, 0, max(1024, n))
	}
	l := len(s.attrs)
	s.attrs = s.attrs[:l+n]
	return s.attrs[l : l+n : l+n]
}

func (s *fastScanner) document() (*xnode, bool) {
	var root *xnode
	var stack []*xnode
	elements := 0
	src := s.src
	for s.pos < len(src) {
		if src[s.pos] != '<' {
			start := s.pos
			end := bytes.IndexByte(src[start:], '<')
			if end < 0 {
				end = len(src)
			} else {
				end += start
			}
			text, ok := s.text(start, end)
			if !ok {
				return nil, false
			}
			if len(stack) == 0 {
				// parseTree: only white space (after a byte order
				// mark) outside the root element.
				t := bytes.TrimPrefix(text, []byte("\ufeff"))
				for _, c := range t {
					if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
						return nil, false
					}
				}
			} else {
				top := stack[len(stack)-1]
				switch {
				case top.text == nil && blank(text):
					// White space before any other text: every reader
					// of a node's text trims it (xnode.text), and
					// keeping it would copy a list's indentation,
					// between each of its 100,000 elements, for nothing.
				case top.text == nil:
					top.text = text[:len(text):len(text)]
				default:
					top.text = append(top.text, text...)
				}
			}
			s.pos = end
			continue
		}
		line := s.line
		if s.pos+1 >= len(src) {
			return nil, false
		}
		switch src[s.pos+1] {
		case '/':
			s.pos += 2
			name, ok := s.name()
			if !ok || len(stack) == 0 || stack[len(stack)-1].name != name {
				return nil, false
			}
			s.space()
			if s.pos >= len(src) || src[s.pos] != '>' {
				return nil, false
			}
			s.pos++
			stack = stack[:len(stack)-1]
		case '?':
			if !s.procInst() {
				return nil, false
			}
		case '!':
			if !bytes.HasPrefix(src[s.pos:], []byte("<!--")) {
				return nil, false // CDATA, DOCTYPE, ...
			}
			body := s.pos + 4
			i := bytes.Index(src[body:], []byte("--"))
			if i < 0 || body+i+2 >= len(src) || src[body+i+2] != '>' {
				return nil, false
			}
			end := body + i + 3
			s.line += bytes.Count(src[s.pos:end], []byte("\n"))
			s.pos = end
		default:
			if len(stack) == 0 && root != nil {
				return nil, false // a second root
			}
			if len(stack) >= limits.MaxPolicyDepth {
				return nil, false
			}
			elements++
			if elements > limits.MaxPolicyRules {
				return nil, false
			}
			s.pos++
			name, ok := s.name()
			if !ok {
				return nil, false
			}
			n := s.newNode(name, line)
			empty, ok := s.attributes(n, len(stack) == 0)
			if !ok {
				return nil, false
			}
			if len(stack) == 0 {
				if name != "SiPolicy" {
					return nil, false
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			if !empty {
				stack = append(stack, n)
			}
		}
	}
	if root == nil || len(stack) > 0 {
		return nil, false
	}
	return root, true
}

// blank reports whether b is only XML white space (ASCII).
func blank(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

// isSpace is encoding/xml's white space.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *fastScanner) space() {
	for s.pos < len(s.src) && isSpace(s.src[s.pos]) {
		if s.src[s.pos] == '\n' {
			s.line++
		}
		s.pos++
	}
}

// name reads an unprefixed ASCII name: a letter or _, then letters,
// digits, _, . and -. A colon or a non-ASCII byte ends the fast path.
func (s *fastScanner) name() (string, bool) {
	start := s.pos
	src := s.src
	for s.pos < len(src) {
		c := src[s.pos]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9', c == '.', c == '-':
			if s.pos == start {
				return "", false
			}
		case c == ':', c >= utf8.RuneSelf:
			return "", false
		default:
			if s.pos == start {
				return "", false
			}
			return s.str[start:s.pos], true
		}
		s.pos++
	}
	return "", false // end of input inside a tag
}

// attributes reads a start tag's attributes and its end (> or />), as
// encoding/xml does: white space between attributes may be absent. Only
// the root may declare the default namespace, and only as SiPolicy's.
func (s *fastScanner) attributes(n *xnode, isRoot bool) (empty, ok bool) {
	src := s.src
	type span struct {
		name  string
		value string
	}
	var buf [16]span
	list := buf[:0]
	ns := ""
	for {
		s.space()
		if s.pos >= len(src) {
			return false, false
		}
		switch src[s.pos] {
		case '/':
			if s.pos+1 >= len(src) || src[s.pos+1] != '>' {
				return false, false
			}
			s.pos += 2
			empty = true
		case '>':
			s.pos++
		default:
			name, ok := s.name()
			if !ok {
				return false, false
			}
			s.space()
			if s.pos >= len(src) || src[s.pos] != '=' {
				return false, false
			}
			s.pos++
			s.space()
			if s.pos >= len(src) || (src[s.pos] != '"' && src[s.pos] != '\'') {
				return false, false
			}
			q := src[s.pos]
			s.pos++
			end := bytes.IndexByte(src[s.pos:], q)
			if end < 0 {
				return false, false
			}
			end += s.pos
			if bytes.IndexByte(src[s.pos:end], '<') >= 0 {
				return false, false
			}
			v, ok := s.value(s.pos, end)
			if !ok {
				return false, false
			}
			s.pos = end + 1
			if name == "xmlns" {
				if !isRoot {
					return false, false
				}
				ns = v
			}
			list = append(list, span{name, v})
			continue
		}
		break
	}
	if isRoot && ns != siPolicyNS {
		return false, false
	}
	n.attrs = s.attrList(len(list))
	for i, a := range list {
		n.attrs[i] = xml.Attr{Name: xml.Name{Local: a.name}, Value: a.value}
	}
	return empty, true
}

// value decodes an attribute value src[start:end] (the quotes excluded).
func (s *fastScanner) value(start, end int) (string, bool) {
	raw := s.src[start:end]
	s.line += bytes.Count(raw, []byte("\n"))
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		if !validChars(raw) {
			return "", false
		}
		return s.str[start:end], true
	}
	b, ok := decodeChars(raw)
	if !ok {
		return "", false
	}
	return string(b), true
}

// text decodes character data src[start:end] (up to a '<' or the end).
func (s *fastScanner) text(start, end int) ([]byte, bool) {
	raw := s.src[start:end]
	s.line += bytes.Count(raw, []byte("\n"))
	if bytes.Contains(raw, []byte("]]>")) {
		return nil, false
	}
	if bytes.IndexByte(raw, '&') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		if !validChars(raw) {
			return nil, false
		}
		return raw, true
	}
	return decodeChars(raw)
}

// decodeChars replaces the predefined entities and turns \r\n and a lone
// \r into \n, as encoding/xml does; any other reference ends the fast
// path.
func decodeChars(raw []byte) ([]byte, bool) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '&':
			semi := bytes.IndexByte(raw[i:], ';')
			if semi < 0 {
				return nil, false
			}
			switch string(raw[i+1 : i+semi]) {
			case "lt":
				out = append(out, '<')
			case "gt":
				out = append(out, '>')
			case "amp":
				out = append(out, '&')
			case "apos":
				out = append(out, '\'')
			case "quot":
				out = append(out, '"')
			default:
				return nil, false
			}
			i += semi
		case '\r':
			out = append(out, '\n')
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
		default:
			out = append(out, c)
		}
	}
	if !validChars(out) {
		return nil, false
	}
	return out, true
}

// validChars reports whether b is UTF-8 of characters XML allows (the
// Char production, as encoding/xml checks it).
func validChars(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if !(r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return false
		}
		i += size
	}
	return true
}

// procInst reads an XML declaration of version 1.0 for UTF-8 (or, in a
// file that was UTF-16, for UTF-16): name="value" pairs of version,
// encoding and standalone with plain values, which encoding/xml's
// declaration reader reads the same. Any other processing instruction
// ends the fast path.
func (s *fastScanner) procInst() bool {
	s.pos += 2
	target, ok := s.name()
	if !ok || target != "xml" {
		return false
	}
	s.space()
	end := bytes.Index(s.src[s.pos:], []byte("?>"))
	if end < 0 {
		return false
	}
	body := s.str[s.pos : s.pos+end]
	s.line += strings.Count(body, "\n")
	s.pos += end + 2
	seen := map[string]string{}
	for f := range strings.FieldsFuncSeq(body, func(r rune) bool { return r < utf8.RuneSelf && isSpace(byte(r)) }) {
		k, v, found := strings.Cut(f, "=")
		if !found || len(v) < 2 || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
			return false
		}
		v = v[1 : len(v)-1]
		if _, dup := seen[k]; dup || (k != "version" && k != "encoding" && k != "standalone") {
			return false
		}
		for _, c := range []byte(v) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		seen[k] = v
	}
	if v := seen["version"]; v != "" && v != "1.0" {
		return false
	}
	switch enc := strings.ToLower(seen["encoding"]); {
	case enc == "" || enc == "utf-8":
	case s.utf16 && (enc == "utf-16" || enc == "utf-16le" || enc == "utf-16be" || enc == "unicode"):
	default:
		return false
	}
	return true
}
