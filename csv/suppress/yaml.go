package suppress

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/yamlstrict"
)

// FormatV1 is the value of the "format" field of a version 1 suppressions
// file.
const FormatV1 = "csv-suppressions/v1"

// ParseYAML reads csv's suppressions format:
//
//	format: csv-suppressions/v1
//	suppressions:
//	  - path: vendor/**/*.dll
//	    sha256: 9f86d081...
//	    rule: CodeSign.MissingSigningCert
//	    justification: the vendor signs it at install time
//	    expires: 2027-03-31
//	    owner: platform-team
//	    ticket: SEC-1234
//
// Every problem is reported, with its line, in one *LoadError.
func ParseYAML(data []byte, source string) (*File, error) {
	if len(data) > limits.MaxSuppressionFile {
		return nil, &LoadError{Source: source, Problems: []Problem{{Message: fmt.Sprintf("larger than %d bytes", limits.MaxSuppressionFile)}}}
	}
	d := &yamlstrict.Decoder{}
	root := d.Parse(data, "suppressions", limits.MaxSuppressionDepth)
	f := &File{Source: source, Format: "yaml"}
	if root != nil {
		readYAML(d, root, f)
	}
	if len(d.Problems) > 0 {
		ps := d.Sorted()
		e := &LoadError{Source: source, Problems: make([]Problem, len(ps))}
		for i, p := range ps {
			e.Problems[i] = Problem{Line: p.Line, Message: p.Message}
		}
		return nil, e
	}
	return f, nil
}

func readYAML(d *yamlstrict.Decoder, root *yaml.Node, f *File) {
	var format string
	var list *yaml.Node
	seen := d.Fields(root, "suppressions file", map[string]func(*yaml.Node){
		"format":       func(v *yaml.Node) { d.Str(v, "format", &format) },
		"suppressions": func(v *yaml.Node) { list = v },
	})
	if root.Kind != yaml.MappingNode {
		return
	}
	switch {
	case seen["format"] == nil:
		d.Errorf(root, "missing field \"format\" (want %q)", FormatV1)
	case format != FormatV1:
		d.Errorf(seen["format"], "unsupported format %q (want %q)", format, FormatV1)
	}
	if list == nil {
		d.Errorf(root, "missing field \"suppressions\" (a list; it may be empty: [])")
		return
	}
	if list.Kind != yaml.SequenceNode {
		d.Errorf(list, "suppressions must be a list")
		return
	}
	if len(list.Content) > limits.MaxSuppressions {
		d.Errorf(list, "%d suppressions: more than %d", len(list.Content), limits.MaxSuppressions)
		return
	}
	lines := map[*Entry]*yaml.Node{}
	for i, n := range list.Content {
		e := readEntry(d, n, fmt.Sprintf("suppression %d", i+1))
		if e == nil {
			continue
		}
		e.Source, e.Line = f.Source, n.Line
		lines[e] = n
		f.Entries = append(f.Entries, e)
	}
	duplicates(f.Entries, func(e *Entry, format string, args ...any) {
		d.Errorf(lines[e], "suppression: "+format, args...)
	})
}

// text reads a string field, capped.
func text(d *yamlstrict.Decoder, v *yaml.Node, what string, out *string) {
	d.Str(v, what, out)
	if len(*out) > limits.MaxSuppressionText {
		d.Errorf(v, "%s: longer than %d bytes", what, limits.MaxSuppressionText)
		*out = ""
	}
}

func readEntry(d *yamlstrict.Decoder, n *yaml.Node, what string) *Entry {
	e := &Entry{}
	var expires string
	handlers := map[string]func(*yaml.Node){
		"path":          func(v *yaml.Node) { text(d, v, what+": path", &e.Path) },
		"rule":          func(v *yaml.Node) { text(d, v, what+": rule", &e.Rule) },
		"justification": func(v *yaml.Node) { text(d, v, what+": justification", &e.Justification) },
		"expires":       func(v *yaml.Node) { text(d, v, what+": expires", &expires) },
		"owner":         func(v *yaml.Node) { text(d, v, what+": owner", &e.Owner) },
		"ticket":        func(v *yaml.Node) { text(d, v, what+": ticket", &e.Ticket) },
	}
	for _, a := range cipolicy.HashAlgorithms {
		handlers[string(a)] = func(v *yaml.Node) {
			var s string
			text(d, v, what+": "+string(a), &s)
			if s == "" {
				return
			}
			b, err := parseDigest(a, strings.ToLower(s))
			if err != nil {
				d.Errorf(v, "%s: %v", what, err)
				return
			}
			e.Digests.Set(a, b)
		}
	}
	before := len(d.Problems)
	seen := d.Fields(n, what, handlers)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	if expires != "" {
		t, err := parseDate(expires)
		if err != nil {
			d.Errorf(seen["expires"], "%s: %v", what, err)
		}
		e.Expires = t
	}
	check(e, func(format string, args ...any) {
		at := n
		switch {
		case strings.HasPrefix(format, "path") && seen["path"] != nil:
			at = seen["path"]
		case strings.HasPrefix(format, "rule") && seen["rule"] != nil:
			at = seen["rule"]
		}
		d.Errorf(at, what+": "+format, args...)
	})
	if len(d.Problems) > before {
		return nil
	}
	return e
}
