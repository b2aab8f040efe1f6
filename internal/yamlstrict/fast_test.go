package yamlstrict

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// slowTree is yaml.v3's reading of data: its root node, or an error when
// it is not exactly one document.
func slowTree(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("a second document: %v", err)
	}
	return doc.Content[0], nil
}

// expand copies the fast path's tree, reading its lazy sequences' items.
func expand(d *Decoder, n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = nil
	if n.Kind == yaml.SequenceNode {
		for _, it := range d.Items(n) {
			c.Content = append(c.Content, expand(d, it))
		}
		return &c
	}
	for _, k := range n.Content {
		c.Content = append(c.Content, expand(d, k))
	}
	return &c
}

// normTag: the fast path tags numbers and dates !!str (see fast.go).
func normTag(t string) string {
	switch t {
	case "!!int", "!!float", "!!timestamp":
		return "!!str"
	}
	return t
}

// diffTrees says where two trees differ: kind, tag (normalized), value,
// line, column, entries.
func diffTrees(a, b *yaml.Node, at string) string {
	if a.Kind != b.Kind || normTag(a.Tag) != normTag(b.Tag) || a.Value != b.Value || a.Line != b.Line || a.Column != b.Column {
		return fmt.Sprintf("%s: fast {kind %d tag %s value %q at %d:%d}, yaml.v3 {kind %d tag %s value %q at %d:%d}",
			at, a.Kind, a.Tag, a.Value, a.Line, a.Column, b.Kind, b.Tag, b.Value, b.Line, b.Column)
	}
	if len(a.Content) != len(b.Content) {
		return fmt.Sprintf("%s: fast has %d entries, yaml.v3 %d", at, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if s := diffTrees(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", at, i)); s != "" {
			return s
		}
	}
	return ""
}

// checkFast: when the fast path reads data, yaml.v3 reads it too, and to
// the same tree. It reports whether the fast path read it.
func checkFast(t testing.TB, data []byte, lazyKey string) bool {
	t.Helper()
	d := &Decoder{}
	root, lazy, ok := fastParse(data, 64, lazyKey)
	if !ok {
		return false
	}
	d.lazy = lazy
	fast := expand(d, root)
	if d.Bailed() {
		return false
	}
	slow, err := slowTree(data)
	if err != nil {
		t.Fatalf("the fast path reads %q, yaml.v3 refuses it: %v", data, err)
	}
	if s := diffTrees(fast, slow, "root"); s != "" {
		t.Fatalf("%q: %s", data, s)
	}
	return true
}

var fastCases = []struct {
	doc  string
	fast bool
}{
	{"a: b\n", true},
	{"format: csv-policy/v1\nname: x\nrules:\n  - id: a\n    action: allow\n    sha256: 00ff\n    formats: [elf, pe]\n    description: a Hash SHA256\n", true},
	{"rules:\n- id: a\n  action: allow\n- id: b\n  x: [ ]\n", true},
	{"rules:\n  # comment\n  - id: a # trailing\n\n    action: allow\n  - {id: b}\n", false},
	{"a:\n  b:\n    c: d\n  e: [f,g ,  h]\nx: y\n", true},
	{"a: 'quoted'\n", false},
	{"a: \"quoted\"\n", false},
	{"a: b\n  c\n", false},
	{"a:\n", false},
	{"a: b\r\n", false},
	{"a:\tb\n", false},
	{"a: &x b\n", false},
	{"a: *x\n", false},
	{"a: !!str b\n", false},
	{"--- \na: b\n", false},
	{"a: b\n---\nc: d\n", false},
	{"a: |\n  x\n", false},
	{"a: true\nb: ~\nc: null\nd: 12\ne: 1.5e3\nf: 2026-12-31\ng: 0x1f\nh: yes\ni: 'no'\n", false},
	{"a: true\nb: ~\nc: null\nd: 12\ne: 1.5e3\nf: 2026-12-31\ng: 0x1f\nh: yes\ni: no\nj: on\nk: .inf\nl: .nan\n", true},
	{"a: b:c\nd: e#f\ng: h # i\n", true},
	{"a: [b, c] # d\n", true},
	{"a: [b, c]x\n", false},
	{"a: [b, [c]]\n", false},
	{"a:\n- b\n- c\nd: e\n", true},
	{"a:\n  - b\n   - c\n", false},
	{"a:\n  - b: c\n    d: e\n  - f\n", true},
	{"a:\n  -   b: c\n      d: e\n", true},
	{"a:\n  - b: c\n   d: e\n", false},
	{"- a\n", false},
	{"a: b\n c: d\n", false},
	{"a: b\nc: d\n  # comment\ne: f\n", true},
	{"a: -b\n", false},
	{"a: b\n...\n", false},
	{"1: b\n", false},
	{"a: b\na: c\n", true}, // repeated keys: Fields says so, as for yaml.v3's tree
	{"a: é\n", false},
	{"a: [b,]\n", false},
	{"a: b]\n", false},
	{"a: <<\n", false},
	{"key_2: v\n", true},
	{"a:\n  b:\n  - c\n", true},
	{"a:\n  - b:\n    - c\n", true},
	{"a:\n  - b:\n      c: d\n", true},
	{"a: b\n\n\n", true},
	{"a: b", true},
	{"# only a comment\n", false},
	{"", false},
}

func TestFastPathAgrees(t *testing.T) {
	for _, c := range fastCases {
		got := checkFast(t, []byte(c.doc), "rules")
		if got != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.doc, got, c.fast)
		}
	}
}

// TestFastPathPolicies: the example policy and every policy csv's tests
// write to testdata are read by the fast path as yaml.v3 reads them.
func TestFastPathPolicies(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	more, _ := filepath.Glob("../../examples/*/*.yaml")
	files = append(files, more...)
	fast := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if checkFast(t, b, "rules") {
			fast++
		}
	}
	if fast == 0 {
		t.Errorf("the fast path reads none of %d example policies", len(files))
	}
}

func FuzzFastPath(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c.doc))
	}
	if b, err := os.ReadFile("../../examples/policy.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFast(t, data, "rules")
	})
}
