package cipolicy

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// parseBoth parses src with yamlstrict's fast path and with yaml.v3 alone
// and fails unless both read the same policy, or the same problems.
func parseBoth(t testing.TB, src []byte) {
	t.Helper()
	fast, ferr := parseYAML(src, "p.yaml", ParseOptions{})
	fastYAML = false
	slow, serr := parseYAML(src, "p.yaml", ParseOptions{})
	fastYAML = true
	if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
		t.Fatalf("%q:\nfast path: %v\nyaml.v3:   %v", src, ferr, serr)
	}
	if ferr == nil && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: the fast path reads\n%+v\nyaml.v3\n%+v", src, fast, slow)
	}
}

var yamlPolicies = []string{
	"format: csv-policy/v1\nname: n\nrules:\n  - id: a\n    action: allow\n    sha256: " + strings.Repeat("ab", 32) + "\n    formats: [elf, pe]\n    paths: [dist/x]\n",
	"format: csv-policy/v1\nname: n\nmode: audit\nrules:\n- id: a\n  action: deny\n  authenticode_sha1: " + strings.Repeat("01", 20) + "\n- id: a\n  action: allow\n  all: true\n  scenarios: [user, kernel]\n",
	"format: csv-policy/v1\nname: n\nrules:\n  - id: a\n    action: allow\n    signer:\n      level: publisher\n      publisher: CN=x\n      issuer: CN=y\n      ekus: [1.3.6.1.5.5.7.3.3]\n    except:\n      - sha256: " + strings.Repeat("cd", 32) + "\n",
	"format: csv-policy/v1\nname: n\nrules:\n  - id: a\n    action: maybe\n    sha256: 12\n    unknown: x\n  - id: b\n    action: allow\n    all: yes\n",
	"format: csv-policy/v1\nname: n\nrules:\n  - id: a\n    action: allow\n    file:\n      name: x.exe\n      min_version: 1.0.0.0\n  - id: a b\n    action: allow\n    all: true\n    description: 'quoted here'\n",
	"format: csv-policy/v1\nname: n\nrules:\n  - id: a\n    action: allow\n    all: true\n  - id: b\n    action: allow\n    all: true\n   oops: x\n",
	"format: csv-policy/v1\nname: n\nrules: []\n",
	"format: csv-policy/v1\nname: n\nrules:\n  - 12\n  - [a]\n  - id: c\n",
}

// TestFastYAMLSameReading: the fast path and yaml.v3 read the same
// policies and report the same problems (a rule the fast path cannot
// read sends the whole document to yaml.v3).
func TestFastYAMLSameReading(t *testing.T) {
	for _, src := range yamlPolicies {
		parseBoth(t, []byte(src))
	}
	b, err := os.ReadFile("../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	parseBoth(t, b)
	parseBoth(t, bigHashPolicy(2000))
}

func FuzzFastYAML(f *testing.F) {
	for _, src := range yamlPolicies {
		f.Add([]byte(src))
	}
	f.Add(bigHashPolicy(3))
	f.Fuzz(func(t *testing.T, src []byte) {
		parseBoth(t, src)
	})
}
