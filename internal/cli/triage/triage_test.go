package triage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/cli"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing/manifest"
)

// event renders a 3077 (or 3076) event as wevtutil qe /f:xml does, with
// the fields triage reads.
func event(id int, activity, file string, flat, auth []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-CodeIntegrity'/><EventID>%d</EventID><Version>5</Version><TimeCreated SystemTime='2026-06-02T08:00:00.000Z'/><EventRecordID>1</EventRecordID><Correlation ActivityID='%s'/><Computer>WS01</Computer></System><EventData>`, id, activity)
	for _, d := range [][2]string{
		{"File Name", file}, {"Process Name", `\Device\HarddiskVolume3\Windows\explorer.exe`},
		{"Requested Signing Level", "8"}, {"Validated Signing Level", "1"}, {"Status", "0xc0e90002"},
		{"SHA256 Hash Size", "32"}, {"SHA256 Hash", strings.ToUpper(hex.EncodeToString(auth))},
		{"SHA256 Flat Hash Size", "32"}, {"SHA256 Flat Hash", strings.ToUpper(hex.EncodeToString(flat))},
		{"SI Signing Scenario", "1"}, {"PolicyName", "Contoso"}, {"PolicyID", "2026-05-01"},
		{"PolicyGUID", "{A244370E-44C9-4C06-B551-F6016E563076}"},
	} {
		fmt.Fprintf(&b, "<Data Name='%s'>%s</Data>", d[0], d[1])
	}
	b.WriteString("</EventData></Event>\n")
	return b.String()
}

type fixture struct {
	dir, manifest, roots, policy string
	built, other, allowed        []byte
}

func setup(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir}
	sum := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	f.built, f.other, f.allowed = sum("built"), sum("other"), sum("allowed")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Build Signing", KeyType: testca.ECDSAP256})
	data, err := manifest.New([]manifest.Subject{manifest.SHA256Subject("bin/tool.exe", f.built)}, manifest.Predicate{
		TimeVerified: testca.Epoch, ResourceURI: "https://ci.example/builds/42",
		Policy:             manifest.ResourceDescriptor{Name: "release", Digest: manifest.DigestSet{"sha256": strings.Repeat("ab", 32)}},
		VerificationResult: manifest.Passed, VerifiedLevels: []string{manifest.PolicyLevel("release")},
	}, leaf.Key, []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert})
	if err != nil {
		t.Fatal(err)
	}
	f.manifest = write(t, dir, "build-manifest.json", data)
	f.roots = write(t, dir, "roots.pem", testca.PEM(ca.Root.Cert))
	f.policy = write(t, dir, "policy.yaml", []byte("format: csv-policy/v1\nname: Contoso\nversion: 2.0.0\nmode: enforce\nrules:\n"+
		"  - id: allowed-tool\n    action: allow\n    authenticode_sha256: "+hex.EncodeToString(f.allowed)+"\n"))
	return f
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestTriageCommand(t *testing.T) {
	f := setup(t)
	builtEv := event(3077, "{00000000-0000-0000-0000-000000000001}", `\Device\HarddiskVolume3\App\tool.exe`, f.built, f.other)
	oldEv := event(3076, "{00000000-0000-0000-0000-000000000002}", `\Device\HarddiskVolume3\App\helper.exe`, f.other, f.allowed)
	unknownEv := event(3077, "{00000000-0000-0000-0000-000000000003}", `\Device\HarddiskVolume3\Users\x\evil.exe`, f.other, f.other)
	explained := write(t, f.dir, "explained.xml", []byte(builtEv+oldEv))
	attack := write(t, f.dir, "attack.xml", []byte(builtEv+unknownEv))
	truncated := write(t, f.dir, "truncated.xml", []byte(builtEv+oldEv[:len(oldEv)/2]))
	base := []string{"triage", "--manifest", f.manifest, "--certs", f.roots, "--signer", "cn:Build Signing", "--policy", f.policy}

	code, out, stderr := run(append(base, explained)...)
	if code != 0 || !strings.Contains(out, "BUILT  block (3077)") || !strings.Contains(out, "OLD POLICY  audit (3076)") ||
		!strings.Contains(out, "triage: 2 events: 0 unknown, 1 old policy, 1 built, 0 unreadable") {
		t.Errorf("explained: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, `file: "HarddiskVolume3:\\App\\tool.exe"`) || !strings.Contains(out, "lists it as bin/tool.exe") {
		t.Errorf("explained: block lacks the file or the manifest entry:\n%s", out)
	}

	code, out, _ = run(append(base, attack)...)
	if code != 1 || !strings.HasPrefix(out, "UNKNOWN  block (3077)") {
		t.Errorf("attack: exit %d, want 1, unknown first:\n%s", code, out)
	}

	code, out, stderr = run(append(base, truncated)...)
	if code != 2 || !strings.HasPrefix(out, "ERROR  "+truncated+": event #2") || !strings.Contains(stderr, "could not be read") {
		t.Errorf("truncated: exit %d, want 2:\n%s\n%s", code, out, stderr)
	}

	// An unknown outranks an unreadable event: exit 1, both reported.
	code, out, _ = run(append(base, attack, truncated, filepath.Join(f.dir, "missing.json"))...)
	if code != 1 || strings.Count(out, "ERROR  ") != 2 {
		t.Errorf("mixed: exit %d, want 1 and two errors:\n%s", code, out)
	}

	report := filepath.Join(f.dir, "report.json")
	code, out, _ = run(append(base, "--format", "json", "--output", report, attack)...)
	if code != 1 || out != "" {
		t.Errorf("--output: exit %d, stdout %q", code, out)
	}
	written, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	out = string(written)
	var doc struct {
		MediaType string `json:"media_type"`
		Summary   struct{ Events, Unknown, Built int }
		Findings  []struct {
			Class string
			Event struct {
				Path           string `json:"path"`
				SHA256FlatHash string `json:"sha256_flat_hash"`
			}
			Built []struct{ Name string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if code != 1 || doc.MediaType != "application/vnd.codesignval.csv.triage.v1+json" || doc.Summary.Events != 2 || doc.Summary.Unknown != 1 ||
		len(doc.Findings) != 2 || doc.Findings[0].Class != "unknown" || doc.Findings[1].Class != "built" ||
		doc.Findings[1].Built[0].Name != "bin/tool.exe" || doc.Findings[1].Event.SHA256FlatHash != strings.ToUpper(hex.EncodeToString(f.built)) {
		t.Errorf("json: exit %d %+v", code, doc)
	}
}

func TestTriageRefuses(t *testing.T) {
	f := setup(t)
	ev := write(t, f.dir, "e.xml", []byte(event(3077, "{00000000-0000-0000-0000-000000000001}", `\??\C:\a.exe`, f.built, f.built)))
	otherCA := testca.New(t)
	otherRoots := write(t, f.dir, "other.pem", testca.PEM(otherCA.Root.Cert))
	tampered, err := os.ReadFile(f.manifest)
	if err != nil {
		t.Fatal(err)
	}
	// The manifest lists another digest: its signature no longer verifies.
	var b map[string]any
	if err := json.Unmarshal(tampered, &b); err != nil {
		t.Fatal(err)
	}
	env := b["dsseEnvelope"].(map[string]any)
	payload, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	env["payload"] = base64.StdEncoding.EncodeToString(bytes.Replace(payload, []byte(hex.EncodeToString(f.built)), []byte(hex.EncodeToString(f.other)), 1))
	tampered, err = json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	bad := write(t, f.dir, "tampered.json", tampered)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no manifest or policy", []string{"triage", ev}, "give --manifest or --policy"},
		{"manifest without certs", []string{"triage", "--manifest", f.manifest, ev}, "--certs is required"},
		{"bad format", []string{"triage", "--policy", f.policy, "--format", "xml", ev}, "--format"},
		{"untrusted manifest", []string{"triage", "--manifest", f.manifest, "--certs", otherRoots, ev}, "manifest " + f.manifest},
		{"tampered manifest", []string{"triage", "--manifest", bad, "--certs", f.roots, ev}, "manifest " + bad},
		{"wrong signer pin", []string{"triage", "--manifest", f.manifest, "--certs", f.roots, "--signer", "cn:Someone", ev}, "manifest " + f.manifest},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, stderr := run(c.args...)
			if code != 2 || out != "" || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, stderr, c.want)
			}
		})
	}
}

// TestHostileStrings: an export is untrusted: a file name that carries a
// newline and a CI log command cannot start a line of the report.
func TestHostileStrings(t *testing.T) {
	f := setup(t)
	name := "\\Device\\HarddiskVolume3\\x&#10;triage: 0 events&#10;::error::forged.exe"
	ev := write(t, f.dir, "hostile.xml", []byte(event(3077, "{00000000-0000-0000-0000-000000000001}", name, f.other, f.other)))
	code, out, _ := run("triage", "--policy", f.policy, ev)
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "triage: 0") || strings.HasPrefix(line, "::") {
			t.Errorf("forged line %q in:\n%s", line, out)
		}
	}
	if !strings.Contains(out, `x\ntriage: 0 events\n::error::forged.exe`) {
		t.Errorf("the name is not shown escaped:\n%s", out)
	}
}
