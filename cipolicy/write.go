package cipolicy

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MarshalYAML writes p in the project's YAML format. Rule comments are
// written as YAML comments above each rule. Parse reads the output back into
// an equal policy (except for comments).
func MarshalYAML(p *Policy) ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	add := func(m *yaml.Node, k string, v *yaml.Node) {
		m.Content = append(m.Content, str(k), v)
	}
	add(root, "format", str(FormatV1))
	if p.ID != "" && p.ID != p.Name {
		add(root, "id", str(p.ID))
	}
	add(root, "name", str(p.Name))
	if p.Version != "" {
		add(root, "version", str(p.Version))
	}
	if p.Description != "" {
		add(root, "description", str(p.Description))
	}
	if p.Type == Supplemental {
		add(root, "type", str(string(Supplemental)))
		add(root, "base", str(p.BaseID))
	}
	mode := p.Mode
	if mode == "" {
		mode = Enforce
	}
	add(root, "mode", str(string(mode)))
	rules := &yaml.Node{Kind: yaml.SequenceNode}
	for i := range p.Rules {
		r := &p.Rules[i]
		m := &yaml.Node{Kind: yaml.MappingNode, HeadComment: comment(r.Comment)}
		add(m, "id", str(r.ID))
		add(m, "action", str(string(r.Action)))
		switch {
		case r.Hash != nil:
			add(m, string(r.Hash.Algorithm), str(hex.EncodeToString(r.Hash.Value)))
		default:
			return nil, fmt.Errorf("cipolicy: rule %q has no matcher the YAML format can write", r.ID)
		}
		if len(r.Paths) > 0 {
			add(m, "paths", strs(r.Paths))
		}
		if len(r.Scenarios) > 0 {
			sc := make([]string, len(r.Scenarios))
			for i, s := range r.Scenarios {
				sc[i] = string(s)
			}
			add(m, "scenarios", strs(sc))
		}
		if len(r.Formats) > 0 {
			fs := make([]string, len(r.Formats))
			for i, f := range r.Formats {
				fs[i] = string(f)
			}
			add(m, "formats", strs(fs))
		}
		if r.Description != "" {
			add(m, "description", str(r.Description))
		}
		rules.Content = append(rules.Content, m)
	}
	if len(rules.Content) == 0 {
		rules.Style = yaml.FlowStyle
	}
	add(root, "rules", rules)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("cipolicy: writing YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("cipolicy: writing YAML: %w", err)
	}
	return b.Bytes(), nil
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func strs(ss []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range ss {
		n.Content = append(n.Content, str(s))
	}
	return n
}

// comment makes text safe as a YAML comment: one "# " per line, control
// characters (a file name may hold anything) escaped.
func comment(text string) string {
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		var b strings.Builder
		for _, c := range l {
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, "\\x%02x", c)
			} else {
				b.WriteRune(c)
			}
		}
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}
