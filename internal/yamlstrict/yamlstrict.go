// Package yamlstrict decodes untrusted YAML documents strictly, for the
// policy loaders: exactly one document, no aliases (they are how YAML bombs
// are built, and a policy has no use for them), bounded nesting, and every
// problem recorded with its line instead of stopping at the first, so that a
// user fixes a file in one pass. Mappings are walked key by key: unknown and
// repeated keys are problems.
package yamlstrict

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a document, at a line (0: none).
type Problem struct {
	Line    int
	Message string
}

// Decoder collects problems while a loader walks a document.
type Decoder struct {
	Problems []Problem
	// lazy: sequences ParseLazy read lazily (see Items); bailed: an item
	// of one is not in the fast path's subset.
	lazy   map[*yaml.Node]*lazySeq
	bailed bool
}

// Errorf records a problem at n's line.
func (d *Decoder) Errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.Problems = append(d.Problems, Problem{Line: line, Message: fmt.Sprintf(format, args...)})
}

// Sorted returns the problems by line (stable).
func (d *Decoder) Sorted() []Problem {
	slices.SortStableFunc(d.Problems, func(a, b Problem) int { return a.Line - b.Line })
	return d.Problems
}

var lineNumber = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads data, which must hold exactly one YAML document, checks that
// it has no aliases and nests at most maxDepth levels, and returns its root
// node. noun names the document in messages ("policy"). On any problem it
// returns nil, with the problems recorded.
func (d *Decoder) Parse(data []byte, noun string, maxDepth int) *yaml.Node {
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.Problems = append(d.Problems, Problem{Message: "empty " + noun})
		} else {
			d.Problems = append(d.Problems, syntaxProblem(err))
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			line = syntaxProblem(err).Line
		}
		d.Problems = append(d.Problems, Problem{Line: line, Message: fmt.Sprintf("a %s file holds one YAML document; found another", noun)})
		return nil
	}
	before := len(d.Problems)
	d.checkTree(&doc, 0, noun, maxDepth)
	if len(d.Problems) > before {
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root
}

// ParseLazy is Parse, with the fast path for block-style documents (see
// fast.go): the items of the top-level sequence under lazyKey are then
// read one by one as Items yields them. The loader must read the tags of
// scalars only as !!bool and !!null (the fast path tags a number or a
// date !!str), sequences through Items and Len, and, when Bailed says so
// once it is done, throw its reading away and read the document again
// with Parse, in a new Decoder.
func (d *Decoder) ParseLazy(data []byte, noun string, maxDepth int, lazyKey string) *yaml.Node {
	if root, lazy, ok := fastParse(data, maxDepth, lazyKey); ok {
		d.lazy = lazy
		return root
	}
	return d.Parse(data, noun, maxDepth)
}

func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := lineNumber.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Message: "YAML syntax: " + m[2]}
	}
	return Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (d *Decoder) checkTree(n *yaml.Node, depth int, noun string, maxDepth int) {
	if depth > maxDepth {
		d.Errorf(n, "nested deeper than %d levels", maxDepth)
		return
	}
	if n.Kind == yaml.AliasNode {
		d.Errorf(n, "YAML aliases are not allowed in a %s", noun)
		return
	}
	for _, c := range n.Content {
		d.checkTree(c, depth+1, noun, maxDepth)
		if len(d.Problems) > 20 {
			return
		}
	}
}

// Fields walks a mapping node, calling the handler registered for each key,
// and records unknown and repeated keys. It returns the key nodes seen.
func (d *Decoder) Fields(n *yaml.Node, what string, handlers map[string]func(*yaml.Node)) map[string]*yaml.Node {
	return d.FieldsInto(n, what, handlers, map[string]*yaml.Node{})
}

// FieldsInto is Fields, recording the keys seen in seen (cleared first):
// a loader reading many mappings alike (a policy's rules) reuses one map.
func (d *Decoder) FieldsInto(n *yaml.Node, what string, handlers map[string]func(*yaml.Node), seen map[string]*yaml.Node) map[string]*yaml.Node {
	clear(seen)
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, "%s must be a mapping", what)
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.Errorf(k, "%s: keys must be strings", what)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.Errorf(k, "%s: field %q repeated (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		h, ok := handlers[k.Value]
		if !ok {
			known := make([]string, 0, len(handlers))
			for name := range handlers {
				known = append(known, name)
			}
			slices.Sort(known)
			d.Errorf(k, "unknown field %q in %s (known fields: %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		h(v)
	}
	return seen
}

// Str reads a scalar as a string.
func (d *Decoder) Str(n *yaml.Node, what string, out *string) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.Errorf(n, "%s must be a string", what)
		return
	}
	*out = n.Value
}

// StrList reads a string or a list of strings.
func (d *Decoder) StrList(n *yaml.Node, what string) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			d.Errorf(n, "%s must be a string or a list of strings", what)
			return nil
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				d.Errorf(c, "%s: each entry must be a string", what)
				continue
			}
			out = append(out, c.Value)
		}
		return out
	}
	d.Errorf(n, "%s must be a string or a list of strings", what)
	return nil
}

// Enum reads a string that must be one of values.
func (d *Decoder) Enum(n *yaml.Node, what string, out *string, values ...string) {
	var s string
	d.Str(n, what, &s)
	if s == "" {
		return
	}
	if !slices.Contains(values, s) {
		d.Errorf(n, "%s: unknown value %q (want %s)", what, s, strings.Join(values, ", "))
		return
	}
	*out = s
}
