package cipolicy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
)

// sameTree reports how two trees differ ("" if they do not).
func sameTree(a, b *xnode, path string) string {
	path += "/" + a.name
	switch {
	case a.name != b.name:
		return fmt.Sprintf("%s: name %q != %q", path, a.name, b.name)
	case a.line != b.line:
		return fmt.Sprintf("%s: line %d != %d", path, a.line, b.line)
	case !bytes.Equal(bytes.TrimSpace(a.text), bytes.TrimSpace(b.text)): // as every reader sees it
		return fmt.Sprintf("%s: text %q != %q", path, a.text, b.text)
	case len(a.attrs) != len(b.attrs):
		return fmt.Sprintf("%s: attributes %v != %v", path, a.attrs, b.attrs)
	case len(a.children) != len(b.children):
		return fmt.Sprintf("%s: %d children != %d", path, len(a.children), len(b.children))
	}
	for i := range a.attrs {
		if a.attrs[i] != b.attrs[i] {
			return fmt.Sprintf("%s: attribute %d: %v != %v", path, i, a.attrs[i], b.attrs[i])
		}
	}
	for i := range a.children {
		if d := sameTree(a.children[i], b.children[i], path); d != "" {
			return d
		}
	}
	return ""
}

// fastAgrees checks that the fast path, where it reads a document, reads
// it as encoding/xml does, and reads nothing encoding/xml rejects. It
// returns whether the fast path read it.
func fastAgrees(t *testing.T, data []byte, utf16 bool) bool {
	t.Helper()
	fast, ok, p := fastTreePanic(data, utf16)
	if p != nil {
		t.Fatal(p.Report())
	}
	slow, lerr := xmlTree(data, "t.xml", utf16)
	if !ok {
		return false
	}
	if lerr != nil {
		t.Fatalf("the fast path read a document encoding/xml rejects (%v):\n%q", lerr, truncate(string(data), 2000))
	}
	if d := sameTree(fast, slow, ""); d != "" {
		t.Fatalf("the fast path reads the document differently: %s\n%q", d, truncate(string(data), 2000))
	}
	return true
}

// fastSeeds are documents in the subset and just outside it.
var fastSeeds = []string{
	"\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\" PolicyType=\"Base Policy\">\r\n  <VersionEx>10.0.0.0</VersionEx>\r\n  <!--File Rules-->\r\n  <FileRules>\r\n    <Allow ID=\"ID_ALLOW_A\" FriendlyName=\"a &amp; b\r\nc\" Hash=\"00\"/>\r\n  </FileRules>\r\n</SiPolicy>\r\n",
	`<SiPolicy xmlns='urn:schemas-microsoft-com:sipolicy'><Rules><Rule><Option>Enabled:UMCI</Option></Rule></Rules></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><VersionEx>1&lt;2&gt;3&apos;&quot;</VersionEx ></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"a="1"b='2'/>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A>x<!-- c -->y</A></SiPolicy><!-- after -->` + "\n",
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A xmlns="urn:schemas-microsoft-com:sipolicy"/></SiPolicy>`,
	`<SiPolicy xmlns="urn:other"/>`,
	`<x:SiPolicy xmlns:x="urn:schemas-microsoft-com:sipolicy"/>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A>&#65;</A></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A><![CDATA[x]]></A></SiPolicy>`,
	`<!DOCTYPE x><SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A></B></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/><SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy">]]></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A b="<"/></SiPolicy>`,
	`<?xml version="1.1"?><SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/>`,
	`<?xml version="1.0" encoding="latin1"?><SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/>`,
	"<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"><A>\x01</A></SiPolicy>",
	"<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"><A>\xff</A></SiPolicy>",
	"<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"><A>caf\u00e9 \U0001F600</A></SiPolicy>",
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><!-- a -- b --></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A b="1" b="2"/></SiPolicy>`,
	`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A`,
}

// TestFastXMLSameReading: the documents csv's tests load, the shared
// real policies, the benchmark's policy and hand-made edge cases are read
// alike by the fast path and by encoding/xml, and the real policies and
// the benchmark's are in the fast path's subset (else the fast path is
// not the one that runs).
func TestFastXMLSameReading(t *testing.T) {
	for _, s := range fastSeeds {
		fastAgrees(t, []byte(s), false)
	}
	if !fastAgrees(t, []byte(fastSeeds[0]), false) || !fastAgrees(t, bigSiPolicy(200, 20), false) {
		t.Fatal("the fast path declined a document in its subset")
	}
	for _, s := range publishedSeeds() {
		fastAgrees(t, s, false)
	}
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "..", "shared", "testdata", "wdac", "*.xml"))
	if len(files) == 0 {
		t.Log("no shared WDAC policies (../shared/testdata/wdac): checked the generated documents only")
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text, utf16, err := decodeText(data)
		if err != nil {
			t.Fatal(err)
		}
		if !fastAgrees(t, text, utf16) {
			t.Errorf("%s: the fast path declined a policy Microsoft ships", filepath.Base(name))
		}
	}
}

// TestFastXMLFallback: a document outside the subset still loads (through
// encoding/xml), and one that encoding/xml rejects fails with its error.
func TestFastXMLFallback(t *testing.T) {
	doc := sipDoc(`<FileRules><Allow ID="ID_ALLOW_A" FriendlyName="&#65; Hash Sha256" Hash="` + hx(h1) + `" /></FileRules>` +
		scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_ALLOW_A" /></FileRulesRef>`, ""))
	if _, ok := fastTree([]byte(doc), false); ok {
		t.Fatal("the fast path read a numeric character reference")
	}
	p, err := Parse([]byte(doc), "p.xml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 1 || p.Rules[0].Description != "A Hash Sha256" {
		t.Fatalf("rules = %+v", p.Rules)
	}
	_, err = Parse([]byte(`<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"><A></B></SiPolicy>`), "bad.xml")
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(le.Problems[0].Message, "XML syntax") {
		t.Fatalf("err = %v, want the XML syntax error", err)
	}
}

func FuzzFastXML(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s), false)
	}
	f.Add(bigSiPolicy(3, 2), false)
	f.Add([]byte(`<?xml version="1.0" encoding="utf-16"?><SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy"/>`), true)
	for _, s := range publishedSeeds() {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, utf16 bool) {
		fastAgrees(t, data, utf16)
	})
}

// BenchmarkSiPolicyTokens compares ways of reading the 100,000-rule
// document's tokens: encoding/xml's Decoder.Token (namespaces resolved,
// what xmlTree uses), Decoder.RawToken (no namespaces), and the fast
// path's whole tree.
func BenchmarkSiPolicyTokens(b *testing.B) {
	src := bigSiPolicy(90_000, 10_000)
	for _, bc := range []struct {
		name string
		read func() error
	}{
		{"Token", func() error { return drain(xml.NewDecoder(bytes.NewReader(src)), false) }},
		{"RawToken", func() error { return drain(xml.NewDecoder(bytes.NewReader(src)), true) }},
		{"fastTree", func() error {
			if _, ok := fastTree(src, false); !ok {
				return errors.New("declined")
			}
			return nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func drain(d *xml.Decoder, raw bool) error {
	for {
		var err error
		if raw {
			_, err = d.RawToken()
		} else {
			_, err = d.Token()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// TestAttrListAsAttrs: attrList, which file rules are read with, keeps and
// reports what attrs does (the first of a repeated attribute, unknown and
// prefixed ones reported, namespace declarations ignored).
func TestAttrListAsAttrs(t *testing.T) {
	for _, el := range []string{
		`<Allow ID="A" FriendlyName="f" Hash="00" />`,
		`<Allow ID="A" ID="B" Hash="00" />`,
		`<Allow Bogus="1" ID="A" Hash="00" />`,
		`<Allow ID="A" x:Hash="1" Hash="00" />`,
		`<Allow xmlns:y="urn:y" ID="A" FileName="a" FileName="b" Hash="00" Hash="11" />`,
		`<Allow />`,
	} {
		doc := `<SiPolicy xmlns="urn:schemas-microsoft-com:sipolicy" xmlns:x="urn:x"><FileRules>` + el + `</FileRules></SiPolicy>`
		root, lerr := xmlTree([]byte(doc), "a.xml", false)
		if lerr != nil {
			t.Fatal(lerr)
		}
		n := root.children[0].children[0]
		var dm, dl xmlDecoder
		m := dm.attrs(n, fileRuleAttrs...)
		l := dl.attrList(n, fileRuleAttrs...)
		if len(l) != len(m) {
			t.Errorf("%s: attrList %v, attrs %v", el, l, m)
		}
		for _, a := range l {
			if v, ok := m[a.Name.Local]; !ok || v != a.Value {
				t.Errorf("%s: attrList has %s=%q, attrs %q", el, a.Name.Local, a.Value, v)
			}
		}
		if fmt.Sprint(dm.problems) != fmt.Sprint(dl.problems) {
			t.Errorf("%s: attrList reports %v, attrs %v", el, dl.problems, dm.problems)
		}
	}
}
