package cipolicy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/yamlstrict"
	"github.com/codesignval/csv/signing"
)

// FormatV1 is the value of the "format" field of a version 1 YAML policy.
const FormatV1 = "csv-policy/v1"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$`)

// yamlDecoder reads the YAML policy format; yamlstrict records every
// problem with its line.
type yamlDecoder struct {
	yamlstrict.Decoder
	opts ParseOptions
	// cur is the rule being read, ruleFields the handlers of its fields
	// (see ruleHandlers).
	cur        ruleState
	ruleFields map[string]func(*yaml.Node)
	ruleSeen   map[string]*yaml.Node
}

// fastYAML: try yamlstrict's fast path (a variable for tests, which
// compare its readings with yaml.v3's).
var fastYAML = true

func parseYAML(data []byte, source string, opts ParseOptions) (*Policy, error) {
	d := &yamlDecoder{opts: opts}
	// A large policy's rules are read one by one, not as one tree (see
	// yamlstrict.ParseLazy): the loader reads only !!bool and !!null tags,
	// and the rules through Items.
	var root *yaml.Node
	if fastYAML {
		root = d.ParseLazy(data, "policy", limits.MaxPolicyDepth, "rules")
	} else {
		root = d.Parse(data, "policy", limits.MaxPolicyDepth)
	}
	p := &Policy{Format: "yaml", Type: Base, Mode: Enforce}
	if root != nil {
		d.policy(root, p)
	}
	if d.Bailed() {
		d = &yamlDecoder{opts: opts}
		root = d.Parse(data, "policy", limits.MaxPolicyDepth)
		p = &Policy{Format: "yaml", Type: Base, Mode: Enforce}
		if root != nil {
			d.policy(root, p)
		}
	}
	if len(d.Problems) > 0 {
		return nil, loadError(source, d.Sorted())
	}
	return p, nil
}

// loadError turns yamlstrict problems into a LoadError.
func loadError(source string, ps []yamlstrict.Problem) *LoadError {
	e := &LoadError{Source: source, Problems: make([]Problem, len(ps))}
	for i, p := range ps {
		e.Problems[i] = Problem{Line: p.Line, Message: p.Message}
	}
	return e
}

func (d *yamlDecoder) policy(n *yaml.Node, p *Policy) {
	var format, typ, mode string
	var digests, keyTypes []string
	var digestsNode, keyTypesNode *yaml.Node
	var rulesNode *yaml.Node
	seen := d.Fields(n, "policy", map[string]func(*yaml.Node){
		"format":      func(v *yaml.Node) { d.Str(v, "format", &format) },
		"id":          func(v *yaml.Node) { d.Str(v, "id", &p.ID) },
		"name":        func(v *yaml.Node) { d.Str(v, "name", &p.Name) },
		"version":     func(v *yaml.Node) { d.Str(v, "version", &p.Version) },
		"description": func(v *yaml.Node) { d.Str(v, "description", &p.Description) },
		"type":        func(v *yaml.Node) { d.Str(v, "type", &typ) },
		"base":        func(v *yaml.Node) { d.Str(v, "base", &p.BaseID) },
		"mode":        func(v *yaml.Node) { d.Str(v, "mode", &mode) },
		"rules":       func(v *yaml.Node) { rulesNode = v },
		"wdac_compatible": func(v *yaml.Node) {
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				d.Errorf(v, "wdac_compatible must be true or false")
				return
			}
			p.WDACCompatible = v.Value == "true"
		},
		"digest_algorithms": func(v *yaml.Node) { digestsNode, digests = v, d.StrList(v, "digest_algorithms") },
		"key_types":         func(v *yaml.Node) { keyTypesNode, keyTypes = v, d.StrList(v, "key_types") },
		"timestamp_authorities": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.Errorf(v, "timestamp_authorities must be a list of certificates")
				return
			}
			for i, tn := range v.Content {
				what := fmt.Sprintf("timestamp authority %d", i+1)
				var ref CertRef
				seen := d.Fields(tn, what, d.certRefHandlers(&ref, what))
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
		d.Errorf(n, "missing field \"format\" (want %q)", FormatV1)
	case format != FormatV1:
		d.Errorf(seen["format"], "unsupported format %q (want %q)", format, FormatV1)
	}
	if p.Name == "" {
		d.Errorf(n, "missing field \"name\"")
	}
	p.DigestAlgorithms = acceptList(d, digestsNode, "digest_algorithms", digests, DigestAlgorithms)
	p.KeyTypes = acceptList(d, keyTypesNode, "key_types", keyTypes, KeyTypes)
	if p.ID == "" {
		p.ID = p.Name
	} else if !idPattern.MatchString(p.ID) {
		d.Errorf(seen["id"], "policy id %q: use letters, digits and . _ : @ / + -", p.ID)
	}
	switch PolicyType(typ) {
	case "", Base:
		p.Type = Base
		if p.BaseID != "" {
			d.Errorf(seen["base"], "a base policy has no \"base\" (set type: supplemental)")
		}
	case Supplemental:
		p.Type = Supplemental
		if p.BaseID == "" {
			d.Errorf(n, "a supplemental policy must name its base policy's id in \"base\"")
		}
	default:
		d.Errorf(seen["type"], "unknown policy type %q (want base or supplemental)", typ)
	}
	switch Mode(mode) {
	case "", Enforce:
		p.Mode = Enforce
	case Audit:
		p.Mode = Audit
	default:
		d.Errorf(seen["mode"], "unknown mode %q (want enforce or audit)", mode)
	}
	if rulesNode == nil {
		d.Errorf(n, "missing field \"rules\" (an empty list allows nothing)")
		return
	}
	if rulesNode.Kind != yaml.SequenceNode {
		if rulesNode.Tag != "!!null" {
			d.Errorf(rulesNode, "rules must be a list")
		}
		return
	}
	if n := d.Len(rulesNode); n > limits.MaxPolicyRules {
		d.Errorf(rulesNode, "%d rules exceed the limit of %d", n, limits.MaxPolicyRules)
		return
	}
	p.Rules = make([]Rule, 0, d.Len(rulesNode))
	ids := make(map[string]int, d.Len(rulesNode))
	for i, rn := range d.Items(rulesNode) {
		r, ok := d.rule(rn, i, p.Type)
		if r.ID != "" {
			if prev, dup := ids[r.ID]; dup {
				d.Errorf(rn, "duplicate rule id %q (first at line %d)", r.ID, prev)
				continue
			}
			ids[r.ID] = rn.Line
		}
		if ok {
			p.Rules = append(p.Rules, r)
		}
	}
}

// acceptList reads a list of accepted names (digest_algorithms,
// key_types): known names, at least one (an empty list would accept
// nothing; leaving the field out accepts everything), each once.
func acceptList[T ~string](d *yamlDecoder, n *yaml.Node, field string, names []string, known []T) []T {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.Errorf(n, "%s is empty, which accepts nothing: leave the field out to accept any", field)
		return nil
	}
	var out []T
	for _, name := range names {
		t := T(name)
		switch {
		case !slices.Contains(known, t):
			d.Errorf(n, "%s: unknown value %q (want %s)", field, name, joinNames(known))
		case slices.Contains(out, t):
			d.Errorf(n, "%s: %q listed twice", field, name)
		default:
			out = append(out, t)
		}
	}
	return out
}

// matcherFields are the rule fields that say what a rule matches; a rule has
// exactly one.
// Hash rules come first: one field per hash algorithm.
var matcherFields = func() []string {
	var out []string
	for _, a := range HashAlgorithms {
		out = append(out, string(a))
	}
	return append(out, "signer", "file", "all")
}()

// matcherHandlers registers the handlers of the matcher fields, which fill
// r, for a rule or an exception.
func (d *yamlDecoder) matcherHandlers(cur func() (*Rule, string), handlers map[string]func(*yaml.Node)) {
	for _, name := range matcherFields[:len(HashAlgorithms)] {
		alg := HashAlgorithm(name)
		handlers[name] = func(v *yaml.Node) {
			r, what := cur()
			var s string
			d.Str(v, name, &s)
			if s == "" {
				return
			}
			b, err := parseHex(s, alg.Size())
			if err != nil {
				d.Errorf(v, "%s: %s value %q: %v", what, name, s, err)
				return
			}
			r.Hash = &HashMatch{Algorithm: alg, Value: b}
		}
	}
	handlers["signer"] = func(v *yaml.Node) {
		r, what := cur()
		r.Signer = d.signer(v, what)
	}
	handlers["file"] = func(v *yaml.Node) {
		r, what := cur()
		r.File = d.fileAttr(v, what+": file")
	}
	handlers["all"] = func(v *yaml.Node) {
		r, what := cur()
		if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Value != "true" {
			d.Errorf(v, "%s: all must be true (it matches every file in the rule's scope)", what)
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
		d.Errorf(n, "%s: says nothing to match: set one of %s", what, strings.Join(matcherFields, ", "))
	case 1:
	default:
		d.Errorf(seen[matchers[1]], "%s: has several matchers (%s): a rule matches one thing; write one rule each",
			what, strings.Join(matchers, ", "))
	}
}

// ruleState is the rule rule is reading, which the handlers of its
// fields fill: they are made once per decoder (ruleHandlers), not per
// rule, since a policy may have a hundred thousand rules.
type ruleState struct {
	r                  Rule
	what               string
	action             string
	scenarios, formats []string
	exceptNode         *yaml.Node
}

func (d *yamlDecoder) ruleHandlers() map[string]func(*yaml.Node) {
	if d.ruleFields != nil {
		return d.ruleFields
	}
	st := &d.cur
	handlers := map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { d.Str(v, "rule id", &st.r.ID) },
		"action":      func(v *yaml.Node) { d.Str(v, "action", &st.action) },
		"description": func(v *yaml.Node) { d.Str(v, "description", &st.r.Description) },
		"paths":       func(v *yaml.Node) { st.r.Paths = d.StrList(v, "paths") },
		"scenarios":   func(v *yaml.Node) { st.scenarios = d.StrList(v, "scenarios") },
		"formats":     func(v *yaml.Node) { st.formats = d.StrList(v, "formats") },
		"except":      func(v *yaml.Node) { st.exceptNode = v },
	}
	d.matcherHandlers(func() (*Rule, string) { return &st.r, st.what }, handlers)
	d.ruleFields = handlers
	return handlers
}

func (d *yamlDecoder) rule(n *yaml.Node, i int, pt PolicyType) (Rule, bool) {
	before := len(d.Problems)
	st := &d.cur
	*st = ruleState{r: Rule{Line: n.Line}, what: "rule " + strconv.Itoa(i+1)}
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "id" && v.Kind == yaml.ScalarNode && v.Value != "" {
				st.what = "rule " + strconv.Quote(v.Value)
			}
		}
	}
	what := st.what
	if d.ruleSeen == nil {
		d.ruleSeen = map[string]*yaml.Node{}
	}
	seen := d.FieldsInto(n, what, d.ruleHandlers(), d.ruleSeen)
	r := &st.r
	action, scenarios, formats, exceptNode := st.action, st.scenarios, st.formats, st.exceptNode
	if n.Kind != yaml.MappingNode {
		return *r, false
	}
	switch {
	case seen["id"] == nil:
		d.Errorf(n, "%s: missing field \"id\"", what)
	case !idPattern.MatchString(r.ID):
		d.Errorf(seen["id"], "%s: rule id %q: use letters, digits and . _ : @ / + -", what, r.ID)
	}
	switch Action(action) {
	case Allow, Deny:
		r.Action = Action(action)
		if pt == Supplemental && r.Action == Deny {
			d.Errorf(seen["action"], "%s: a supplemental policy can only allow (Windows ignores deny rules in supplemental policies)", what)
		}
	case "":
		if seen["action"] == nil {
			d.Errorf(n, "%s: missing field \"action\" (allow or deny)", what)
		}
	default:
		d.Errorf(seen["action"], "%s: unknown action %q (want allow or deny)", what, action)
	}
	d.checkMatchers(n, seen, what)
	for _, pat := range r.Paths {
		if !doublestar.ValidatePattern(pat) {
			d.Errorf(seen["paths"], "%s: invalid path glob %q", what, pat)
		}
	}
	for _, s := range scenarios {
		sc := Scenario(s)
		switch sc {
		case ScenarioUser, ScenarioKernel, ScenarioBoot, ScenarioBuild:
			r.Scenarios = append(r.Scenarios, sc)
		default:
			d.Errorf(seen["scenarios"], "%s: unknown scenario %q (want user, kernel, boot or build)", what, s)
		}
	}
	for _, s := range formats {
		f, err := ParseFormat(s)
		if err != nil {
			d.Errorf(seen["formats"], "%s: unknown format %q (want pe or elf)", what, s)
			continue
		}
		r.Formats = append(r.Formats, f)
	}
	if exceptNode != nil {
		if r.Action == Deny {
			d.Errorf(exceptNode, "%s: only allow rules have exceptions", what)
		}
		if exceptNode.Kind != yaml.SequenceNode {
			d.Errorf(exceptNode, "%s: except must be a list of matchers", what)
		} else {
			for j, xn := range exceptNode.Content {
				r.Except = append(r.Except, d.exception(xn, fmt.Sprintf("%s: exception %d", what, j+1)))
			}
		}
	}
	return *r, len(d.Problems) == before
}

// exception reads one entry of a rule's except list: one matcher, and
// optionally an id and a description.
func (d *yamlDecoder) exception(n *yaml.Node, what string) Rule {
	x := Rule{Line: n.Line}
	handlers := map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { d.Str(v, "id", &x.ID) },
		"description": func(v *yaml.Node) { d.Str(v, "description", &x.Description) },
	}
	d.matcherHandlers(func() (*Rule, string) { return &x, what }, handlers)
	seen := d.Fields(n, what, handlers)
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
		"level":     func(v *yaml.Node) { d.Str(v, "level", &level) },
		"publisher": func(v *yaml.Node) { d.Str(v, "publisher", &m.Publisher) },
		"issuer":    func(v *yaml.Node) { d.Str(v, "issuer", &m.IssuerName) },
		"ekus":      func(v *yaml.Node) { m.EKUs = d.StrList(v, "ekus") },
		"signature_formats": func(v *yaml.Node) {
			m.SignatureFormats = d.StrList(v, "signature_formats")
			for _, f := range m.SignatureFormats {
				if !slices.Contains(SignatureFormatNames, f) {
					d.Errorf(v, "%s: unknown signature format %q (want %s)", what, f, strings.Join(SignatureFormatNames, ", "))
				}
			}
		},
		"files": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.Errorf(v, "%s: files must be a list", what)
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
	seen := d.Fields(n, what, handlers)
	if n.Kind != yaml.MappingNode {
		return m
	}
	d.checkCertRef(n, seen, what)
	switch CertLevel(level) {
	case "":
	case LevelLeaf, LevelIssuer, LevelRoot, LevelAny:
		m.Level = CertLevel(level)
	default:
		d.Errorf(seen["level"], "%s: unknown level %q (want leaf, issuer, root or any)", what, level)
	}
	for _, e := range m.EKUs {
		if !oidPattern.MatchString(e) {
			d.Errorf(seen["ekus"], "%s: EKU %q is not a dotted OID", what, e)
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
		c, err := signing.ParseOneCertificate(data)
		if err != nil {
			d.Errorf(v, "%s: %s: %v", what, from, err)
			return
		}
		ref.Certificate, ref.TBSHash = c, c.TBSHash
	}
	return map[string]func(*yaml.Node){
		"certificate": func(v *yaml.Node) {
			var s string
			d.Str(v, "certificate", &s)
			if s != "" {
				setCert(v, []byte(s), "certificate")
			}
		},
		"certificate_file": func(v *yaml.Node) {
			var name string
			d.Str(v, "certificate_file", &name)
			if name == "" {
				return
			}
			if d.opts.ReadFile == nil {
				d.Errorf(v, "%s: certificate_file %q: this policy was loaded without access to other files", what, name)
				return
			}
			data, err := d.opts.ReadFile(name)
			if err != nil {
				d.Errorf(v, "%s: certificate_file %q: %v", what, name, err)
				return
			}
			setCert(v, data, fmt.Sprintf("certificate_file %q", name))
		},
		"tbs": func(v *yaml.Node) {
			var s string
			d.Str(v, "tbs", &s)
			b, err := hex.DecodeString(s)
			switch {
			case err != nil:
				d.Errorf(v, "%s: tbs %q: not hexadecimal", what, s)
			case len(b) != 20 && len(b) != 32 && len(b) != 48 && len(b) != 64:
				d.Errorf(v, "%s: tbs %q: want the hex SHA1, SHA256, SHA384 or SHA512 of a TBSCertificate (40, 64, 96 or 128 digits)", what, s)
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
		d.Errorf(n, "%s: name the certificate with one of %s", what, strings.Join(certRefFields, ", "))
	case 1:
	default:
		d.Errorf(seen[given[1]], "%s: names the certificate twice (%s): use one", what, strings.Join(given, ", "))
	}
}

// fileAttr reads a file attribute matcher.
func (d *yamlDecoder) fileAttr(n *yaml.Node, what string) *FileAttrMatch {
	m := &FileAttrMatch{Field: OriginalFileName}
	var field, minV, maxV string
	seen := d.Fields(n, what, map[string]func(*yaml.Node){
		"name":        func(v *yaml.Node) { d.Str(v, "name", &m.Name) },
		"field":       func(v *yaml.Node) { d.Str(v, "field", &field) },
		"min_version": func(v *yaml.Node) { d.Str(v, "min_version", &minV) },
		"max_version": func(v *yaml.Node) { d.Str(v, "max_version", &maxV) },
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	switch FileNameField(field) {
	case "":
	case OriginalFileName, InternalName, FileDescription, ProductName:
		m.Field = FileNameField(field)
	default:
		d.Errorf(seen["field"], "%s: unknown field %q (want original_file_name, internal_name, file_description or product_name)", what, field)
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
			d.Errorf(seen[b.key], "%s: %v", what, err)
			continue
		}
		*b.out = &v
	}
	if m.Name == "" && m.MinVersion == nil && m.MaxVersion == nil {
		d.Errorf(n, "%s: set a name or a version bound", what)
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
