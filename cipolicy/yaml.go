package cipolicy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/internal/limits"
)

// FormatV1 is the value of the "format" field of a version 1 YAML policy.
const FormatV1 = "csv-policy/v1"

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$`)
	yamlLineNumber = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// yamlDecoder walks a yaml.Node tree and collects every problem with its
// line, instead of stopping at the first.
type yamlDecoder struct {
	problems []Problem
	opts     ParseOptions
}

func (d *yamlDecoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, Problem{Line: line, Message: fmt.Sprintf(format, args...)})
}

func parseYAML(data []byte, source string, opts ParseOptions) (*Policy, error) {
	d := &yamlDecoder{opts: opts}
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &LoadError{Source: source, Problems: []Problem{{Message: "empty policy"}}}
		}
		return nil, &LoadError{Source: source, Problems: []Problem{yamlProblem(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			p := yamlProblem(err)
			line = p.Line
		}
		return nil, &LoadError{Source: source, Problems: []Problem{{Line: line, Message: "a policy file holds one YAML document; found another"}}}
	}
	d.checkTree(&doc, 0)
	if len(d.problems) > 0 {
		return nil, &LoadError{Source: source, Problems: d.problems}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	p := &Policy{Format: "yaml", Type: Base, Mode: Enforce}
	d.policy(root, p)
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &LoadError{Source: source, Problems: d.problems}
	}
	return p, nil
}

func yamlProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineNumber.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Message: "YAML syntax: " + m[2]}
	}
	return Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// checkTree refuses aliases (a policy has no use for them, and they are how
// YAML bombs are built) and documents nested deeper than any policy needs.
func (d *yamlDecoder) checkTree(n *yaml.Node, depth int) {
	if depth > limits.MaxPolicyDepth {
		d.errorf(n, "nested deeper than %d levels", limits.MaxPolicyDepth)
		return
	}
	if n.Kind == yaml.AliasNode {
		d.errorf(n, "YAML aliases are not allowed in a policy")
		return
	}
	for _, c := range n.Content {
		d.checkTree(c, depth+1)
		if len(d.problems) > 20 {
			return
		}
	}
}

// fields walks a mapping node, calling the handler registered for each key
// and reporting unknown and repeated keys.
func (d *yamlDecoder) fields(n *yaml.Node, what string, handlers map[string]func(*yaml.Node)) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping", what)
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: keys must be strings", what)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, "%s: field %q repeated (first at line %d)", what, k.Value, prev.Line)
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
			d.errorf(k, "unknown field %q in %s (known fields: %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		h(v)
	}
	return seen
}

func (d *yamlDecoder) str(n *yaml.Node, what string, out *string) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "%s must be a string", what)
		return
	}
	*out = n.Value
}

func (d *yamlDecoder) strList(n *yaml.Node, what string) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			d.errorf(n, "%s must be a string or a list of strings", what)
			return nil
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				d.errorf(c, "%s: each entry must be a string", what)
				continue
			}
			out = append(out, c.Value)
		}
		return out
	}
	d.errorf(n, "%s must be a string or a list of strings", what)
	return nil
}

func (d *yamlDecoder) policy(n *yaml.Node, p *Policy) {
	var format, typ, mode string
	var rulesNode *yaml.Node
	seen := d.fields(n, "policy", map[string]func(*yaml.Node){
		"format":      func(v *yaml.Node) { d.str(v, "format", &format) },
		"id":          func(v *yaml.Node) { d.str(v, "id", &p.ID) },
		"name":        func(v *yaml.Node) { d.str(v, "name", &p.Name) },
		"version":     func(v *yaml.Node) { d.str(v, "version", &p.Version) },
		"description": func(v *yaml.Node) { d.str(v, "description", &p.Description) },
		"type":        func(v *yaml.Node) { d.str(v, "type", &typ) },
		"base":        func(v *yaml.Node) { d.str(v, "base", &p.BaseID) },
		"mode":        func(v *yaml.Node) { d.str(v, "mode", &mode) },
		"rules":       func(v *yaml.Node) { rulesNode = v },
		"wdac_compatible": func(v *yaml.Node) {
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				d.errorf(v, "wdac_compatible must be true or false")
				return
			}
			p.WDACCompatible = v.Value == "true"
		},
		"timestamp_authorities": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "timestamp_authorities must be a list of certificates")
				return
			}
			for i, tn := range v.Content {
				what := fmt.Sprintf("timestamp authority %d", i+1)
				var ref CertRef
				seen := d.fields(tn, what, d.certRefHandlers(&ref, what))
				if tn.Kind == yaml.MappingNode {
					d.checkCertRef(tn, seen, what)
				}
				p.TimestampAuthorities = append(p.TimestampAuthorities, ref)
			}
		},
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	switch {
	case seen["format"] == nil:
		d.errorf(n, "missing field \"format\" (want %q)", FormatV1)
	case format != FormatV1:
		d.errorf(seen["format"], "unsupported format %q (want %q)", format, FormatV1)
	}
	if p.Name == "" {
		d.errorf(n, "missing field \"name\"")
	}
	if p.ID == "" {
		p.ID = p.Name
	} else if !idPattern.MatchString(p.ID) {
		d.errorf(seen["id"], "policy id %q: use letters, digits and . _ : @ / + -", p.ID)
	}
	switch PolicyType(typ) {
	case "", Base:
		p.Type = Base
		if p.BaseID != "" {
			d.errorf(seen["base"], "a base policy has no \"base\" (set type: supplemental)")
		}
	case Supplemental:
		p.Type = Supplemental
		if p.BaseID == "" {
			d.errorf(n, "a supplemental policy must name its base policy's id in \"base\"")
		}
	default:
		d.errorf(seen["type"], "unknown policy type %q (want base or supplemental)", typ)
	}
	switch Mode(mode) {
	case "", Enforce:
		p.Mode = Enforce
	case Audit:
		p.Mode = Audit
	default:
		d.errorf(seen["mode"], "unknown mode %q (want enforce or audit)", mode)
	}
	if rulesNode == nil {
		d.errorf(n, "missing field \"rules\" (an empty list allows nothing)")
		return
	}
	if rulesNode.Kind != yaml.SequenceNode {
		if rulesNode.Tag != "!!null" {
			d.errorf(rulesNode, "rules must be a list")
		}
		return
	}
	if len(rulesNode.Content) > limits.MaxPolicyRules {
		d.errorf(rulesNode, "%d rules exceed the limit of %d", len(rulesNode.Content), limits.MaxPolicyRules)
		return
	}
	p.Rules = make([]Rule, 0, len(rulesNode.Content))
	ids := map[string]int{}
	for i, rn := range rulesNode.Content {
		r, ok := d.rule(rn, i, p.Type)
		if r.ID != "" {
			if prev, dup := ids[r.ID]; dup {
				d.errorf(rn, "duplicate rule id %q (first at line %d)", r.ID, prev)
				continue
			}
			ids[r.ID] = rn.Line
		}
		if ok {
			p.Rules = append(p.Rules, r)
		}
	}
}

// matcherFields are the rule fields that say what a rule matches; a rule has
// exactly one.
var matcherFields = []string{string(SHA256), string(AuthenticodeSHA256), string(AuthenticodeSHA1), "signer", "file", "all"}

// matcherHandlers registers the handlers of the matcher fields, which fill
// r, for a rule or an exception.
func (d *yamlDecoder) matcherHandlers(r *Rule, what string, handlers map[string]func(*yaml.Node)) {
	for _, name := range matcherFields[:3] {
		alg := HashAlgorithm(name)
		handlers[name] = func(v *yaml.Node) {
			var s string
			d.str(v, name, &s)
			if s == "" {
				return
			}
			b, err := parseHex(s, alg.Size())
			if err != nil {
				d.errorf(v, "%s: %s value %q: %v", what, name, s, err)
				return
			}
			r.Hash = &HashMatch{Algorithm: alg, Value: b}
		}
	}
	handlers["signer"] = func(v *yaml.Node) { r.Signer = d.signer(v, what) }
	handlers["file"] = func(v *yaml.Node) { r.File = d.fileAttr(v, what+": file") }
	handlers["all"] = func(v *yaml.Node) {
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Value != "true" {
			d.errorf(v, "%s: all must be true (it matches every file in the rule's scope)", what)
			return
		}
		r.All = true
	}
}

// checkMatchers reports a rule or exception with no matcher or several.
func (d *yamlDecoder) checkMatchers(n *yaml.Node, seen map[string]*yaml.Node, what string) {
	var matchers []string
	for _, name := range matcherFields {
		if seen[name] != nil {
			matchers = append(matchers, name)
		}
	}
	switch len(matchers) {
	case 0:
		d.errorf(n, "%s: says nothing to match: set one of %s", what, strings.Join(matcherFields, ", "))
	case 1:
	default:
		d.errorf(seen[matchers[1]], "%s: has several matchers (%s): a rule matches one thing; write one rule each",
			what, strings.Join(matchers, ", "))
	}
}

func (d *yamlDecoder) rule(n *yaml.Node, i int, pt PolicyType) (Rule, bool) {
	before := len(d.problems)
	r := Rule{Line: n.Line}
	what := fmt.Sprintf("rule %d", i+1)
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "id" && v.Kind == yaml.ScalarNode && v.Value != "" {
				what = fmt.Sprintf("rule %q", v.Value)
			}
		}
	}
	var action string
	var scenarios, formats []string
	var exceptNode *yaml.Node
	handlers := map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { d.str(v, "rule id", &r.ID) },
		"action":      func(v *yaml.Node) { d.str(v, "action", &action) },
		"description": func(v *yaml.Node) { d.str(v, "description", &r.Description) },
		"paths":       func(v *yaml.Node) { r.Paths = d.strList(v, "paths") },
		"scenarios":   func(v *yaml.Node) { scenarios = d.strList(v, "scenarios") },
		"formats":     func(v *yaml.Node) { formats = d.strList(v, "formats") },
		"except":      func(v *yaml.Node) { exceptNode = v },
	}
	d.matcherHandlers(&r, what, handlers)
	seen := d.fields(n, what, handlers)
	if n.Kind != yaml.MappingNode {
		return r, false
	}
	switch {
	case seen["id"] == nil:
		d.errorf(n, "%s: missing field \"id\"", what)
	case !idPattern.MatchString(r.ID):
		d.errorf(seen["id"], "%s: rule id %q: use letters, digits and . _ : @ / + -", what, r.ID)
	}
	switch Action(action) {
	case Allow, Deny:
		r.Action = Action(action)
		if pt == Supplemental && r.Action == Deny {
			d.errorf(seen["action"], "%s: a supplemental policy can only allow (Windows ignores deny rules in supplemental policies)", what)
		}
	case "":
		if seen["action"] == nil {
			d.errorf(n, "%s: missing field \"action\" (allow or deny)", what)
		}
	default:
		d.errorf(seen["action"], "%s: unknown action %q (want allow or deny)", what, action)
	}
	d.checkMatchers(n, seen, what)
	for _, pat := range r.Paths {
		if !doublestar.ValidatePattern(pat) {
			d.errorf(seen["paths"], "%s: invalid path glob %q", what, pat)
		}
	}
	for _, s := range scenarios {
		sc := Scenario(s)
		switch sc {
		case ScenarioUser, ScenarioKernel, ScenarioBoot, ScenarioBuild:
			r.Scenarios = append(r.Scenarios, sc)
		default:
			d.errorf(seen["scenarios"], "%s: unknown scenario %q (want user, kernel, boot or build)", what, s)
		}
	}
	for _, s := range formats {
		f, err := ParseFormat(s)
		if err != nil {
			d.errorf(seen["formats"], "%s: unknown format %q (want pe or elf)", what, s)
			continue
		}
		r.Formats = append(r.Formats, f)
	}
	if exceptNode != nil {
		if r.Action == Deny {
			d.errorf(exceptNode, "%s: only allow rules have exceptions", what)
		}
		if exceptNode.Kind != yaml.SequenceNode {
			d.errorf(exceptNode, "%s: except must be a list of matchers", what)
		} else {
			for j, xn := range exceptNode.Content {
				r.Except = append(r.Except, d.exception(xn, fmt.Sprintf("%s: exception %d", what, j+1)))
			}
		}
	}
	return r, len(d.problems) == before
}

// exception reads one entry of a rule's except list: one matcher, and
// optionally an id and a description.
func (d *yamlDecoder) exception(n *yaml.Node, what string) Rule {
	x := Rule{Line: n.Line}
	handlers := map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { d.str(v, "id", &x.ID) },
		"description": func(v *yaml.Node) { d.str(v, "description", &x.Description) },
	}
	d.matcherHandlers(&x, what, handlers)
	seen := d.fields(n, what, handlers)
	if n.Kind == yaml.MappingNode {
		d.checkMatchers(n, seen, what)
	}
	if x.ID == "" {
		x.ID = fmt.Sprintf("except@%d", n.Line)
	}
	return x
}

// signer reads a signer matcher.
func (d *yamlDecoder) signer(n *yaml.Node, what string) *SignerMatch {
	what += ": signer"
	m := &SignerMatch{Level: LevelAny}
	var level string
	ref := d.certRefHandlers(&m.Cert, what)
	handlers := map[string]func(*yaml.Node){
		"level":     func(v *yaml.Node) { d.str(v, "level", &level) },
		"publisher": func(v *yaml.Node) { d.str(v, "publisher", &m.Publisher) },
		"issuer":    func(v *yaml.Node) { d.str(v, "issuer", &m.IssuerName) },
		"ekus":      func(v *yaml.Node) { m.EKUs = d.strList(v, "ekus") },
		"files": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "%s: files must be a list", what)
				return
			}
			for i, fn := range v.Content {
				if f := d.fileAttr(fn, fmt.Sprintf("%s: files entry %d", what, i+1)); f != nil {
					m.Files = append(m.Files, *f)
				}
			}
		},
	}
	for k, h := range ref {
		handlers[k] = h
	}
	seen := d.fields(n, what, handlers)
	if n.Kind != yaml.MappingNode {
		return m
	}
	d.checkCertRef(n, seen, what)
	switch CertLevel(level) {
	case "":
	case LevelLeaf, LevelIssuer, LevelRoot, LevelAny:
		m.Level = CertLevel(level)
	default:
		d.errorf(seen["level"], "%s: unknown level %q (want leaf, issuer, root or any)", what, level)
	}
	for _, e := range m.EKUs {
		if !oidPattern.MatchString(e) {
			d.errorf(seen["ekus"], "%s: EKU %q is not a dotted OID", what, e)
		}
	}
	return m
}

var oidPattern = regexp.MustCompile(`^[0-2](\.(0|[1-9][0-9]*))+$`)

// certRefFields are the ways to name a certificate; one is required.
var certRefFields = []string{"certificate", "certificate_file", "tbs"}

// certRefHandlers returns the handlers of the certificate fields, which fill
// ref.
func (d *yamlDecoder) certRefHandlers(ref *CertRef, what string) map[string]func(*yaml.Node) {
	setCert := func(v *yaml.Node, data []byte, from string) {
		c, err := parseCertificate(data)
		if err != nil {
			d.errorf(v, "%s: %s: %v", what, from, err)
			return
		}
		ref.Certificate, ref.TBSHash = c, c.TBSHash
	}
	return map[string]func(*yaml.Node){
		"certificate": func(v *yaml.Node) {
			var s string
			d.str(v, "certificate", &s)
			if s != "" {
				setCert(v, []byte(s), "certificate")
			}
		},
		"certificate_file": func(v *yaml.Node) {
			var name string
			d.str(v, "certificate_file", &name)
			if name == "" {
				return
			}
			if d.opts.ReadFile == nil {
				d.errorf(v, "%s: certificate_file %q: this policy was loaded without access to other files", what, name)
				return
			}
			data, err := d.opts.ReadFile(name)
			if err != nil {
				d.errorf(v, "%s: certificate_file %q: %v", what, name, err)
				return
			}
			setCert(v, data, fmt.Sprintf("certificate_file %q", name))
		},
		"tbs": func(v *yaml.Node) {
			var s string
			d.str(v, "tbs", &s)
			b, err := hex.DecodeString(s)
			switch {
			case err != nil:
				d.errorf(v, "%s: tbs %q: not hexadecimal", what, s)
			case len(b) != 20 && len(b) != 32 && len(b) != 48 && len(b) != 64:
				d.errorf(v, "%s: tbs %q: want the hex SHA1, SHA256, SHA384 or SHA512 of a TBSCertificate (40, 64, 96 or 128 digits)", what, s)
			default:
				ref.TBSHash = b
			}
		},
	}
}

func (d *yamlDecoder) checkCertRef(n *yaml.Node, seen map[string]*yaml.Node, what string) {
	var given []string
	for _, f := range certRefFields {
		if seen[f] != nil {
			given = append(given, f)
		}
	}
	switch len(given) {
	case 0:
		d.errorf(n, "%s: name the certificate with one of %s", what, strings.Join(certRefFields, ", "))
	case 1:
	default:
		d.errorf(seen[given[1]], "%s: names the certificate twice (%s): use one", what, strings.Join(given, ", "))
	}
}

// fileAttr reads a file attribute matcher.
func (d *yamlDecoder) fileAttr(n *yaml.Node, what string) *FileAttrMatch {
	m := &FileAttrMatch{Field: OriginalFileName}
	var field, minV, maxV string
	seen := d.fields(n, what, map[string]func(*yaml.Node){
		"name":        func(v *yaml.Node) { d.str(v, "name", &m.Name) },
		"field":       func(v *yaml.Node) { d.str(v, "field", &field) },
		"min_version": func(v *yaml.Node) { d.str(v, "min_version", &minV) },
		"max_version": func(v *yaml.Node) { d.str(v, "max_version", &maxV) },
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	switch FileNameField(field) {
	case "":
	case OriginalFileName, InternalName, FileDescription, ProductName:
		m.Field = FileNameField(field)
	default:
		d.errorf(seen["field"], "%s: unknown field %q (want original_file_name, internal_name, file_description or product_name)", what, field)
	}
	for _, b := range []struct {
		s   string
		key string
		out **Version
	}{{minV, "min_version", &m.MinVersion}, {maxV, "max_version", &m.MaxVersion}} {
		if b.s == "" {
			continue
		}
		v, err := ParseVersion(b.s)
		if err != nil {
			d.errorf(seen[b.key], "%s: %v", what, err)
			continue
		}
		*b.out = &v
	}
	if m.Name == "" && m.MinVersion == nil && m.MaxVersion == nil {
		d.errorf(n, "%s: set a name or a version bound", what)
	}
	return m
}

// parseHex decodes a hex digest of exactly size bytes. Colons and spaces
// between byte pairs, as certificate tools print them, are not accepted: a
// policy holds one canonical spelling.
func parseHex(s string, size int) ([]byte, error) {
	if len(s) != 2*size {
		return nil, fmt.Errorf("want %d hex digits, got %d", 2*size, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("not hexadecimal")
	}
	return b, nil
}
