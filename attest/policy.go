package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/internal/yamlstrict"
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
	// KEKContains are certificates KEK must hold and KEKContainsAny
	// certificates of which it must hold at least one, others allowed
	// besides (kek: written as a mapping, not a list).
	KEKContains, KEKContainsAny []CertRef
	// DBContains are certificates db must hold; DBNotContains certificates
	// it must not; DBContainsAny certificates of which it must hold at
	// least one.
	DBContains, DBNotContains, DBContainsAny []CertRef
	// DBNotTrusted are certificates db must not trust: each is absent from
	// db or revoked by a certificate entry of dbx (as Microsoft revokes the
	// Windows Production PCA 2011 for CVE-2023-24932, leaving it in db).
	DBNotTrusted []CertRef
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
	// CIPolicies are code integrity policies the host must have booted
	// with (see CIPolicyRequirement); nil requires none.
	CIPolicies []CIPolicyRequirement
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
	// From, when set, is when the requirement starts to apply (from:);
	// before it, it is reported and not required. Evaluate compares it
	// with the time the evidence was verified (Verified.Time).
	From time.Time
}

// Revocation is a set of revocations dbx must hold.
type Revocation struct {
	Name string
	// SHA256 are image hashes; CertSHA256 certificate fingerprints.
	SHA256     [][]byte
	CertSHA256 [][32]byte
	Line       int
	// From is as CertRef.From.
	From time.Time
}

// PolicyOptions configure ParsePolicy. The zero value reads nothing but
// the policy.
type PolicyOptions struct {
	// ReadFile reads a file the policy names (certificate_file, dbx_file,
	// a ci_policies entry's file and xml),
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
			p, err = nil, &cipolicy.LoadError{Source: source, Problems: []cipolicy.Problem{{Message: fmt.Sprintf("internal error: %v", r), Err: panicerr.New(r)}}}
		}
	}()
	fail := func(line int, msg string) error {
		return &cipolicy.LoadError{Source: source, Problems: []cipolicy.Problem{{Line: line, Message: msg}}}
	}
	if len(data) > maxPolicySize {
		return nil, fail(0, fmt.Sprintf("policy is %d bytes, over the limit of %d", len(data), maxPolicySize))
	}
	d := &policyDecoder{opts: opts}
	root := d.Parse(data, "policy", maxPolicyDepth)
	p = &Policy{Source: source, SHA256: sha256.Sum256(data), SecureBoot: Required, Debugging: Forbidden,
		CodeIntegrity: RequiredWindows, BootComponents: JudgeCIPolicy}
	if root != nil {
		d.policy(root, p)
	}
	if len(d.Problems) > 0 {
		e := &cipolicy.LoadError{Source: source}
		for _, pr := range d.Sorted() {
			e.Problems = append(e.Problems, cipolicy.Problem{Line: pr.Line, Message: pr.Message})
		}
		return nil, e
	}
	return p, nil
}

type policyDecoder struct {
	yamlstrict.Decoder
	opts PolicyOptions
}

const maxPolicyDepth = 16

func (d *policyDecoder) policy(n *yaml.Node, p *Policy) {
	var format string
	seen := d.Fields(n, "policy", map[string]func(*yaml.Node){
		"format":          func(v *yaml.Node) { d.Str(v, "format", &format) },
		"name":            func(v *yaml.Node) { d.Str(v, "name", &p.Name) },
		"secure_boot":     func(v *yaml.Node) { d.Enum(v, "secure_boot", &p.SecureBoot, Required, Any) },
		"pk":              func(v *yaml.Node) { p.PK = d.certList(v, "pk", false) },
		"kek":             func(v *yaml.Node) { d.kek(v, p) },
		"debugging":       func(v *yaml.Node) { d.Enum(v, "debugging", &p.Debugging, Forbidden, Allowed) },
		"code_integrity":  func(v *yaml.Node) { d.Enum(v, "code_integrity", &p.CodeIntegrity, RequiredWindows, Required, Ignore) },
		"boot_components": func(v *yaml.Node) { d.Enum(v, "boot_components", &p.BootComponents, JudgeCIPolicy, Ignore) },
		"ci_policies":     func(v *yaml.Node) { p.CIPolicies = d.ciPolicies(v) },
		"db": func(v *yaml.Node) {
			d.Fields(v, "db", map[string]func(*yaml.Node){
				"contains":     func(v *yaml.Node) { p.DBContains = d.certList(v, "db: contains", true) },
				"not_contains": func(v *yaml.Node) { p.DBNotContains = d.certList(v, "db: not_contains", true) },
				"contains_any": func(v *yaml.Node) { p.DBContainsAny = d.certList(v, "db: contains_any", false) },
				"not_trusted":  func(v *yaml.Node) { p.DBNotTrusted = d.certList(v, "db: not_trusted", true) },
			})
		},
		"dbx": func(v *yaml.Node) {
			d.Fields(v, "dbx", map[string]func(*yaml.Node){
				"includes": func(v *yaml.Node) { p.DBXIncludes = d.revocations(v) },
			})
		},
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	switch {
	case seen["format"] == nil:
		d.Errorf(n, "missing field \"format\" (want %q)", PolicyFormatV1)
	case format != PolicyFormatV1:
		d.Errorf(seen["format"], "unsupported format %q (want %q)", format, PolicyFormatV1)
	}
	if p.Name == "" {
		d.Errorf(n, "missing field \"name\"")
	}
	for _, l := range [][]CertRef{p.KEKContainsAny, p.DBContainsAny} {
		if l != nil && len(l) == 0 {
			d.Errorf(n, "a contains_any list is empty: no host could meet it")
		}
	}
}

// kek reads kek: a list (exactly these) or a mapping (contains,
// contains_any).
func (d *policyDecoder) kek(v *yaml.Node, p *Policy) {
	if v.Kind != yaml.MappingNode {
		p.KEK = d.certList(v, "kek", false)
		return
	}
	seen := d.Fields(v, "kek", map[string]func(*yaml.Node){
		"contains":     func(v *yaml.Node) { p.KEKContains = d.certList(v, "kek: contains", true) },
		"contains_any": func(v *yaml.Node) { p.KEKContainsAny = d.certList(v, "kek: contains_any", false) },
	})
	if len(seen) == 0 {
		d.Errorf(v, "kek: give contains, contains_any or both (or a list: exactly these certificates)")
	}
}

// certList reads a list of certificate references; dated says an entry
// may carry from: (a requirement that starts at a date).
func (d *policyDecoder) certList(n *yaml.Node, what string, dated bool) []CertRef {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "%s must be a list of certificates", what)
		return nil
	}
	out := []CertRef{}
	for i, c := range n.Content {
		if r, ok := d.certRef(c, fmt.Sprintf("%s: entry %d", what, i+1), false, dated); ok {
			out = append(out, r.(CertRef))
		}
	}
	return out
}

// revocations reads dbx: includes.
func (d *policyDecoder) revocations(n *yaml.Node) []Revocation {
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, "dbx: includes must be a list")
		return nil
	}
	var out []Revocation
	for i, c := range n.Content {
		if r, ok := d.certRef(c, fmt.Sprintf("dbx: includes: entry %d", i+1), true, true); ok {
			out = append(out, r.(Revocation))
		}
	}
	return out
}

// certRef reads one entry: certificate, certificate_file or sha256 (and,
// for dbx, dbx_file), and, when dated, an optional from: date. It returns
// a CertRef, or a Revocation when dbx.
func (d *policyDecoder) certRef(n *yaml.Node, what string, dbx, dated bool) (any, bool) {
	before := len(d.Problems)
	var from time.Time
	var cert *signing.Certificate
	var name string
	var hash []byte
	var set *SignatureDB
	setCert := func(v *yaml.Node, data []byte, from string) {
		c, err := signing.ParseOneCertificate(data)
		if err != nil {
			d.Errorf(v, "%s: %s: %v", what, from, err)
			return
		}
		cert, name = c, from
	}
	readFile := func(v *yaml.Node, key string) []byte {
		var f string
		d.Str(v, key, &f)
		if f == "" {
			return nil
		}
		if d.opts.ReadFile == nil {
			d.Errorf(v, "%s: %s %q: this policy was loaded without access to other files", what, key, f)
			return nil
		}
		b, err := d.opts.ReadFile(f)
		if err != nil {
			d.Errorf(v, "%s: %s %q: %v", what, key, f, err)
			return nil
		}
		name = f
		return b
	}
	handlers := map[string]func(*yaml.Node){
		"certificate": func(v *yaml.Node) {
			var s string
			d.Str(v, "certificate", &s)
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
			d.Str(v, "sha256", &s)
			b, err := hex.DecodeString(s)
			if err != nil || len(b) != 32 {
				d.Errorf(v, "%s: sha256 %q: want 64 hex digits", what, s)
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
					d.Errorf(v, "%s: dbx_file %q: %v", what, name, err)
					return
				}
				set = db
			}
		}
	}
	var keys []string
	for k := range handlers {
		keys = append(keys, k)
	}
	if dated {
		handlers["from"] = func(v *yaml.Node) { from = d.date(v, what) }
	}
	seen := d.Fields(n, what, handlers)
	if n.Kind != yaml.MappingNode {
		return nil, false
	}
	delete(seen, "from")
	if len(seen) != 1 {
		slices.Sort(keys)
		d.Errorf(n, "%s: give exactly one of %s", what, strings.Join(keys, ", "))
	}
	if len(d.Problems) > before {
		return nil, false
	}
	if dbx {
		r := Revocation{Name: name, Line: n.Line, From: from}
		switch {
		case set != nil:
			r.SHA256, r.CertSHA256 = set.SHA256, set.CertSHA256
			if len(set.Others) > 0 {
				d.Errorf(n, "%s: dbx_file %q holds %d entries that are neither SHA-256 hashes nor certificates", what, name, len(set.Others))
			}
		case cert != nil:
			r.CertSHA256 = [][32]byte{cert.SHA256}
		default:
			r.SHA256 = [][]byte{hash}
		}
		return r, true
	}
	r := CertRef{Name: name, Line: n.Line, Certificate: cert, From: from}
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

// date reads from: a date (2026-10-19, midnight UTC) or an RFC 3339 time.
func (d *policyDecoder) date(v *yaml.Node, what string) time.Time {
	var s string
	d.Str(v, what+": from", &s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	d.Errorf(v, "%s: from %q: want a date (2026-10-19) or an RFC 3339 time", what, s)
	return time.Time{}
}

// pending reports whether a dated requirement does not apply yet at t.
func pending(from, t time.Time) bool { return !from.IsZero() && t.Before(from) }
