package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/signing"
)

// PolicyFormatV1 is the "format" of a version 1 attestation policy.
const PolicyFormatV1 = "csv-attest-policy/v1"

// Requirement values of a policy.
const (
	Required        = "required"
	Any             = "any"
	Forbidden       = "forbidden"
	Allowed         = "allowed"
	RequiredWindows = "windows"
	Ignore          = "ignore"
	JudgeCIPolicy   = "ci_policy"
)

// Policy is an attestation policy: what a host's verified boot state must
// be. Its zero value (and a file that sets nothing but format and name)
// is strict: Secure Boot required, debugging forbidden, code integrity
// required on Windows hosts, boot components judged by a code integrity
// policy.
type Policy struct {
	Name   string
	Source string
	SHA256 [32]byte
	// SecureBoot is Required (the default) or Any.
	SecureBoot string
	// PK and KEK, when set, are the certificates the variable must hold,
	// exactly (no more, no fewer).
	PK, KEK []CertRef
	// DBContains are certificates db must hold; DBNotContains certificates
	// it must not.
	DBContains, DBNotContains []CertRef
	// DBXIncludes are revocations dbx must hold (each a set: a dbx update
	// file's every hash and certificate, or one hash or certificate).
	DBXIncludes []Revocation
	// Debugging is Forbidden (the default) or Allowed.
	Debugging string
	// CodeIntegrity is RequiredWindows (the default: required where
	// Windows booted), Required (the host must be Windows with code
	// integrity on) or Ignore.
	CodeIntegrity string
	// BootComponents is JudgeCIPolicy (the default: every boot application
	// and driver must be allowed by the code integrity policy given to
	// Evaluate) or Ignore.
	BootComponents string
}

// CertRef names a certificate by its DER bytes (the certificate itself)
// or by its SHA-256 fingerprint. Dates are never checked: firmware does
// not check them either.
type CertRef struct {
	SHA256 [32]byte
	// Certificate is set when the policy gave the certificate.
	Certificate *signing.Certificate
	// Name is how the policy named it, for messages.
	Name string
	Line int
}

// Revocation is a set of revocations dbx must hold.
type Revocation struct {
	Name string
	// SHA256 are image hashes; CertSHA256 certificate fingerprints.
	SHA256     [][]byte
	CertSHA256 [][32]byte
	Line       int
}

// PolicyOptions configure ParsePolicy. The zero value reads nothing but
// the policy.
type PolicyOptions struct {
	// ReadFile reads a file the policy names (certificate_file, dbx_file),
	// by the name written in the policy; nil refuses such names.
	ReadFile func(name string) ([]byte, error)
}

// maxPolicySize caps an attestation policy file (dbx updates are read
// through ReadFile, each capped by the caller).
const maxPolicySize = 4 << 20

// ParsePolicy reads an attestation policy (YAML, see the package README
// section). Decoding is strict: unknown fields, repeated fields, wrong
// types, aliases and unknown values are errors, reported all at once as a
// *cipolicy.LoadError (errors.Is(err, cipolicy.ErrInvalidPolicy)) with
// their lines.
func ParsePolicy(data []byte, source string, opts PolicyOptions) (p *Policy, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &cipolicy.LoadError{Source: source, Problems: []cipolicy.Problem{{Message: fmt.Sprintf("internal error: %v", r)}}}
		}
	}()
	fail := func(line int, msg string) error {
		return &cipolicy.LoadError{Source: source, Problems: []cipolicy.Problem{{Line: line, Message: msg}}}
	}
	if len(data) > maxPolicySize {
		return nil, fail(0, fmt.Sprintf("policy is %d bytes, over the limit of %d", len(data), maxPolicySize))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(0, "empty policy")
		}
		return nil, fail(yamlLine(err), "YAML syntax: "+strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fail(extra.Line, "a policy file holds one YAML document; found another")
	}
	d := &policyDecoder{opts: opts}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.checkTree(root, 0)
	p = &Policy{Source: source, SHA256: sha256.Sum256(data), SecureBoot: Required, Debugging: Forbidden,
		CodeIntegrity: RequiredWindows, BootComponents: JudgeCIPolicy}
	if len(d.problems) == 0 {
		d.policy(root, p)
	}
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b cipolicy.Problem) int { return a.Line - b.Line })
		return nil, &cipolicy.LoadError{Source: source, Problems: d.problems}
	}
	return p, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

type policyDecoder struct {
	problems []cipolicy.Problem
	opts     PolicyOptions
}

func (d *policyDecoder) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.problems = append(d.problems, cipolicy.Problem{Line: line, Message: fmt.Sprintf(format, args...)})
}

const maxPolicyDepth = 16

func (d *policyDecoder) checkTree(n *yaml.Node, depth int) {
	switch {
	case depth > maxPolicyDepth:
		d.errorf(n, "nested deeper than %d levels", maxPolicyDepth)
	case n.Kind == yaml.AliasNode:
		d.errorf(n, "YAML aliases are not allowed in a policy")
	default:
		for _, c := range n.Content {
			d.checkTree(c, depth+1)
		}
	}
}

// fields walks a mapping, calling each key's handler; unknown and repeated
// keys are problems.
func (d *policyDecoder) fields(n *yaml.Node, what string, handlers map[string]func(*yaml.Node)) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping", what)
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, "%s: field %q repeated (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		h, ok := handlers[k.Value]
		if !ok {
			var known []string
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

func (d *policyDecoder) str(n *yaml.Node, what string, out *string) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, "%s must be a string", what)
		return
	}
	*out = n.Value
}

func (d *policyDecoder) enum(n *yaml.Node, what string, out *string, values ...string) {
	var s string
	d.str(n, what, &s)
	if s == "" {
		return
	}
	if !slices.Contains(values, s) {
		d.errorf(n, "%s: unknown value %q (want %s)", what, s, strings.Join(values, ", "))
		return
	}
	*out = s
}

func (d *policyDecoder) policy(n *yaml.Node, p *Policy) {
	var format string
	seen := d.fields(n, "policy", map[string]func(*yaml.Node){
		"format":          func(v *yaml.Node) { d.str(v, "format", &format) },
		"name":            func(v *yaml.Node) { d.str(v, "name", &p.Name) },
		"secure_boot":     func(v *yaml.Node) { d.enum(v, "secure_boot", &p.SecureBoot, Required, Any) },
		"pk":              func(v *yaml.Node) { p.PK = d.certList(v, "pk") },
		"kek":             func(v *yaml.Node) { p.KEK = d.certList(v, "kek") },
		"debugging":       func(v *yaml.Node) { d.enum(v, "debugging", &p.Debugging, Forbidden, Allowed) },
		"code_integrity":  func(v *yaml.Node) { d.enum(v, "code_integrity", &p.CodeIntegrity, RequiredWindows, Required, Ignore) },
		"boot_components": func(v *yaml.Node) { d.enum(v, "boot_components", &p.BootComponents, JudgeCIPolicy, Ignore) },
		"db": func(v *yaml.Node) {
			d.fields(v, "db", map[string]func(*yaml.Node){
				"contains":     func(v *yaml.Node) { p.DBContains = d.certList(v, "db: contains") },
				"not_contains": func(v *yaml.Node) { p.DBNotContains = d.certList(v, "db: not_contains") },
			})
		},
		"dbx": func(v *yaml.Node) {
			d.fields(v, "dbx", map[string]func(*yaml.Node){
				"includes": func(v *yaml.Node) { p.DBXIncludes = d.revocations(v) },
			})
		},
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	switch {
	case seen["format"] == nil:
		d.errorf(n, "missing field \"format\" (want %q)", PolicyFormatV1)
	case format != PolicyFormatV1:
		d.errorf(seen["format"], "unsupported format %q (want %q)", format, PolicyFormatV1)
	}
	if p.Name == "" {
		d.errorf(n, "missing field \"name\"")
	}
}

// certList reads a list of certificate references.
func (d *policyDecoder) certList(n *yaml.Node, what string) []CertRef {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list of certificates", what)
		return nil
	}
	out := []CertRef{}
	for i, c := range n.Content {
		if r, ok := d.certRef(c, fmt.Sprintf("%s: entry %d", what, i+1), false); ok {
			out = append(out, r.(CertRef))
		}
	}
	return out
}

// revocations reads dbx: includes.
func (d *policyDecoder) revocations(n *yaml.Node) []Revocation {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "dbx: includes must be a list")
		return nil
	}
	var out []Revocation
	for i, c := range n.Content {
		if r, ok := d.certRef(c, fmt.Sprintf("dbx: includes: entry %d", i+1), true); ok {
			out = append(out, r.(Revocation))
		}
	}
	return out
}

// certRef reads one entry: certificate, certificate_file or sha256 (and,
// for dbx, dbx_file). It returns a CertRef, or a Revocation when dbx.
func (d *policyDecoder) certRef(n *yaml.Node, what string, dbx bool) (any, bool) {
	before := len(d.problems)
	var cert *signing.Certificate
	var name string
	var hash []byte
	var set *SignatureDB
	setCert := func(v *yaml.Node, data []byte, from string) {
		if blk, _ := pem.Decode(data); blk != nil {
			data = blk.Bytes
		}
		c, err := signing.ParseCertificate(data)
		if err != nil {
			d.errorf(v, "%s: %s: %v", what, from, err)
			return
		}
		cert, name = c, from
	}
	readFile := func(v *yaml.Node, key string) []byte {
		var f string
		d.str(v, key, &f)
		if f == "" {
			return nil
		}
		if d.opts.ReadFile == nil {
			d.errorf(v, "%s: %s %q: this policy was loaded without access to other files", what, key, f)
			return nil
		}
		b, err := d.opts.ReadFile(f)
		if err != nil {
			d.errorf(v, "%s: %s %q: %v", what, key, f, err)
			return nil
		}
		name = f
		return b
	}
	handlers := map[string]func(*yaml.Node){
		"certificate": func(v *yaml.Node) {
			var s string
			d.str(v, "certificate", &s)
			if s != "" {
				setCert(v, []byte(s), "certificate")
			}
		},
		"certificate_file": func(v *yaml.Node) {
			if b := readFile(v, "certificate_file"); b != nil {
				setCert(v, b, name)
			}
		},
		"sha256": func(v *yaml.Node) {
			var s string
			d.str(v, "sha256", &s)
			b, err := hex.DecodeString(s)
			if err != nil || len(b) != 32 {
				d.errorf(v, "%s: sha256 %q: want 64 hex digits", what, s)
				return
			}
			hash, name = b, "sha256 "+s
		},
	}
	if dbx {
		handlers["dbx_file"] = func(v *yaml.Node) {
			if b := readFile(v, "dbx_file"); b != nil {
				db, err := ParseSignatureDatabase(b)
				if err != nil {
					d.errorf(v, "%s: dbx_file %q: %v", what, name, err)
					return
				}
				set = db
			}
		}
	}
	seen := d.fields(n, what, handlers)
	if n.Kind != yaml.MappingNode {
		return nil, false
	}
	if len(seen) != 1 {
		var keys []string
		for k := range handlers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d.errorf(n, "%s: give exactly one of %s", what, strings.Join(keys, ", "))
	}
	if len(d.problems) > before {
		return nil, false
	}
	if dbx {
		r := Revocation{Name: name, Line: n.Line}
		switch {
		case set != nil:
			r.SHA256, r.CertSHA256 = set.SHA256, set.CertSHA256
			if len(set.Others) > 0 {
				d.errorf(n, "%s: dbx_file %q holds %d entries that are neither SHA-256 hashes nor certificates", what, name, len(set.Others))
			}
		case cert != nil:
			r.CertSHA256 = [][32]byte{cert.SHA256}
		default:
			r.SHA256 = [][]byte{hash}
		}
		return r, true
	}
	r := CertRef{Name: name, Line: n.Line, Certificate: cert}
	if cert != nil {
		r.SHA256 = cert.SHA256
	} else {
		copy(r.SHA256[:], hash)
	}
	return r, true
}

// matches reports whether c is the referenced certificate.
func (r *CertRef) matches(c *signing.Certificate) bool { return c.SHA256 == r.SHA256 }

func (r *CertRef) String() string {
	if r.Certificate != nil {
		return fmt.Sprintf("%q (%s)", r.Certificate.CommonName(), r.Name)
	}
	return r.Name
}
