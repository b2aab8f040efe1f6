package yamlstrict

import (
	"iter"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The fast path. yaml.v3 builds every node of a document, about 3 KB of
// nodes and 20 µs of parsing per rule of a hash policy (a 100,000-rule
// policy, 21 MB, took 3.6 s of CPU and 650 MB): policies generated from a
// whole OS or a large build are that big. Parse first tries a reader of
// the block-style subset csv policy new (and people) write: block mappings
// and sequences by indentation, plain scalars of a conservative character
// set, flow sequences of such scalars, comment lines. Anything else (a
// quoted or multi-line scalar, an anchor, a tag, a tab, a non-ASCII byte,
// a flow mapping, a document marker, ...) makes the whole document go to
// yaml.v3, so the subset's reading is never the only one: for every
// document the fast path accepts it builds the tree yaml.v3 builds (kinds,
// values, lines, columns; FuzzFastPath checks it against yaml.v3), with one
// difference: a plain scalar that yaml.v3 resolves as an integer or a float
// is tagged !!str (the loaders read no number, and Str, StrList and Enum
// read the text either way).
//
// The items of one top-level sequence (a policy's rules) are not kept as a
// tree: they are checked once as the document is read, then each is read
// again into a small reused arena as Items yields it, so that the memory a
// policy's rules take is the rules' own, not their nodes'.

// fastParser reads the subset. It works line by line: cur is the current
// line's content (indentation and trailing spaces removed), ind its
// indentation, line its number; pos is the offset of the next line.
type fastParser struct {
	src      string
	pos      int
	line     int
	cur      string
	ind      int
	col      int // column of cur's first byte (1-based), = ind+1 but for an inline item
	eof      bool
	maxDepth int
	// lazy: the sequences read lazily (see Items).
	// arena: nodes of the item being read (see Items), reused.
	arena []yaml.Node
	ptrs  []*yaml.Node
	build bool // build nodes (false: only check an item's syntax)
}

// bail ends the fast path: the document is read by yaml.v3.
type bail struct{}

// lazySeq is a top-level sequence whose items are read as Items yields
// them: the offsets and first lines of its items' text.
type lazySeq struct {
	src      string
	ind      int
	items    []span
	depth    int
	maxDepth int
}

type span struct {
	start int // offset of the item's "-" line
	line  int // its number
}

// fastParse reads data with the subset. lazyKey names the top-level key
// whose block sequence is read lazily ("" none). It returns the root node
// and the lazy sequences, or ok false when the document is not in the
// subset.
func fastParse(data []byte, maxDepth int, lazyKey string) (root *yaml.Node, lazy map[*yaml.Node]*lazySeq, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(bail); !isBail {
				panic(r)
			}
			root, lazy, ok = nil, nil, false
		}
	}()
	src := string(data)
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c >= 0x80 || c == '\t' || c == '\r' || (c < 0x20 && c != '\n') || c == 0x7f {
			return nil, nil, false
		}
	}
	p := &fastParser{src: src, maxDepth: maxDepth, build: true}
	p.advance()
	if p.eof || p.ind != 0 || strings.HasPrefix(p.cur, "-") {
		return nil, nil, false // empty, or not a mapping at the top
	}
	lazy = map[*yaml.Node]*lazySeq{}
	root = p.mapping(0, 1, lazyKey, lazy)
	if !p.eof {
		return nil, nil, false
	}
	return root, lazy, true
}

// advance moves to the next line that is neither blank nor a comment.
func (p *fastParser) advance() {
	for {
		if p.pos >= len(p.src) {
			p.eof, p.cur = true, ""
			return
		}
		end := strings.IndexByte(p.src[p.pos:], '\n')
		var l string
		if end < 0 {
			l, p.pos = p.src[p.pos:], len(p.src)
		} else {
			l, p.pos = p.src[p.pos:p.pos+end], p.pos+end+1
		}
		p.line++
		t := strings.TrimLeft(l, " ")
		t = strings.TrimRight(t, " ")
		if t == "" || t[0] == '#' {
			continue
		}
		if strings.HasPrefix(l, "---") || strings.HasPrefix(l, "...") || t[0] == '%' {
			panic(bail{})
		}
		p.ind = len(l) - len(strings.TrimLeft(l, " "))
		p.cur, p.col = t, p.ind+1
		return
	}
}

func (p *fastParser) node(n yaml.Node) *yaml.Node {
	if !p.build {
		return nil
	}
	if p.arena != nil {
		if len(p.arena) == cap(p.arena) {
			// A new block: nodes already handed out keep pointing at
			// the old one.
			p.arena = make([]yaml.Node, 0, 2*cap(p.arena))
		}
		if n.Kind != yaml.ScalarNode {
			// Room for a few entries in the slab: no allocation per
			// mapping (more entries than that append as usual).
			if len(p.ptrs)+16 > cap(p.ptrs) {
				p.ptrs = make([]*yaml.Node, 0, max(1024, 2*cap(p.ptrs)))
			}
			n.Content = p.ptrs[len(p.ptrs) : len(p.ptrs) : len(p.ptrs)+16]
			p.ptrs = p.ptrs[:len(p.ptrs)+16]
		}
		p.arena = append(p.arena, n)
		return &p.arena[len(p.arena)-1]
	}
	nn := new(yaml.Node)
	*nn = n
	return nn
}

func (p *fastParser) scalar(v string, line, col int) *yaml.Node {
	if !p.build {
		return nil
	}
	return p.node(yaml.Node{Kind: yaml.ScalarNode, Tag: tagOf(v), Value: v, Line: line, Column: col})
}

// tagOf is the tag yaml.v3 gives a plain scalar, but !!str for numbers.
func tagOf(v string) string {
	switch v {
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	case "null", "Null", "NULL", "~":
		return "!!null"
	}
	return "!!str"
}

func (p *fastParser) appendContent(n *yaml.Node, c ...*yaml.Node) {
	if p.build {
		n.Content = append(n.Content, c...)
	}
}

// mapping reads a block mapping whose keys are at indentation ind (the
// current line is its first entry).
func (p *fastParser) mapping(ind, depth int, lazyKey string, lazy map[*yaml.Node]*lazySeq) *yaml.Node {
	if depth >= p.maxDepth {
		panic(bail{}) // yaml.v3's reading says how deep is too deep
	}
	m := p.node(yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.line, Column: p.col})
	for !p.eof && p.ind == ind {
		if strings.HasPrefix(p.cur, "-") {
			panic(bail{}) // a sequence entry where a key belongs
		}
		key, rest, ok := splitKey(p.cur)
		if !ok {
			panic(bail{})
		}
		k := p.scalar(key, p.line, p.col)
		line, col := p.line, p.col+len(key)+1
		if rest != "" {
			v := p.inline(rest, line, col+countSpaces(p.cur[len(key)+1:]), depth+1)
			p.appendContent(m, k, v)
			p.advance()
			if !p.eof && p.ind > ind {
				panic(bail{}) // a multi-line scalar, or a block after a value
			}
			continue
		}
		// The value is the block on the next lines: more indented, or a
		// sequence at the key's own indentation.
		p.advance()
		var v *yaml.Node
		switch {
		case p.eof || p.ind < ind || p.ind == ind && !isSeqEntry(p.cur):
			panic(bail{}) // an empty value (null): rare, left to yaml.v3
		case isSeqEntry(p.cur):
			if depth == 1 && key == lazyKey && lazy != nil {
				v = p.lazySequence(p.ind, depth+1, lazy)
			} else {
				v = p.sequence(p.ind, depth+1)
			}
		default:
			v = p.mapping(p.ind, depth+1, "", nil)
		}
		p.appendContent(m, k, v)
	}
	if !p.eof && p.ind > ind {
		panic(bail{})
	}
	return m
}

func isSeqEntry(s string) bool { return s == "-" || strings.HasPrefix(s, "- ") }

func countSpaces(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// splitKey splits "key: rest" or "key:" (rest "", or only a comment).
func splitKey(s string) (key, rest string, ok bool) {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] == '_' || i > 0 && s[i] >= '0' && s[i] <= '9') {
		i++
	}
	// (yaml.v3 refuses implicit keys over 1,024 characters.)
	if i == 0 || i > 128 || i >= len(s) || s[i] != ':' {
		return "", "", false
	}
	key = s[:i]
	if tagOf(key) != "!!str" || isNumberLike(key) {
		return "", "", false
	}
	rest = s[i+1:]
	if rest == "" {
		return key, "", true
	}
	if rest[0] != ' ' {
		return "", "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, "#") {
		rest = ""
	}
	return key, rest, true
}

// sequence reads a block sequence whose "-" are at indentation ind.
func (p *fastParser) sequence(ind, depth int) *yaml.Node {
	if depth >= p.maxDepth {
		panic(bail{}) // yaml.v3's reading says how deep is too deep
	}
	s := p.node(yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: p.line, Column: p.col})
	for !p.eof && p.ind == ind && isSeqEntry(p.cur) {
		p.appendContent(s, p.item(ind, depth))
	}
	if !p.eof && p.ind > ind {
		panic(bail{})
	}
	return s
}

// item reads one entry of a block sequence at indentation ind: a scalar,
// a flow sequence, or a mapping whose first key is on the "-" line.
func (p *fastParser) item(ind, depth int) *yaml.Node {
	if p.cur == "-" {
		panic(bail{}) // the entry on the next lines, or empty
	}
	rest := p.cur[2:]
	sp := countSpaces(rest)
	rest = rest[sp:]
	col := p.col + 2 + sp
	if strings.HasPrefix(rest, "#") || strings.HasPrefix(rest, "-") {
		panic(bail{})
	}
	if _, _, isMap := splitKey(rest); isMap {
		// "- key: value": a mapping at the key's column.
		p.cur, p.ind, p.col = rest, col-1, col
		return p.mapping(col-1, depth+1, "", nil)
	}
	v := p.inline(rest, p.line, col, depth+1)
	p.advance()
	if !p.eof && p.ind > ind {
		panic(bail{})
	}
	return v
}

// lazySequence records where each item of a top-level block sequence
// is (a line at indentation ind that begins with "-"), reading no item:
// Items reads each, and says if one is not in the subset (Bailed).
func (p *fastParser) lazySequence(ind, depth int, lazy map[*yaml.Node]*lazySeq) *yaml.Node {
	s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: p.line, Column: p.col}
	ls := &lazySeq{src: p.src, ind: ind, depth: depth, maxDepth: p.maxDepth}
	for !p.eof && p.ind >= ind {
		if p.ind == ind {
			if !isSeqEntry(p.cur) {
				break // the mapping's next key
			}
			ls.items = append(ls.items, span{start: p.lineStart(), line: p.line})
		}
		p.advance()
	}
	lazy[s] = ls
	return s
}

// lineStart is the offset of the current line's start.
func (p *fastParser) lineStart() int {
	i := p.pos
	if i > 0 && p.src[i-1] == '\n' {
		i--
	}
	for i > 0 && p.src[i-1] != '\n' {
		i--
	}
	return i
}

// inline reads a value written on its key's (or "-") line: a flow
// sequence of plain scalars, or a plain scalar.
func (p *fastParser) inline(s string, line, col, depth int) *yaml.Node {
	if depth >= p.maxDepth {
		panic(bail{}) // yaml.v3's reading says how deep is too deep
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			panic(bail{}) // a flow sequence over several lines
		}
		if tail := strings.TrimLeft(s[end+1:], " "); tail != "" && (tail[0] != '#' || end+1 == len(s) || s[end+1] != ' ') {
			panic(bail{})
		}
		seq := p.node(yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle, Line: line, Column: col})
		body := s[1:end]
		if strings.TrimLeft(body, " ") == "" {
			return seq
		}
		off := 1
		for rest := body; ; {
			e, after, more := strings.Cut(rest, ",")
			lead := countSpaces(e)
			v := strings.TrimRight(e[lead:], " ")
			if !plainOK(v, true) {
				panic(bail{})
			}
			p.appendContent(seq, p.scalar(v, line, col+off+lead))
			off += len(e) + 1
			if !more {
				break
			}
			rest = after
		}
		return seq
	}
	// A comment ends the value: " #".
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimRight(s[:i], " ")
	}
	if !plainOK(s, false) {
		panic(bail{})
	}
	return p.scalar(s, line, col)
}

// plainOK reports whether s is a plain scalar of the subset: printable
// ASCII, no indicator first, no ": " or " #" inside, no flow indicators
// (in flow context they would end it; in block context they are allowed,
// but kept out so that one reading serves both), not ending in ':'.
func plainOK(s string, flow bool) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ', '<', '=':
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ',', '[', ']', '{', '}', '"', '\'', '`', '\\':
			return false
		case ':':
			if i+1 == len(s) || s[i+1] == ' ' {
				return false
			}
		case '#':
			if s[i-1] == ' ' {
				return false
			}
		}
	}
	_ = flow
	return s[len(s)-1] != ' '
}

// isNumberLike: a key yaml.v3 would read as a number (tagged !!int or
// !!float, which Fields refuses as a key): left to yaml.v3.
func isNumberLike(s string) bool {
	return s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == '.' || s[0] == '+' || s[0] == '-')
}

// Items yields the entries of the sequence node n: its Content, or, for
// a sequence ParseLazy read lazily, each item read into a reused arena
// (valid until the next is yielded: keep no node). An item the fast path
// cannot read ends the items, and Bailed then says so: the document must
// be read again with Parse.
func (d *Decoder) Items(n *yaml.Node) iter.Seq2[int, *yaml.Node] {
	return func(yield func(int, *yaml.Node) bool) {
		ls := d.lazy[n]
		if ls == nil {
			for i, c := range n.Content {
				if !yield(i, c) {
					return
				}
			}
			return
		}
		p := &fastParser{src: ls.src, maxDepth: ls.maxDepth, build: true, arena: make([]yaml.Node, 0, 64)}
		for i, sp := range ls.items {
			p.arena, p.ptrs = p.arena[:0], p.ptrs[:0]
			p.pos, p.line, p.eof = sp.start, sp.line-1, false
			it, ok := p.readItem(ls.ind, ls.depth)
			if !ok {
				d.bailed = true
				return
			}
			if !yield(i, it) {
				return
			}
		}
	}
}

// readItem reads the item at p.pos: ok false if it is not in the subset,
// or if it does not end where the next item (or the sequence) begins.
func (p *fastParser) readItem(ind, depth int) (it *yaml.Node, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(bail); !isBail {
				panic(r)
			}
			it, ok = nil, false
		}
	}()
	p.advance()
	it = p.item(ind, depth)
	return it, p.eof || p.ind <= ind
}

// Bailed reports whether Items met an item the fast path cannot read:
// what was read of the document must be thrown away, and the document
// read with Parse.
func (d *Decoder) Bailed() bool { return d.bailed }

// Len is the number of entries of the sequence node n.
func (d *Decoder) Len(n *yaml.Node) int {
	if ls := d.lazy[n]; ls != nil {
		return len(ls.items)
	}
	return len(n.Content)
}
