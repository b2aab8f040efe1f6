package cipolicy

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/internal/textsafe"
)

// marshalTree writes p as one yaml.v3 tree, as MarshalYAML did before it
// wrote a rule at a time: the oracle for WriteYAML.
func marshalTree(t *testing.T, p *Policy) []byte {
	t.Helper()
	root, err := headNode(p)
	if err != nil {
		t.Fatal(err)
	}
	rules := &yaml.Node{Kind: yaml.SequenceNode}
	for i := range p.Rules {
		m, err := ruleNode(&p.Rules[i])
		if err != nil {
			t.Fatal(err)
		}
		rules.Content = append(rules.Content, m)
	}
	if len(rules.Content) == 0 {
		rules.Style = yaml.FlowStyle
	}
	root.Content = append(root.Content, str("rules"), rules)
	var b bytes.Buffer
	if err := encodeTo(&b, root); err != nil {
		t.Fatal(err)
	}
	return textsafe.InertYAML(b.Bytes())
}

// TestWriteYAMLAsOneTree: writing a rule at a time gives the bytes the
// whole tree gives, for rules of every kind, comments, long and odd
// strings, and no rules; and Parse reads them back.
func TestWriteYAMLAsOneTree(t *testing.T) {
	ex, err := os.ReadFile("../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("word ", 40)
	srcs := []string{
		string(ex),
		"format: csv-policy/v1\nname: n\nrules: []\n",
		"format: csv-policy/v1\nname: n\nid: other\nversion: '2'\ndescription: " + long + "\nmode: audit\ndigest_algorithms: [sha256]\nrules:\n" +
			"  - id: a\n    action: allow\n    signer:\n      level: leaf\n      tbs: " + strings.Repeat("ef", 32) + "\n      publisher: 'CN=x, O=y: z'\n      issuer: CN=y\n      ekus: [1.3.6.1.5.5.7.3.3]\n      files:\n        - name: a.exe\n          min_version: 1.0.0.0\n    except:\n      - sha256: " + strings.Repeat("cd", 32) + "\n      - file:\n          name: b.exe\n" +
			"  - id: b\n    action: deny\n    file:\n      name: x.exe\n      max_version: 2.0.0.0\n    paths: ['dist/**', '*.{a,b}', '#x']\n    scenarios: [user, kernel]\n    description: \"a ##[error] line and a \\u0007 bell and a very long description " + long + "\"\n" +
			"  - id: c\n    action: allow\n    all: true\n    formats: [elf]\n",
	}
	for _, src := range srcs {
		p, err := Parse([]byte(src), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Rules) > 0 {
			p.Rules[0].Comment = "dist/a b.exe\n# odd: line\n\tand ##[warning] this\n... and 3 more"
		}
		got, err := MarshalYAML(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalTree(t, p); !bytes.Equal(got, want) {
			t.Fatalf("a rule at a time:\n%s\nthe whole tree:\n%s", got, want)
		}
		back, err := Parse(got, "back.yaml")
		if err != nil || len(back.Rules) != len(p.Rules) {
			t.Fatalf("reading back: %v\n%s", err, got)
		}
	}
}
