package cipolicy

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/internal/textsafe"
)

// MarshalYAML writes p in the project's YAML format. Rule comments are
// written as YAML comments above each rule. Parse reads the output back into
// an equal policy (except for comments).
func MarshalYAML(p *Policy) ([]byte, error) {
	var b bytes.Buffer
	if err := WriteYAML(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteYAML writes p to w as MarshalYAML does, a rule at a time: the
// memory it takes does not grow with the number of rules (a policy
// generated from a million files). A rule the format cannot write is an
// error before anything is written.
func WriteYAML(w io.Writer, p *Policy) error {
	root, err := headNode(p)
	if err != nil {
		return err
	}
	// A rule the format cannot write fails the policy before a byte is
	// written (w may be standard output).
	for i := range p.Rules {
		if _, err := ruleNode(&p.Rules[i]); err != nil {
			return err
		}
	}
	if len(p.Rules) == 0 {
		root.Content = append(root.Content, str("rules"), &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle})
		return encodeInert(w, root)
	}
	// The fields before the rules, then "rules:" and each rule as the
	// encoder writes an entry of a block sequence at indentation 2: its
	// head comment's lines at 2, its first line after "  - ", the others
	// at 4 (the encoder indents what a mapping holds by 2 from there).
	if err := encodeInert(w, root); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "rules:\n"); err != nil {
		return err
	}
	var doc, out bytes.Buffer
	for i := range p.Rules {
		m, err := ruleNode(&p.Rules[i])
		if err != nil {
			return err
		}
		doc.Reset()
		if err := encodeTo(&doc, m); err != nil {
			return err
		}
		out.Reset()
		first := true
		for line := range bytes.Lines(doc.Bytes()) {
			switch {
			case first && bytes.HasPrefix(line, []byte("#")):
				out.WriteString("  ")
			case first:
				out.WriteString("  - ")
				first = false
			case len(line) == 1 && line[0] == '\n':
			default:
				out.WriteString("    ")
			}
			out.Write(line)
		}
		if _, err := w.Write(textsafe.InertYAML(out.Bytes())); err != nil {
			return err
		}
	}
	return nil
}

// encodeTo writes n as one YAML document, indented by 2.
func encodeTo(b *bytes.Buffer, n *yaml.Node) error {
	enc := yaml.NewEncoder(b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}}); err != nil {
		return fmt.Errorf("cipolicy: writing YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("cipolicy: writing YAML: %w", err)
	}
	return nil
}

// encodeInert writes n as encodeTo does, made inert for a CI log: printed
// to standard output, the policy reaches a CI job's log, so no CI log
// command and no character that is not graphic is written as it is.
func encodeInert(w io.Writer, n *yaml.Node) error {
	var b bytes.Buffer
	if err := encodeTo(&b, n); err != nil {
		return err
	}
	_, err := w.Write(textsafe.InertYAML(b.Bytes()))
	return err
}

// headNode is the policy's mapping without its rules.
func headNode(p *Policy) (*yaml.Node, error) {
	if p.Type == AppIDTagging {
		return nil, fmt.Errorf("cipolicy: policy %q is an AppID tagging policy, which the YAML format cannot write", p.Ref())
	}
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
	if p.WDACCompatible {
		add(root, "wdac_compatible", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	if len(p.DigestAlgorithms) > 0 {
		add(root, "digest_algorithms", strs(names(p.DigestAlgorithms)))
	}
	if len(p.KeyTypes) > 0 {
		add(root, "key_types", strs(names(p.KeyTypes)))
	}
	if len(p.TimestampAuthorities) > 0 {
		tas := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range p.TimestampAuthorities {
			m := &yaml.Node{Kind: yaml.MappingNode}
			if err := writeCertRef(m, &p.TimestampAuthorities[i]); err != nil {
				return nil, err
			}
			tas.Content = append(tas.Content, m)
		}
		add(root, "timestamp_authorities", tas)
	}
	return root, nil
}

// ruleNode is one rule's mapping, its comment as its head comment.
func ruleNode(r *Rule) (*yaml.Node, error) {
	add := func(m *yaml.Node, k string, v *yaml.Node) {
		m.Content = append(m.Content, str(k), v)
	}
	m := &yaml.Node{Kind: yaml.MappingNode, HeadComment: comment(r.Comment)}
	add(m, "id", str(r.ID))
	add(m, "action", str(string(r.Action)))
	if err := writeMatcher(m, r); err != nil {
		return nil, err
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
	if len(r.Except) > 0 {
		xs := &yaml.Node{Kind: yaml.SequenceNode}
		for j := range r.Except {
			x := &yaml.Node{Kind: yaml.MappingNode}
			if err := writeMatcher(x, &r.Except[j]); err != nil {
				return nil, err
			}
			xs.Content = append(xs.Content, x)
		}
		add(m, "except", xs)
	}
	return m, nil
}

// writeMatcher writes a rule's matcher fields into mapping m.
func writeMatcher(m *yaml.Node, r *Rule) error {
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, str(k), v) }
	switch {
	case r.Unsupported != "":
		return fmt.Errorf("cipolicy: rule %q cannot be written as YAML: %s", r.ID, r.Unsupported)
	case r.Hash != nil:
		add(string(r.Hash.Algorithm), str(hex.EncodeToString(r.Hash.Value)))
	case r.Signer != nil:
		s := &yaml.Node{Kind: yaml.MappingNode}
		if r.Signer.Cert.WellKnown != "" {
			return fmt.Errorf("cipolicy: rule %q names a WDAC well-known root, which the YAML format cannot write", r.ID)
		}
		if err := writeCertRef(s, &r.Signer.Cert); err != nil {
			return err
		}
		sadd := func(k string, v *yaml.Node) { s.Content = append(s.Content, str(k), v) }
		if r.Signer.Level != "" && r.Signer.Level != LevelAny {
			sadd("level", str(string(r.Signer.Level)))
		}
		if r.Signer.Publisher != "" {
			sadd("publisher", str(r.Signer.Publisher))
		}
		if r.Signer.IssuerName != "" {
			sadd("issuer", str(r.Signer.IssuerName))
		}
		if len(r.Signer.EKUs) > 0 {
			sadd("ekus", strs(r.Signer.EKUs))
		}
		if len(r.Signer.SignatureFormats) > 0 {
			sadd("signature_formats", strs(r.Signer.SignatureFormats))
		}
		if r.Signer.OEMID != "" {
			return fmt.Errorf("cipolicy: rule %q has a WDAC OEM ID, which the YAML format cannot write", r.ID)
		}
		if len(r.Signer.Files) > 0 {
			fs := &yaml.Node{Kind: yaml.SequenceNode}
			for i := range r.Signer.Files {
				fs.Content = append(fs.Content, fileAttrNode(&r.Signer.Files[i]))
			}
			sadd("files", fs)
		}
		add("signer", s)
	case r.File != nil:
		add("file", fileAttrNode(r.File))
	case r.All:
		add("all", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	default:
		return fmt.Errorf("cipolicy: rule %q has no matcher", r.ID)
	}
	return nil
}

func writeCertRef(m *yaml.Node, c *CertRef) error {
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, str(k), v) }
	switch {
	case c.Certificate != nil:
		n := str(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate.Raw})))
		n.Style = yaml.LiteralStyle
		add("certificate", n)
	case len(c.TBSHash) > 0:
		add("tbs", str(strings.ToUpper(hex.EncodeToString(c.TBSHash))))
	default:
		return errors.New("cipolicy: a certificate reference names nothing")
	}
	return nil
}

func fileAttrNode(f *FileAttrMatch) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	add := func(k, v string) { n.Content = append(n.Content, str(k), str(v)) }
	if f.Name != "" {
		add("name", f.Name)
	}
	if f.Field != "" && f.Field != OriginalFileName {
		add("field", string(f.Field))
	}
	if f.MinVersion != nil {
		add("min_version", f.MinVersion.String())
	}
	if f.MaxVersion != nil {
		add("max_version", f.MaxVersion.String())
	}
	return n
}

func names[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if textsafe.YAMLQuote(s) {
		// A name from a file or a certificate that holds a CI log command
		// or a character that is not graphic: written double-quoted, where
		// the escapes of textsafe.InertYAML read back as the name.
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
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
