package cipolicy

// Reading WDAC (App Control for Business) SiPolicy XML into the policy model.
//
// The schema is Microsoft's cipolicy.xsd (namespace
// urn:schemas-microsoft-com:sipolicy). Decoding is strict: an element or
// attribute the schema does not define is an error, as are references to IDs
// that do not exist and IDs defined twice. It is lenient only where real
// policies need it: cardinalities the tools themselves do not respect (a
// Signer without CertEKU, a policy without PlatformID), option spellings, and
// the case of CertRoot types.
//
// Every rule is mapped so that it never matches more than Windows would: what
// cannot be judged from a file (FilePath, packaged-app and AppIDs rules,
// OEM IDs, signing-time bounds, well-known roots csv cannot name)
// becomes a rule with Unsupported set, which never matches and which lint
// lists.

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/codesignval/csv/internal/limits"
)

// siPolicyNS is the namespace of SiPolicy documents.
const siPolicyNS = "urn:schemas-microsoft-com:sipolicy"

// Signing scenario values (SigningScenario Value=...).
const (
	scenarioValueKernel = 131
	scenarioValueUser   = 12
)

// maxXMLProblems caps how many problems one load reports.
const maxXMLProblems = 50

// wellKnownRoot names the root certificate behind a WDAC well-known root ID
// (CertRoot Type="Wellknown" Value="NN").
//
// Source: Microsoft, "Understanding App Control event tags", section
// "Microsoft Root CAs trusted by Windows"
// (https://learn.microsoft.com/windows/security/application-security/application-control/app-control-for-business/operations/event-tag-explanations),
// which maps each ID to a root name and that root's public key. The names
// there are Microsoft's internal names (they match ci.dll's
// MINCRYPT_KNOWN_ROOT_ID enumerators: MincryptKnownRootMicrosoftProductRoot2010
// and so on), not always the certificate's subject, so the subject common
// names below were established separately:
//
//   - 06 and 0F were checked against real certificates (the Secure Boot db
//     and KEK certificates in ../shared/testdata/eventlogs): "Microsoft
//     Windows Production PCA 2011", which WDAC's own policies allow through
//     root 06 with the Windows EKU, is issued by "Microsoft Root Certificate
//     Authority 2010"; the key Microsoft lists for 0F is that of
//     "Microsoft Corporation Third Party Marketplace Root" (see
//     TestWellKnownRootsAgainstRealCertificates). Note that Microsoft's table
//     lists the same key for 06 and 0A, which cannot both be right; the key
//     of Microsoft Root Certificate Authority 2010 is neither.
//   - 03, 04, 05, 07, 08: the long-standing Microsoft roots these names
//     denote (Authenticode root 1997, "Microsoft Root Authority" 1997,
//     "Microsoft Root Certificate Authority" 2001, ... 2011, "Microsoft Code
//     Verification Root" 2006); their key sizes agree with Microsoft's table.
//   - 09, 0A, 0C, 0D, 0E: names from the comments of the reverse-engineered
//     ci.h (System Informer's phnt; Ido Moshe's CiDllDemo) and from signtool
//     usage (/r "Microsoft Testing Root Certificate Authority 2010").
//   - 15, 16: Microsoft's table names them by their subject.
//
// IDs the table does not list (0B, 10 to 13), and 00 to 02 and 14, which are
// not one certificate (none, unknown, any self-signed root, the whole trusted
// root store), are not mapped: such signer rules are unsupported.
//
// A well-known reference matches only a self-signed certificate with that
// common name that the operator supplied as trusted (see CertRef.Matches), so
// a wrong name here can only make a rule miss, never match more.
func wellKnownRoot(id string) (docName, commonName string, ok bool) {
	switch id {
	case "03":
		return "Microsoft Authenticode(tm) Root Authority", "Microsoft Authenticode(tm) Root Authority", true
	case "04":
		return "Microsoft Product Root 1997", "Microsoft Root Authority", true
	case "05":
		return "Microsoft Product Root 2001", "Microsoft Root Certificate Authority", true
	case "06":
		return "Microsoft Product Root 2010", "Microsoft Root Certificate Authority 2010", true
	case "07":
		return "Microsoft Standard Root 2011", "Microsoft Root Certificate Authority 2011", true
	case "08":
		return "Microsoft Code Verification Root 2006", "Microsoft Code Verification Root", true
	case "09":
		return "Microsoft Test Root 1999", "Microsoft Test Root Authority", true
	case "0A":
		return "Microsoft Test Root 2010", "Microsoft Testing Root Certificate Authority 2010", true
	case "0C":
		return "Microsoft DMDRoot 2005", "Microsoft Digital Media Authority 2005", true
	case "0D":
		return "Microsoft DMD Preview Root 2005", "Microsoft Digital Media Authority 2005 for preview releases", true
	case "0E":
		return "Microsoft Flight Root 2014", "Microsoft Development Root Certificate Authority 2014", true
	case "0F":
		return "Microsoft Third Party Marketplace Root", "Microsoft Corporation Third Party Marketplace Root", true
	case "15":
		return "Microsoft OEM Root Certificate Authority 2017", "Microsoft OEM Root Certificate Authority 2017", true
	case "16":
		return "Microsoft Identity Verification Root Certificate Authority 2020", "Microsoft Identity Verification Root Certificate Authority 2020", true
	}
	return "", "", false
}

// wellKnownUnmappable says why a well-known ID names no single certificate.
func wellKnownUnmappable(id string) string {
	switch id {
	case "00":
		return "well-known root 00 (None) names no certificate"
	case "01":
		return "well-known root 01 (Unknown) names no certificate"
	case "02":
		return "well-known root 02 (Self-Signed) stands for any self-signed root"
	case "14":
		return "well-known root 14 (Microsoft Trusted Root Store) stands for every root Windows trusts"
	}
	return fmt.Sprintf("well-known root %s is not in Microsoft's table of well-known roots", id)
}

// xnode is one element of a parsed document.
type xnode struct {
	name     string
	attrs    []xml.Attr
	children []*xnode
	// text is the element's character data. Every reader trims it
	// (bytes.TrimSpace): fastTree leaves out white space before the
	// first other text.
	text []byte
	line int
}

// xmlDecoder collects problems with their lines.
type xmlDecoder struct {
	problems []Problem
	seen     map[Problem]bool
	dropped  int
}

// errorf records a problem once, however often a definition is read.
func (d *xmlDecoder) errorf(line int, format string, args ...any) {
	pr := Problem{Line: line, Message: fmt.Sprintf(format, args...)}
	if d.seen[pr] {
		return
	}
	if d.seen == nil {
		d.seen = map[Problem]bool{}
	}
	d.seen[pr] = true
	if len(d.problems) >= maxXMLProblems {
		d.dropped++
		return
	}
	d.problems = append(d.problems, pr)
}

func (d *xmlDecoder) err(source string) *LoadError {
	if len(d.problems) == 0 {
		return nil
	}
	ps := slices.Clone(d.problems)
	slices.SortStableFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
	if d.dropped > 0 {
		ps = append(ps, Problem{Message: fmt.Sprintf("and %d more problems", d.dropped)})
	}
	return &LoadError{Source: source, Problems: ps}
}

// parseTree reads the document into a tree, with the caps of
// internal/limits on nesting depth and element count: with fastTree where
// the document is in its subset, else with encoding/xml (xmlTree).
func parseTree(data []byte, source string, utf16 bool) (*xnode, *LoadError) {
	if root, ok := fastTree(data, utf16); ok {
		return root, nil
	}
	return xmlTree(data, source, utf16)
}

// xmlTree is parseTree with encoding/xml, for any document.
func xmlTree(data []byte, source string, utf16 bool) (*xnode, *LoadError) {
	fail := func(line int, format string, args ...any) (*xnode, *LoadError) {
		return nil, &LoadError{Source: source, Problems: []Problem{{Line: line, Message: fmt.Sprintf(format, args...)}}}
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	// The text is UTF-8 by now (Parse transcoded UTF-16 with a byte order
	// mark): a declared encoding must say what the file was.
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch l := strings.ToLower(label); {
		case utf16 && (l == "utf-16" || l == "utf-16le" || l == "utf-16be" || l == "unicode"):
			return in, nil
		case utf16:
			return nil, fmt.Errorf("the file is UTF-16 (byte order mark) but declares encoding %q", truncate(label, 20))
		}
		return nil, fmt.Errorf("encoding %q is not supported: save the policy as UTF-8 (or UTF-16 with a byte order mark)", truncate(label, 20))
	}
	var root *xnode
	var stack []*xnode
	elements := 0
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return fail(se.Line, "XML syntax: %s", se.Msg)
			}
			return fail(line, "XML: %s", strings.TrimPrefix(err.Error(), "xml: "))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 && root != nil {
				return fail(line, "a second root element <%s>: a policy file holds one SiPolicy element", t.Name.Local)
			}
			if t.Name.Space != siPolicyNS || (len(stack) == 0 && t.Name.Local != "SiPolicy") {
				if len(stack) == 0 {
					return fail(line, "not a WDAC SiPolicy document: the root element is <%s> in namespace %q (want <SiPolicy> in %q)",
						t.Name.Local, t.Name.Space, siPolicyNS)
				}
				return fail(line, "element <%s> is in namespace %q, not the SiPolicy namespace %q", t.Name.Local, t.Name.Space, siPolicyNS)
			}
			if len(stack) >= limits.MaxPolicyDepth {
				return fail(line, "elements nested deeper than %d levels", limits.MaxPolicyDepth)
			}
			elements++
			if elements > limits.MaxPolicyRules {
				return fail(line, "more than %d elements", limits.MaxPolicyRules)
			}
			n := &xnode{name: t.Name.Local, attrs: t.Attr, line: line}
			if len(stack) == 0 {
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.text = append(top.text, t...)
			} else if len(bytes.TrimSpace(bytes.TrimPrefix(t, []byte("\ufeff")))) > 0 {
				return fail(line, "text outside the SiPolicy element")
			}
		case xml.Directive:
			return fail(line, "<!%s...> declarations (DOCTYPE, entities) are not allowed in a policy", firstWord(t))
		}
	}
	if root == nil {
		return fail(0, "empty document: no SiPolicy element")
	}
	return root, nil
}

func firstWord(b []byte) string {
	s := string(b)
	if i := strings.IndexAny(s, " \t\r\n["); i >= 0 {
		s = s[:i]
	}
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// attrAllowed reports whether the attribute a of n is one of allowed,
// reporting one that is not. Namespace declarations and xsi: attributes
// are left out silently.
func (d *xmlDecoder) attrAllowed(n *xnode, a xml.Attr, allowed []string) bool {
	switch {
	case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == "xmlns",
		a.Name.Space == "http://www.w3.org/2001/XMLSchema-instance", a.Name.Space == "http://www.w3.org/XML/1998/namespace":
		return false
	case a.Name.Space != "":
		d.errorf(n.line, "<%s>: unknown attribute %s:%s", n.name, a.Name.Space, a.Name.Local)
		return false
	case !slices.Contains(allowed, a.Name.Local):
		if len(allowed) == 0 {
			d.errorf(n.line, "<%s>: unknown attribute %q (it takes none)", n.name, a.Name.Local)
		} else {
			d.errorf(n.line, "<%s>: unknown attribute %q (known: %s)", n.name, a.Name.Local, strings.Join(allowed, ", "))
		}
		return false
	}
	return true
}

// attrs returns the element's attributes by name, reporting unknown and
// repeated ones. Namespace declarations and xsi: attributes are ignored.
func (d *xmlDecoder) attrs(n *xnode, allowed ...string) map[string]string {
	out := map[string]string{}
	for _, a := range n.attrs {
		if !d.attrAllowed(n, a, allowed) {
			continue
		}
		if _, dup := out[a.Name.Local]; dup {
			d.errorf(n.line, "<%s>: attribute %q repeated", n.name, a.Name.Local)
			continue
		}
		out[a.Name.Local] = a.Value
	}
	return out
}

// xattrs are an element's attributes as attrList reads them: by unprefixed
// name, each once.
type xattrs []xml.Attr

// lookup returns the value of attribute k and whether it is there.
func (a xattrs) lookup(k string) (string, bool) {
	for _, x := range a {
		if x.Name.Local == k {
			return x.Value, true
		}
	}
	return "", false
}

// get returns the value of attribute k ("" if absent).
func (a xattrs) get(k string) string {
	v, _ := a.lookup(k)
	return v
}

// attrList is attrs without a map (for the elements a policy holds by the
// hundred thousand): the element's attributes that attrs would return, in
// document order, with the same reports. It shares n's attributes when it
// drops none.
func (d *xmlDecoder) attrList(n *xnode, allowed ...string) xattrs {
	var list xattrs
	shared := true // list is n.attrs[:len(list)]
	for i, a := range n.attrs {
		if !d.attrAllowed(n, a, allowed) {
			continue
		}
		if _, dup := list.lookup(a.Name.Local); dup {
			d.errorf(n.line, "<%s>: attribute %q repeated", n.name, a.Name.Local)
			continue
		}
		switch {
		case shared && len(list) == i: // every attribute so far kept
			list = xattrs(n.attrs[: i+1 : i+1])
		case shared:
			list = append(slices.Clip(slices.Clone(list)), a)
			shared = false
		default:
			list = append(list, a)
		}
	}
	return list
}

// attr1 is attrs for an element that takes one attribute, without a map:
// the value of name (the first, if repeated) and whether it is there, with
// the same reports as attrs.
func (d *xmlDecoder) attr1(n *xnode, name string) (value string, ok bool) {
	for _, a := range n.attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == "xmlns",
			a.Name.Space == "http://www.w3.org/2001/XMLSchema-instance", a.Name.Space == "http://www.w3.org/XML/1998/namespace":
			continue
		case a.Name.Space != "":
			d.errorf(n.line, "<%s>: unknown attribute %s:%s", n.name, a.Name.Space, a.Name.Local)
			continue
		case a.Name.Local != name:
			d.errorf(n.line, "<%s>: unknown attribute %q (known: %s)", n.name, a.Name.Local, name)
			continue
		}
		if ok {
			d.errorf(n.line, "<%s>: attribute %q repeated", n.name, a.Name.Local)
			continue
		}
		value, ok = a.Value, true
	}
	return value, ok
}

// require1 is require for one attribute's value.
func (d *xmlDecoder) require1(n *xnode, name, value string) bool {
	if strings.TrimSpace(value) == "" {
		d.errorf(n.line, "<%s>: missing attribute %q", n.name, name)
		return false
	}
	return true
}

// require reports a missing required attribute.
func (d *xmlDecoder) require(n *xnode, a map[string]string, names ...string) bool {
	ok := true
	for _, name := range names {
		if strings.TrimSpace(a[name]) == "" {
			d.errorf(n.line, "<%s>: missing attribute %q", n.name, name)
			ok = false
		}
	}
	return ok
}

// children calls the handler registered for each child element and reports
// unknown children, text where the schema allows none, and (for names in
// once) repeated children.
func (d *xmlDecoder) children(n *xnode, once bool, handlers map[string]func(*xnode)) {
	if len(bytes.TrimSpace(n.text)) > 0 {
		d.errorf(n.line, "<%s>: unexpected text %q", n.name, truncate(strings.TrimSpace(string(n.text)), 40))
	}
	seen := map[string]int{}
	for _, c := range n.children {
		h, ok := handlers[c.name]
		if !ok {
			known := make([]string, 0, len(handlers))
			for k := range handlers {
				known = append(known, k)
			}
			sort.Strings(known)
			if len(known) == 0 {
				d.errorf(c.line, "unknown element <%s> in <%s> (it holds no elements)", c.name, n.name)
			} else {
				d.errorf(c.line, "unknown element <%s> in <%s> (known: %s)", c.name, n.name, strings.Join(known, ", "))
			}
			continue
		}
		if prev, dup := seen[c.name]; dup && once {
			d.errorf(c.line, "<%s> repeated in <%s> (first at line %d)", c.name, n.name, prev)
			continue
		}
		seen[c.name] = c.line
		h(c)
	}
}

// text returns a leaf element's text, reporting child elements.
func (d *xmlDecoder) text(n *xnode) string {
	for _, c := range n.children {
		d.errorf(c.line, "unknown element <%s> in <%s> (it holds text only)", c.name, n.name)
	}
	return strings.TrimSpace(string(n.text))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Definitions read from the document.

type xRef struct {
	id   string
	line int
}

type xFileRule struct {
	id    string
	kind  string // Allow, Deny or FileAttrib
	line  int
	attrs xattrs
	// checked is the rule's matcher as read when its definition was
	// checked (read as a deny rule if it is one), for the first rule that
	// uses it with that reading; later ones read it afresh, so that no two
	// rules share a matcher.
	checked    *matcher
	emits      defEmits
	referenced bool // by a scenario or another signer list
}

// defEmits counts the rules a definition (a file rule or a signer)
// yields, by signing scenario and action, without a map keyed by ID.
type defEmits struct {
	first [2][2]firstEmit // [scenario][action]: the first rule emitted
	count int             // rules emitted
	bySc  [2]int          // rules emitted by scenario
}

// firstEmit is where a definition's first rule of a scenario and action
// came from: its reference's line and its index among the rules (+1; 0
// means none yet).
type firstEmit struct {
	line int
	at   int
}

// scenarioIndex indexes defEmits by scenario: user, kernel (a signing
// scenario is one or the other).
func scenarioIndex(sc Scenario) int {
	if sc == ScenarioKernel {
		return 1
	}
	return 0
}

// emitIndex indexes defEmits by scenario and action.
func emitIndex(sc Scenario, a Action) (int, int) {
	i, j := scenarioIndex(sc), 0
	if a == Deny {
		j = 1
	}
	return i, j
}

type xSigner struct {
	id, name      string
	line          int
	rootType      string
	rootValue     string
	rootLine      int
	hasRoot       bool
	ekus          []xRef
	issuer        *string
	publisher     *string
	oemID         *string
	fileAttribs   []xRef
	signTimeAfter string
	emits         defEmits
	referenced    bool
}

type xSignerRef struct {
	signer  xRef
	excepts []xRef
}

type xSignerSet struct {
	allowed []xSignerRef
	denied  []xSignerRef
	files   []xRef
	order   []string // "allowed", "denied", "files" in document order
}

type xScenario struct {
	id          string
	line        int
	scenario    Scenario
	product     xSignerSet
	test        []string // TestSigners, TestSigningSigners if present and not empty
	testSets    []xSignerSet
	minHashAlgo string
	tags        []string // AppID tags, key="value"
}

// xDef is a definition: a file rule or a signer.
type xDef struct {
	file   *xFileRule
	signer *xSigner
}

func (d xDef) referenced() bool {
	if d.file != nil {
		return d.file.referenced
	}
	return d.signer.referenced
}

// mark records that the definition id (if there is one) is referenced.
func (doc *siDoc) mark(id string) {
	if f := doc.files[id]; f != nil {
		f.referenced = true
	} else if s := doc.signers[id]; s != nil {
		s.referenced = true
	}
}

// siDoc is a decoded SiPolicy document, before it becomes a Policy.
type siDoc struct {
	xmlDecoder
	source       string
	friendlyName string
	policyType   string
	typeLine     int
	versionEx    string
	policyID     string
	basePolicyID string
	policyTypeID string
	settingName  string
	options      []string
	ekus         map[string]string // ID -> dotted OID
	ekuLines     map[string]int
	files        map[string]*xFileRule
	signers      map[string]*xSigner
	ids          map[string]int // file rule and signer IDs -> line
	defs         []xDef         // the file rules and signers, in document order
	scenarios    []*xScenario
	otherSigners map[string][]xRef // UpdatePolicySigners, CiSigners, SupplementalPolicySigners
	notes        []Note
}

var (
	guidPattern     = regexp.MustCompile(`^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$`)
	bareGUIDPattern = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$`)
)

// decodeSiPolicy reads the document's definitions and checks its structure.
func decodeSiPolicy(data []byte, source string, utf16 bool) (*siDoc, *LoadError) {
	root, lerr := parseTree(data, source, utf16)
	if lerr != nil {
		return nil, lerr
	}
	// Size the maps of definitions once (a large policy's would otherwise
	// grow through a dozen rehashes).
	nfiles, nsigners := 0, 0
	for _, c := range root.children {
		switch c.name {
		case "FileRules":
			nfiles += len(c.children)
		case "Signers":
			nsigners += len(c.children)
		}
	}
	doc := &siDoc{source: source, ekus: map[string]string{}, ekuLines: map[string]int{},
		files: make(map[string]*xFileRule, nfiles), signers: make(map[string]*xSigner, nsigners), ids: make(map[string]int, nfiles+nsigners),
		otherSigners: map[string][]xRef{}}
	a := doc.attrs(root, "FriendlyName", "PolicyType")
	doc.friendlyName = strings.TrimSpace(a["FriendlyName"])
	doc.policyType = a["PolicyType"]
	doc.typeLine = root.line
	guid := func(out *string) func(*xnode) {
		return func(n *xnode) {
			doc.attrs(n)
			s := strings.ToUpper(doc.text(n))
			if bareGUIDPattern.MatchString(s) {
				// cipolicy.xsd's GuidType wants braces and Microsoft's tools
				// write them, but read the element as a string (the WDAC
				// Wizard's xsd-generated SiPolicy class) and parse it as a
				// GUID, braces or not: the same GUID, with a warning.
				doc.notes = append(doc.notes, Note{Line: n.line, Message: fmt.Sprintf(
					"<%s> %s has no braces: cipolicy.xsd requires {%s}, as Microsoft's tools write it; csv reads it as that GUID", n.name, s, s)})
				s = "{" + s + "}"
			}
			if !guidPattern.MatchString(s) {
				doc.errorf(n.line, "<%s> %q is not a GUID in braces, such as {2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}", n.name, truncate(s, 60))
				return
			}
			*out = s
		}
	}
	var platformID string
	doc.children(root, true, map[string]func(*xnode){
		"VersionEx": func(n *xnode) {
			doc.attrs(n)
			doc.versionEx = doc.text(n)
			if _, err := ParseVersion(doc.versionEx); err != nil || strings.Count(doc.versionEx, ".") != 3 {
				doc.errorf(n.line, "<VersionEx> %q: want four dot-separated numbers from 0 to 65535", truncate(doc.versionEx, 60))
			}
		},
		"PolicyTypeID": guid(&doc.policyTypeID),
		"PlatformID":   guid(&platformID),
		"PolicyID":     guid(&doc.policyID),
		"BasePolicyID": guid(&doc.basePolicyID),
		"Rules":        doc.rules,
		"EKUs":         doc.ekuList,
		"FileRules":    doc.fileRules,
		"Signers":      doc.signerList,
		"SigningScenarios": func(n *xnode) {
			doc.attrs(n)
			doc.children(n, false, map[string]func(*xnode){"SigningScenario": doc.scenario})
		},
		"UpdatePolicySigners":       doc.signerRefs("UpdatePolicySigner"),
		"CiSigners":                 doc.signerRefs("CiSigner"),
		"SupplementalPolicySigners": doc.signerRefs("SupplementalPolicySigner"),
		"HvciOptions": func(n *xnode) {
			doc.attrs(n)
			if _, err := strconv.ParseUint(doc.text(n), 10, 32); err != nil {
				doc.errorf(n.line, "<HvciOptions> %q is not a number", truncate(doc.text(n), 40))
			}
		},
		"Settings": doc.settings,
		"Macros": func(n *xnode) {
			doc.attrs(n)
			doc.children(n, false, map[string]func(*xnode){"Macro": func(m *xnode) {
				ma := doc.attrs(m, "Id", "Value")
				doc.require(m, ma, "Id")
				doc.children(m, false, nil)
			}})
		},
	})
	return doc, doc.err(source)
}

func (doc *siDoc) rules(n *xnode) {
	doc.attrs(n)
	doc.children(n, false, map[string]func(*xnode){"Rule": func(r *xnode) {
		doc.attrs(r)
		count := 0
		doc.children(r, true, map[string]func(*xnode){"Option": func(o *xnode) {
			doc.attrs(o)
			opt := doc.text(o)
			count++
			if opt == "" {
				doc.errorf(o.line, "empty <Option>")
				return
			}
			doc.options = append(doc.options, opt)
		}})
		if count == 0 {
			doc.errorf(r.line, "<Rule> without an <Option>")
		}
	}})
}

func (doc *siDoc) ekuList(n *xnode) {
	doc.attrs(n)
	doc.children(n, false, map[string]func(*xnode){"EKU": func(e *xnode) {
		a := doc.attrs(e, "ID", "Value", "FriendlyName")
		doc.children(e, false, nil)
		if !doc.require(e, a, "ID", "Value") {
			return
		}
		id := a["ID"]
		if prev, dup := doc.ekuLines[id]; dup {
			doc.errorf(e.line, "duplicate EKU ID %s (first at line %d)", id, prev)
			return
		}
		doc.ekuLines[id] = e.line
		oid, err := decodeEKU(a["Value"])
		if err != nil {
			doc.errorf(e.line, "EKU %s: Value %q: %v", id, truncate(a["Value"], 80), err)
			return
		}
		doc.ekus[id] = oid
	}})
}

// decodeEKU reads a CertEKU value: the byte 01, the length of the OID's DER
// contents, then those contents (010A2B0601040182370A0306 is
// 1.3.6.1.4.1.311.10.3.6).
func decodeEKU(s string) (string, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return "", errors.New("not hexadecimal")
	}
	if len(b) < 3 || b[0] != 0x01 {
		return "", errors.New("want 01, a length and the OID's DER contents")
	}
	if int(b[1]) != len(b)-2 {
		return "", fmt.Errorf("length byte says %d bytes of OID, %d follow", b[1], len(b)-2)
	}
	der := append([]byte{0x06, b[1]}, b[2:]...)
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(der, &oid)
	if err != nil || len(rest) > 0 {
		return "", errors.New("not a valid object identifier")
	}
	return oid.String(), nil
}

// fileRuleAttrs are the attributes of Allow, Deny and FileAttrib.
var fileRuleAttrs = []string{"ID", "FriendlyName", "FileName", "InternalName", "FileDescription", "ProductName",
	"PackageFamilyName", "PackageVersion", "MinimumFileVersion", "MaximumFileVersion", "Hash", "AppIDs", "FilePath"}

func (doc *siDoc) defineID(id string, line int, what string) bool {
	if prev, dup := doc.ids[id]; dup {
		doc.errorf(line, "duplicate ID %s (first at line %d): %s", id, prev, what)
		return false
	}
	doc.ids[id] = line
	return true
}

func (doc *siDoc) fileRules(n *xnode) {
	doc.attrs(n)
	def := func(kind string) func(*xnode) {
		return func(f *xnode) {
			a := doc.attrList(f, fileRuleAttrs...)
			doc.children(f, false, nil)
			id := a.get("ID")
			if !doc.require1(f, "ID", id) || !doc.defineID(id, f.line, "file rules and signers share one ID space") {
				return
			}
			x := &xFileRule{id: id, kind: kind, line: f.line, attrs: a}
			doc.files[x.id] = x
			doc.defs = append(doc.defs, xDef{file: x})
		}
	}
	doc.children(n, false, map[string]func(*xnode){"Allow": def("Allow"), "Deny": def("Deny"), "FileAttrib": def("FileAttrib")})
}

func (doc *siDoc) signerList(n *xnode) {
	doc.attrs(n)
	doc.children(n, false, map[string]func(*xnode){"Signer": func(sn *xnode) {
		a := doc.attrs(sn, "ID", "Name", "SignTimeAfter")
		s := &xSigner{id: a["ID"], name: a["Name"], line: sn.line, signTimeAfter: a["SignTimeAfter"]}
		value := func(out **string) func(*xnode) {
			return func(c *xnode) {
				ca := doc.attrs(c, "Value")
				doc.children(c, false, nil)
				if _, ok := ca["Value"]; !ok {
					doc.errorf(c.line, "<%s>: missing attribute \"Value\"", c.name)
					return
				}
				v := ca["Value"]
				*out = &v
			}
		}
		doc.children(sn, false, map[string]func(*xnode){
			"CertRoot": func(c *xnode) {
				ca := doc.attrs(c, "Type", "Value")
				doc.children(c, false, nil)
				if s.hasRoot {
					doc.errorf(c.line, "signer %s has several <CertRoot>", s.id)
					return
				}
				if doc.require(c, ca, "Type", "Value") {
					s.hasRoot, s.rootType, s.rootValue, s.rootLine = true, ca["Type"], strings.TrimSpace(ca["Value"]), c.line
				}
			},
			"CertEKU": func(c *xnode) {
				ca := doc.attrs(c, "ID")
				doc.children(c, false, nil)
				if doc.require(c, ca, "ID") {
					s.ekus = append(s.ekus, xRef{ca["ID"], c.line})
				}
			},
			"CertIssuer":    value(&s.issuer),
			"CertPublisher": value(&s.publisher),
			"CertOemID":     value(&s.oemID),
			"FileAttribRef": func(c *xnode) {
				ca := doc.attrs(c, "RuleID")
				doc.children(c, false, nil)
				if doc.require(c, ca, "RuleID") {
					s.fileAttribs = append(s.fileAttribs, xRef{ca["RuleID"], c.line})
				}
			},
		})
		if !doc.require(sn, a, "ID") || !doc.defineID(s.id, sn.line, "file rules and signers share one ID space") {
			return
		}
		if !s.hasRoot {
			doc.errorf(sn.line, "signer %s has no <CertRoot>", s.id)
		}
		doc.signers[s.id] = s
		doc.defs = append(doc.defs, xDef{signer: s})
	}})
}

func (doc *siDoc) signerRefs(child string) func(*xnode) {
	return func(n *xnode) {
		doc.attrs(n)
		doc.children(n, false, map[string]func(*xnode){child: func(c *xnode) {
			a := doc.attrs(c, "SignerId")
			doc.children(c, false, nil)
			if doc.require(c, a, "SignerId") {
				doc.otherSigners[n.name] = append(doc.otherSigners[n.name], xRef{a["SignerId"], c.line})
			}
		}})
	}
}

func (doc *siDoc) settings(n *xnode) {
	doc.attrs(n)
	doc.children(n, false, map[string]func(*xnode){"Setting": func(s *xnode) {
		a := doc.attrs(s, "Provider", "Key", "ValueName")
		doc.require(s, a, "Provider", "Key", "ValueName")
		var str *string
		doc.children(s, true, map[string]func(*xnode){"Value": func(v *xnode) {
			doc.attrs(v)
			count := 0
			leaf := func(c *xnode) {
				doc.attrs(c)
				t := doc.text(c)
				count++
				if c.name == "String" {
					str = &t
				}
			}
			doc.children(v, true, map[string]func(*xnode){"Boolean": leaf, "DWord": leaf, "Binary": leaf, "String": leaf})
			if count != 1 {
				doc.errorf(v.line, "<Value> holds %d values (want one of Boolean, DWord, Binary, String)", count)
			}
		}})
		if a["Provider"] == "PolicyInfo" && a["Key"] == "Information" && a["ValueName"] == "Name" && str != nil {
			doc.settingName = *str
		}
	}})
}

// ruleScenarios are the scenarios a rule of a WDAC signing scenario applies
// to: the kernel-mode scenario (131) also judges boot components (UEFI
// applications and drivers, which the attestation verifier judges), the
// code Windows' own boot path trusts by the same rules.
func ruleScenarios(sc Scenario) []Scenario {
	if sc == ScenarioKernel {
		return []Scenario{ScenarioKernel, ScenarioBoot}
	}
	return []Scenario{sc}
}

func (doc *siDoc) scenario(n *xnode) {
	a := doc.attrs(n, "ID", "FriendlyName", "Value", "InheritedScenarios", "MinimumHashAlgorithm")
	sc := &xScenario{id: a["ID"], line: n.line, minHashAlgo: a["MinimumHashAlgorithm"]}
	doc.require(n, a, "ID", "Value")
	switch v, err := strconv.ParseUint(strings.TrimSpace(a["Value"]), 10, 8); {
	case a["Value"] == "":
	case err != nil:
		doc.errorf(n.line, "signing scenario %s: Value %q is not a number from 0 to 255", sc.id, truncate(a["Value"], 20))
	case v == scenarioValueKernel:
		sc.scenario = ScenarioKernel
	case v == scenarioValueUser:
		sc.scenario = ScenarioUser
	default:
		doc.errorf(n.line, "signing scenario %s: unknown Value %d (want 131, kernel mode, or 12, user mode)", sc.id, v)
	}
	if a["InheritedScenarios"] != "" {
		doc.errorf(n.line, "signing scenario %s: InheritedScenarios is not supported (csv would not apply the inherited rules)", sc.id)
	}
	for _, prev := range doc.scenarios {
		if sc.scenario != "" && prev.scenario == sc.scenario {
			doc.errorf(n.line, "a second %s-mode signing scenario (the first is at line %d)", sc.scenario, prev.line)
		}
	}
	seenProduct := false
	doc.children(n, true, map[string]func(*xnode){
		"ProductSigners": func(c *xnode) {
			seenProduct = true
			sc.product = doc.signerSet(c)
		},
		"TestSigners":        func(c *xnode) { doc.testSigners(sc, c) },
		"TestSigningSigners": func(c *xnode) { doc.testSigners(sc, c) },
		"AppIDTags":          func(c *xnode) { doc.appIDTags(sc, c) },
	})
	if !seenProduct {
		doc.errorf(n.line, "signing scenario %s has no <ProductSigners>", sc.id)
	}
	doc.scenarios = append(doc.scenarios, sc)
}

// appIDTags reads a scenario's AppIDTags (the current schema: an
// EnforceDLL attribute, AppIDTag elements with a Key and a Value). Tags
// label the processes the scenario's rules match, for other features to
// act on; they allow and block nothing.
func (doc *siDoc) appIDTags(sc *xScenario, n *xnode) {
	a := doc.attrs(n, "EnforceDLL")
	if v, ok := a["EnforceDLL"]; ok && v != "true" && v != "false" && v != "1" && v != "0" {
		doc.errorf(n.line, "<AppIDTags>: EnforceDLL %q is not a boolean", truncate(v, 20))
	}
	doc.children(n, false, map[string]func(*xnode){"AppIDTag": func(t *xnode) {
		ta := doc.attrs(t, "Key", "Value")
		doc.children(t, false, nil)
		if doc.require(t, ta, "Key") {
			sc.tags = append(sc.tags, fmt.Sprintf("%s=%s", strconv.Quote(ta["Key"]), strconv.Quote(ta["Value"])))
		}
	}})
	if len(sc.tags) == 0 {
		doc.errorf(n.line, "<AppIDTags> without an <AppIDTag>")
	}
}

func (doc *siDoc) testSigners(sc *xScenario, n *xnode) {
	set := doc.signerSet(n)
	if len(set.allowed)+len(set.denied)+len(set.files) > 0 {
		sc.test = append(sc.test, n.name)
		sc.testSets = append(sc.testSets, set)
	}
}

func (doc *siDoc) signerSet(n *xnode) xSignerSet {
	doc.attrs(n)
	var set xSignerSet
	signers := func(child, except, exceptAttr string, out *[]xSignerRef) func(*xnode) {
		return func(list *xnode) {
			doc.attrs(list, "Workaround")
			doc.children(list, false, map[string]func(*xnode){child: func(c *xnode) {
				id, _ := doc.attr1(c, "SignerId")
				ref := xSignerRef{signer: xRef{id, c.line}}
				doc.children(c, false, map[string]func(*xnode){except: func(e *xnode) {
					x, _ := doc.attr1(e, exceptAttr)
					doc.children(e, false, nil)
					if doc.require1(e, exceptAttr, x) {
						ref.excepts = append(ref.excepts, xRef{x, e.line})
					}
				}})
				if doc.require1(c, "SignerId", id) {
					*out = append(*out, ref)
				}
			}})
		}
	}
	doc.children(n, true, map[string]func(*xnode){
		"AllowedSigners": func(c *xnode) {
			set.order = append(set.order, "allowed")
			signers("AllowedSigner", "ExceptDenyRule", "DenyRuleID", &set.allowed)(c)
		},
		"DeniedSigners": func(c *xnode) {
			set.order = append(set.order, "denied")
			signers("DeniedSigner", "ExceptAllowRule", "AllowRuleID", &set.denied)(c)
		},
		"FileRulesRef": func(c *xnode) {
			set.order = append(set.order, "files")
			doc.attrs(c, "Workaround")
			doc.children(c, false, map[string]func(*xnode){"FileRuleRef": func(r *xnode) {
				id, _ := doc.attr1(r, "RuleID")
				doc.children(r, false, nil)
				if doc.require1(r, "RuleID", id) {
					set.files = append(set.files, xRef{id, r.line})
				}
			}})
		},
	})
	return set
}

// parseXML reads WDAC SiPolicy XML.
func parseXML(data []byte, source string, utf16 bool) (*Policy, error) {
	doc, lerr := decodeSiPolicy(data, source, utf16)
	if lerr != nil {
		return nil, lerr
	}
	p := doc.policy()
	if lerr := doc.err(source); lerr != nil {
		return nil, lerr
	}
	return p, nil
}

// policy builds the Policy from a decoded document, reporting references to
// IDs that do not exist.
func (doc *siDoc) policy() *Policy {
	p := &Policy{Format: "sipolicy", WDACCompatible: true, Version: doc.versionEx, Options: doc.options, Mode: Enforce}
	for _, o := range doc.options {
		if strings.EqualFold(o, "Enabled:Audit Mode") {
			p.Mode = Audit
		}
	}

	// Identity. Multiple-policy-format files carry PolicyID and
	// BasePolicyID; single-policy-format files (such as Microsoft's
	// recommended block list) carry only PolicyTypeID.
	p.ID = doc.policyID
	if p.ID == "" {
		p.ID = doc.policyTypeID
	}
	if p.ID == "" {
		doc.errorf(doc.typeLine, "no <PolicyID> (or <PolicyTypeID>): a policy needs an ID")
	}
	switch doc.policyType {
	case "Base Policy":
		p.Type = Base
		if doc.basePolicyID != "" && doc.basePolicyID != p.ID {
			doc.errorf(doc.typeLine, "a base policy's BasePolicyID (%s) must equal its PolicyID (%s); a policy that extends another is a \"Supplemental Policy\"", doc.basePolicyID, p.ID)
		}
	case "Supplemental Policy":
		p.Type = Supplemental
		switch {
		case doc.basePolicyID == "":
			doc.errorf(doc.typeLine, "a supplemental policy must name its base in <BasePolicyID>")
		case doc.basePolicyID == p.ID:
			doc.errorf(doc.typeLine, "a supplemental policy's BasePolicyID must be its base's PolicyID, not its own")
		}
		p.BaseID = doc.basePolicyID
	case "":
		// Before the PolicyType attribute existed, a supplemental policy was
		// one whose BasePolicyID differs from its PolicyID.
		p.Type = Base
		if doc.basePolicyID != "" && doc.basePolicyID != p.ID {
			p.Type, p.BaseID = Supplemental, doc.basePolicyID
		}
	case "AppID Tagging Policy":
		// Tags processes for other features; allows and blocks nothing.
		p.Type = AppIDTagging
		if doc.basePolicyID != "" && doc.basePolicyID != p.ID {
			doc.errorf(doc.typeLine, "an AppID tagging policy's BasePolicyID (%s) must equal its PolicyID (%s)", doc.basePolicyID, p.ID)
		}
		doc.notes = append(doc.notes, Note{Line: doc.typeLine, Message: "an AppID tagging policy tags processes and allows or blocks nothing: validate judges nothing with it (give it beside the base policies it accompanies)"})
	default:
		doc.errorf(doc.typeLine, "unknown PolicyType %q (want \"Base Policy\", \"Supplemental Policy\" or \"AppID Tagging Policy\")", doc.policyType)
	}
	p.Name = doc.settingName
	if p.Name == "" {
		p.Name = doc.friendlyName
	}
	if p.Name == "" {
		p.Name = p.ID
	}

	flightDisabled := slices.ContainsFunc(doc.options, func(o string) bool { return strings.EqualFold(o, "Disabled:Flight Signing") })

	// Check every definition, whether or not a scenario uses it: a
	// malformed value is an error wherever it is.
	for _, d := range doc.defs { // in document order, which is line order
		if f := d.file; f != nil {
			m := doc.fileMatcher(f, f.kind == "Deny")
			f.checked = &m
		} else {
			doc.signerMatcher(d.signer, false, flightDisabled)
		}
	}
	// The rules in the order emitted, and the definition and scenario of
	// each (the same index).
	type emitted struct {
		def  *defEmits
		base string
		sc   Scenario
	}
	nrefs := 0
	for _, sc := range doc.scenarios {
		nrefs += len(sc.product.allowed) + len(sc.product.denied) + len(sc.product.files)
	}
	out := make([]emitted, 0, nrefs)
	rules := make([]Rule, 0, nrefs)
	emit := func(def *defEmits, base string, sc Scenario, refLine int, r Rule) {
		i, j := emitIndex(sc, r.Action)
		if prev := def.first[i][j]; prev.at > 0 {
			// ruleKey only for repeats: it costs as much as the rest of
			// the load.
			if ruleKey(&rules[prev.at-1]) == ruleKey(&r) {
				// The same rule twice (Microsoft's own policies list some
				// FileRuleRef twice): the repeat changes nothing.
				doc.notes = append(doc.notes, Note{Line: refLine, Rule: base, Message: fmt.Sprintf(
					"listed twice in the %s-mode scenario (first at line %d): the repeat changes nothing and is ignored", sc, prev.line)})
				return
			}
			doc.errorf(refLine, "%s is listed twice in the %s-mode scenario with different exceptions (first at line %d): csv cannot tell which Windows applies", base, sc, prev.line)
			return
		}
		def.first[i][j] = firstEmit{refLine, len(out) + 1}
		def.count++
		def.bySc[i]++
		out = append(out, emitted{def: def, base: base, sc: sc})
		rules = append(rules, r)
	}
	dropped := 0
	var droppedIDs []string
	drop := func(line int, id, what string) {
		dropped++
		if dropped <= 5 {
			doc.notes = append(doc.notes, Note{Line: line, Rule: id, Message: what + " in a supplemental policy: Windows ignores deny rules in supplemental policies, so csv dropped it"})
		} else {
			droppedIDs = append(droppedIDs, id)
		}
	}

	for _, sc := range doc.scenarios {
		if sc.scenario == "" {
			continue
		}
		set := sc.product
		for _, part := range set.order {
			switch part {
			case "allowed", "denied":
				deny := part == "denied"
				refs := set.allowed
				if deny {
					refs = set.denied
				}
				for _, ref := range refs {
					s := doc.signers[ref.signer.id]
					if s == nil {
						doc.errorf(ref.signer.line, "unknown signer %s referenced by %s", ref.signer.id, signerElem(deny))
						continue
					}
					s.referenced = true
					// Signer rules judge PE Authenticode and ELF appended
					// signatures alike; a signer limited to FileAttribs
					// can only match PE files, which have them.
					r := Rule{ID: s.id, Action: Allow, Scenarios: ruleScenarios(sc.scenario),
						Description: s.name, Line: s.line}
					if deny {
						r.Action = Deny
					}
					m, why := doc.signerMatcher(s, deny, flightDisabled)
					r.Signer, r.Unsupported = m, why
					r.Except = doc.exceptions(ref, deny)
					if !deny {
						for _, x := range r.Except {
							if x.Unsupported != "" && r.Unsupported == "" {
								r.Unsupported = fmt.Sprintf("its exception %s cannot be judged (%s), so the allow cannot be limited as Windows limits it", x.ID, x.Unsupported)
							}
						}
					}
					if deny && p.Type == Supplemental {
						drop(s.line, s.id, "denied signer")
						continue
					}
					emit(&s.emits, s.id, sc.scenario, ref.signer.line, r)
				}
			case "files":
				for _, ref := range set.files {
					f := doc.files[ref.id]
					if f == nil {
						doc.errorf(ref.line, "unknown file rule %s referenced by FileRuleRef", ref.id)
						continue
					}
					f.referenced = true
					if f.kind == "FileAttrib" {
						doc.errorf(ref.line, "FileRuleRef references %s, a FileAttrib: FileAttrib rules are used through a signer's FileAttribRef", f.id)
						continue
					}
					deny := f.kind == "Deny"
					if deny && p.Type == Supplemental {
						drop(f.line, f.id, "deny rule")
						continue
					}
					r := Rule{ID: f.id, Action: Allow, Scenarios: ruleScenarios(sc.scenario), Formats: []Format{FormatPE},
						Description: f.attrs.get("FriendlyName"), Line: f.line}
					if deny {
						r.Action = Deny
					}
					var m matcher
					if f.checked != nil {
						m, f.checked = *f.checked, nil
					} else {
						m = doc.fileMatcher(f, deny)
					}
					r.Hash, r.File, r.All, r.Unsupported = m.hash, m.file, m.all, m.unsupported
					if r.Hash != nil && r.Hash.Algorithm.FirstPage() {
						// Boot components are judged from event logs,
						// which carry whole-image digests only: a page
						// hash judges files (New-CIPolicy writes the
						// whole-image hashes of the same file beside it).
						r.Scenarios = slices.DeleteFunc(r.Scenarios, func(sc Scenario) bool { return sc == ScenarioBoot })
					}
					if r.Hash != nil && sc.scenario == ScenarioUser && !r.Hash.Algorithm.FirstPage() {
						// A user-mode hash rule is a script's SIP hash too.
						r.Formats = append(r.Formats, FormatPowerShell)
					}
					emit(&f.emits, f.id, sc.scenario, ref.line, r)
				}
			}
		}
		// Test signers apply only on machines with test signing enabled;
		// their references must still be valid.
		if len(sc.test) > 0 {
			doc.notes = append(doc.notes, Note{Line: sc.line, Message: fmt.Sprintf(
				"signing scenario %s: %s apply only on machines with test signing enabled; csv does not judge them", sc.id, strings.Join(sc.test, " and "))})
		}
		if sc.minHashAlgo != "" {
			doc.notes = append(doc.notes, Note{Line: sc.line, Message: fmt.Sprintf(
				"signing scenario %s: MinimumHashAlgorithm %s is not applied by csv", sc.id, sc.minHashAlgo)})
		}
		if len(sc.tags) > 0 {
			doc.notes = append(doc.notes, Note{Line: sc.line, Message: fmt.Sprintf(
				"signing scenario %s: AppID tags %s label the processes its rules match and authorize nothing: csv does not judge with them",
				sc.id, listIDs(sc.tags, 10))})
		}
	}
	if len(droppedIDs) > 0 {
		doc.notes = append(doc.notes, Note{Message: fmt.Sprintf(
			"%d more deny rules dropped (Windows ignores deny rules in supplemental policies): %s", len(droppedIDs), listIDs(droppedIDs, 10))})
	}

	// Signers used only to sign policies, or as CI signers.
	for _, kind := range []string{"UpdatePolicySigners", "CiSigners", "SupplementalPolicySigners"} {
		refs := doc.otherSigners[kind]
		for _, ref := range refs {
			if doc.signers[ref.id] == nil {
				doc.errorf(ref.line, "unknown signer %s referenced by %s", ref.id, strings.TrimSuffix(kind, "s"))
				continue
			}
			doc.mark(ref.id)
		}
		if len(refs) > 0 {
			doc.notes = append(doc.notes, Note{Line: refs[0].line, Message: fmt.Sprintf(
				"%s are not code rules; csv does not judge files with them: %s", otherSignersMeaning(kind), listIDs(refIDs(refs), 5))})
		}
	}
	for _, sc := range doc.scenarios {
		doc.checkTestRefs(sc)
	}

	// Unreferenced definitions: Windows ignores them.
	var unusedSigners, unusedFiles []string // in line order
	for _, d := range doc.defs {
		switch {
		case d.referenced():
		case d.signer != nil:
			unusedSigners = append(unusedSigners, d.signer.id)
		case d.file.kind != "FileAttrib":
			unusedFiles = append(unusedFiles, d.file.id)
		}
	}
	for _, u := range []struct {
		ids  []string
		what string
	}{{unusedSigners, "signer"}, {unusedFiles, "file rule"}} {
		if len(u.ids) == 0 {
			continue
		}
		if len(u.ids) == 1 {
			doc.notes = append(doc.notes, Note{Line: doc.ids[u.ids[0]], Rule: u.ids[0], Message: fmt.Sprintf("%s is referenced by no signing scenario: Windows ignores it, and so does csv", u.what)})
			continue
		}
		doc.notes = append(doc.notes, Note{Line: doc.ids[u.ids[0]], Message: fmt.Sprintf(
			"%d %ss are referenced by no signing scenario: Windows ignores them, and so does csv: %s", len(u.ids), u.what, listIDs(u.ids, 10))})
	}

	// Rule IDs: the definition's ID, qualified by scenario (and action)
	// where one definition yields several rules.
	ids := make(map[string]bool, len(out))
	kept := 0 // the rules are kept in place
	for i, e := range out {
		r := &rules[i]
		switch {
		case e.def.count == 1:
		case e.def.bySc[scenarioIndex(e.sc)] == 1:
			r.ID = e.base + ":" + string(e.sc)
		default:
			r.ID = e.base + ":" + string(e.sc) + ":" + string(r.Action)
		}
		if ids[r.ID] {
			doc.errorf(r.Line, "rule ID %s would not be unique: rename the definition", r.ID)
			continue
		}
		ids[r.ID] = true
		rules[kept] = *r
		kept++
	}
	if kept > 0 {
		p.Rules = rules[:kept:kept]
	}
	if len(p.Rules) > limits.MaxPolicyRules {
		doc.errorf(0, "%d rules exceed the limit of %d", len(p.Rules), limits.MaxPolicyRules)
	}
	slices.SortStableFunc(doc.notes, func(a, b Note) int { return a.Line - b.Line })
	p.Notes = doc.notes
	return p
}

// checkTestRefs validates the references of TestSigners and
// TestSigningSigners, which are otherwise ignored.
func (doc *siDoc) checkTestRefs(sc *xScenario) {
	for _, set := range sc.testSets {
		for _, refs := range [][]xSignerRef{set.allowed, set.denied} {
			for _, ref := range refs {
				if doc.signers[ref.signer.id] == nil {
					doc.errorf(ref.signer.line, "unknown signer %s referenced in %s", ref.signer.id, sc.id)
				}
				doc.mark(ref.signer.id)
				for _, x := range ref.excepts {
					if doc.files[x.id] == nil {
						doc.errorf(x.line, "unknown file rule %s referenced in %s", x.id, sc.id)
					}
					doc.mark(x.id)
				}
			}
		}
		for _, ref := range set.files {
			if doc.files[ref.id] == nil {
				doc.errorf(ref.line, "unknown file rule %s referenced in %s", ref.id, sc.id)
			}
			doc.mark(ref.id)
		}
	}
}

func signerElem(deny bool) string {
	if deny {
		return "DeniedSigner"
	}
	return "AllowedSigner"
}

func otherSignersMeaning(kind string) string {
	switch kind {
	case "UpdatePolicySigners":
		return "UpdatePolicySigners (who may sign updates of this policy)"
	case "SupplementalPolicySigners":
		return "SupplementalPolicySigners (who may sign its supplemental policies)"
	}
	return "CiSigners (signers Windows trusts for enterprise signing levels)"
}

func refIDs(refs []xRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.id
	}
	return out
}

func listIDs(ids []string, n int) string {
	if len(ids) <= n {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:n], ", ") + fmt.Sprintf(" and %d more", len(ids)-n)
}

// exceptions resolves an AllowedSigner's ExceptDenyRule references (deny
// file rules) or a DeniedSigner's ExceptAllowRule references (allow file
// rules).
func (doc *siDoc) exceptions(ref xSignerRef, deny bool) []Rule {
	var out []Rule
	want, elem := "Deny", "ExceptDenyRule"
	if deny {
		want, elem = "Allow", "ExceptAllowRule"
	}
	for _, x := range ref.excepts {
		f := doc.files[x.id]
		switch {
		case f == nil:
			doc.errorf(x.line, "unknown file rule %s referenced by %s", x.id, elem)
			continue
		case f.kind != want:
			doc.errorf(x.line, "%s references %s, which is %s rule (want %s)", elem, x.id, article(f.kind), article(want))
			continue
		}
		f.referenced = true
		// An ExceptDenyRule is a deny rule: its versions read as deny
		// rules' do.
		m := doc.fileMatcher(f, !deny)
		out = append(out, Rule{ID: f.id, Hash: m.hash, File: m.file, All: m.all, Unsupported: m.unsupported,
			Formats: []Format{FormatPE}, Description: f.attrs.get("FriendlyName"), Line: f.line})
		if m.hash != nil {
			// The signer rule's scenarios scope it; a hash is a script's
			// SIP hash in user mode.
			out[len(out)-1].Formats = append(out[len(out)-1].Formats, FormatPowerShell)
		}
	}
	return out
}

func article(kind string) string {
	if kind == "Allow" {
		return "an Allow"
	}
	return "a " + kind
}

// matcher is what a file rule matches.
type matcher struct {
	hash        *HashMatch
	file        *FileAttrMatch
	all         bool // FileName="*" without versions: every file
	unsupported string
}

// versionBounds returns the inclusive version bounds of a file rule, as
// Windows reads them. Microsoft, "Understand App Control for Business policy
// rules and file rules" (note under Table 2,
// https://learn.microsoft.com/windows/security/application-security/application-control/app-control-for-business/design/select-types-of-rules-to-create):
//
//   - both MinimumFileVersion and MaximumFileVersion: allow and deny rules
//     match versions from the minimum to the maximum;
//   - MinimumFileVersion only: allow rules match that version and above,
//     deny rules that version and BELOW;
//   - MaximumFileVersion only: allow rules match that version and below,
//     deny rules that version and ABOVE.
//
// So MinimumFileVersion="65535.65535.65535.65535" on a deny rule (as in
// WinSiPolicy.xml) denies every version.
func versionBounds(minV, maxV *Version, deny bool) (lo, hi *Version) {
	switch {
	case !deny, minV != nil && maxV != nil:
		return minV, maxV
	case minV != nil:
		return nil, minV
	case maxV != nil:
		return maxV, nil
	}
	return nil, nil
}

// pageHash reports whether a hash rule holds a page hash. The XML carries no
// algorithm label: SHA1 and SHA256 page hashes have the lengths of SHA1 and
// SHA256 image hashes. The only signal in real files is the FriendlyName
// New-CIPolicy writes ("<file> Hash Page Sha1", "<file> Hash Page Sha256";
// whole-image hashes are "<file> Hash Sha1", "<file> Hash Sha256"). A page
// hash whose FriendlyName was edited is read as an image hash, and an
// image hash named as a page hash as a page hash: the rule then never
// matches (no file's hash of the other kind equals it).
func pageHash(friendlyName, id string) bool {
	if !isASCII(friendlyName) || !isASCII(id) {
		n := strings.ToLower(friendlyName)
		return strings.Contains(n, "hash page") || strings.Contains(n, "page hash") || strings.HasSuffix(strings.ToUpper(id), "_PAGE")
	}
	// The same without a lowered copy of every rule's name.
	return containsFoldASCII(friendlyName, "hash page") || containsFoldASCII(friendlyName, "page hash") ||
		len(id) >= 5 && strings.EqualFold(id[len(id)-5:], "_PAGE")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// containsFoldASCII reports whether s contains sub (lower-case ASCII)
// under ASCII case folding.
func containsFoldASCII(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

// fileMatcher maps a file rule (Allow, Deny or FileAttrib) to a matcher.
// deny says whether it is read as a deny rule (a Deny rule, an
// ExceptDenyRule, or a FileAttrib of a denied signer), which changes what
// its versions mean.
func (doc *siDoc) fileMatcher(f *xFileRule, deny bool) matcher {
	a := f.attrs
	var unsup []string
	if v := a.get("FilePath"); v != "" {
		unsup = append(unsup, fmt.Sprintf("FilePath rule (%q): it matches by where the file lies on the Windows machine, which csv does not know", v))
	}
	if a.get("PackageFamilyName") != "" || a.get("PackageVersion") != "" {
		unsup = append(unsup, fmt.Sprintf("packaged app rule (PackageFamilyName %q): it matches the package a file was installed from", a.get("PackageFamilyName")))
	}
	if v := a.get("AppIDs"); v != "" {
		unsup = append(unsup, fmt.Sprintf("AppIDs %q: AppID tags are not judged", v))
	}
	var names []string
	for _, k := range []string{"FileName", "InternalName", "FileDescription", "ProductName"} {
		if _, ok := a.lookup(k); ok {
			names = append(names, k)
		}
	}
	var minV, maxV *Version
	for _, k := range []string{"MinimumFileVersion", "MaximumFileVersion"} {
		s, ok := a.lookup(k)
		if !ok {
			continue
		}
		v, err := ParseVersion(strings.TrimSpace(s))
		if err != nil {
			doc.errorf(f.line, "rule %s: %s %q: want up to four dot-separated numbers from 0 to 65535", f.id, k, truncate(s, 40))
			continue
		}
		if k == "MinimumFileVersion" {
			minV = &v
		} else {
			maxV = &v
		}
	}
	if hs, ok := a.lookup("Hash"); ok {
		b, err := hex.DecodeString(strings.TrimSpace(hs))
		if err != nil || len(b) == 0 {
			doc.errorf(f.line, "rule %s: Hash %q is not hexadecimal", f.id, truncate(hs, 80))
			return matcher{unsupported: "malformed hash"}
		}
		switch {
		case len(unsup) > 0:
		case len(names) > 0 || minV != nil || maxV != nil:
			unsup = append(unsup, "Hash together with file name or version attributes: csv cannot judge both at once")
		case pageHash(a.get("FriendlyName"), f.id) && (len(b) == 20 || len(b) == 32):
			// A first-page hash: New-CIPolicy names it so (Windows reads
			// no FriendlyName, and compares it only for a file whose
			// signature carries page hashes; see PageSHA256).
			alg := PageSHA256
			if len(b) == 20 {
				alg = PageSHA1
			}
			return matcher{hash: &HashMatch{Algorithm: alg, Value: b}}
		case len(b) == 20:
			return matcher{hash: &HashMatch{Algorithm: AuthenticodeSHA1, Value: b}}
		case len(b) == 32:
			return matcher{hash: &HashMatch{Algorithm: AuthenticodeSHA256, Value: b}}
		default:
			unsup = append(unsup, fmt.Sprintf("%d-byte hash: App Control hash rules are SHA1 (20 bytes) or SHA256 (32 bytes) Authenticode hashes", len(b)))
		}
	}
	if len(unsup) > 0 {
		return matcher{unsupported: unsup[0]}
	}
	if len(names) > 1 {
		return matcher{unsupported: fmt.Sprintf("several name attributes (%s): csv judges one", strings.Join(names, ", "))}
	}
	m := &FileAttrMatch{}
	if len(names) == 1 {
		switch names[0] {
		case "FileName":
			m.Field = OriginalFileName
		case "InternalName":
			m.Field = InternalName
		case "FileDescription":
			m.Field = FileDescription
		case "ProductName":
			m.Field = ProductName
		}
		m.Name = strings.TrimSpace(a.get(names[0]))
		switch {
		case m.Name == "*":
			// Any name (SignedVersion-level FileAttrib, allow-all rules).
			m.Name = ""
		case m.Name == "":
			doc.errorf(f.line, "rule %s: empty %s", f.id, names[0])
			return matcher{unsupported: "empty name"}
		case strings.ContainsAny(m.Name, "*?"):
			return matcher{unsupported: fmt.Sprintf("wildcard in %s %q: csv compares names exactly", names[0], m.Name)}
		}
	}
	m.MinVersion, m.MaxVersion = versionBounds(minV, maxV, deny)
	if m.Name == "" && m.MinVersion == nil && m.MaxVersion == nil {
		if len(names) == 1 {
			return matcher{all: true} // an allow-all (or deny-all) rule
		}
		doc.errorf(f.line, "rule %s says nothing to match: set Hash, FileName (or another name attribute) or a version", f.id)
		return matcher{unsupported: "nothing to match"}
	}
	return matcher{file: m}
}

// signerMatcher maps a signer to a signer matcher, or says why it cannot be
// judged.
func (doc *siDoc) signerMatcher(s *xSigner, deny, flightDisabled bool) (*SignerMatch, string) {
	m := &SignerMatch{Level: LevelAny}
	var unsup string
	anyFile := false
	switch {
	case !s.hasRoot:
		return nil, "no CertRoot"
	case strings.EqualFold(s.rootType, "TBS"):
		b, err := hex.DecodeString(s.rootValue)
		switch {
		case err != nil:
			doc.errorf(s.rootLine, "signer %s: CertRoot Value %q is not hexadecimal", s.id, truncate(s.rootValue, 80))
			return nil, "malformed CertRoot"
		case len(b) == 16:
			unsup = "CertRoot is an MD5 TBS hash (16 bytes): certificates signed with MD5 are not supported"
		case len(b) == 20 || len(b) == 32 || len(b) == 48 || len(b) == 64:
			m.Cert.TBSHash = b
		default:
			doc.errorf(s.rootLine, "signer %s: CertRoot TBS value has %d bytes (want 20, 32, 48 or 64: a SHA1, SHA256, SHA384 or SHA512 TBS hash)", s.id, len(b))
			return nil, "malformed CertRoot"
		}
	case strings.EqualFold(s.rootType, "Wellknown"):
		b, err := hex.DecodeString(s.rootValue)
		if err != nil || len(b) != 1 {
			doc.errorf(s.rootLine, "signer %s: well-known CertRoot Value %q is not one hexadecimal byte", s.id, truncate(s.rootValue, 20))
			return nil, "malformed CertRoot"
		}
		id := fmt.Sprintf("%02X", b[0])
		_, cn, ok := wellKnownRoot(id)
		switch {
		case !ok:
			unsup = wellKnownUnmappable(id)
		case id == "0E" && flightDisabled && !deny:
			unsup = "the policy sets Disabled:Flight Signing, so Windows does not trust the flight root (well-known root 0E)"
		}
		m.Cert.WellKnown, m.Cert.WellKnownName = id, cn
	default:
		doc.errorf(s.rootLine, "signer %s: unknown CertRoot Type %q (want TBS or Wellknown)", s.id, s.rootType)
		return nil, "malformed CertRoot"
	}
	for _, e := range s.ekus {
		oid, ok := doc.ekus[e.id]
		if !ok {
			if _, defined := doc.ekuLines[e.id]; !defined {
				doc.errorf(e.line, "unknown EKU %s referenced by signer %s", e.id, s.id)
			}
			continue
		}
		m.EKUs = append(m.EKUs, oid)
	}
	if len(m.EKUs) > 1 && unsup == "" {
		unsup = fmt.Sprintf("several CertEKU (%s): csv does not know whether Windows requires all or any of them", strings.Join(m.EKUs, ", "))
	}
	if s.publisher != nil {
		m.Publisher = *s.publisher
	}
	if s.issuer != nil {
		m.IssuerName = *s.issuer
	}
	if s.oemID != nil {
		m.OEMID = *s.oemID
	}
	if s.signTimeAfter != "" && unsup == "" {
		unsup = fmt.Sprintf("SignTimeAfter %s: csv does not judge signing times", s.signTimeAfter)
	}
	for _, ref := range s.fileAttribs {
		f := doc.files[ref.id]
		switch {
		case f == nil:
			doc.errorf(ref.line, "unknown FileAttrib %s referenced by signer %s", ref.id, s.id)
			continue
		case f.kind != "FileAttrib":
			doc.errorf(ref.line, "FileAttribRef of signer %s references %s, which is %s rule (want a FileAttrib)", s.id, ref.id, article(f.kind))
			continue
		}
		fm := doc.fileMatcher(f, deny)
		switch {
		case fm.unsupported != "" && unsup == "":
			unsup = fmt.Sprintf("its FileAttrib %s cannot be judged: %s", f.id, fm.unsupported)
		case fm.hash != nil && unsup == "":
			unsup = fmt.Sprintf("its FileAttrib %s holds a Hash: csv cannot judge a signer and a hash at once", f.id)
		case fm.all:
			anyFile = true
		case fm.file != nil:
			m.Files = append(m.Files, *fm.file)
		}
	}
	if anyFile {
		m.Files = nil // one referenced FileAttrib admits every file
	}
	return m, unsup
}
