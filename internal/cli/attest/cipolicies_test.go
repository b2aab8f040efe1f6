package attest

import (
	"strings"
	"testing"

	"github.com/codesignval/csv/attest"
)

// TestRenderActiveCIPolicies: verify (text and JSON) and inspect list the
// code integrity policies Windows measured, one line each; a name a host
// chose cannot break the text report's lines.
func TestRenderActiveCIPolicies(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	cps := []attest.CIPolicy{
		{Name: "{a244370e-44c9-4c06-b551-f6016e563076}", Version: "10.0.0.5", HashAlg: "sha256", Digest: digest},
		{Name: "evil\nFAIL nothing", Version: "0.0.0.1", HashAlg: "sha1", Digest: strings.Repeat("00", 20)},
	}
	w := &attest.WindowsState{CodeIntegrity: attest.On, DEP: attest.On, CIPolicies: cps}
	claims := []attest.CIPolicyClaim{
		{Name: cps[0].Name, ID: "a244370e-44c9-4c06-b551-f6016e563076", Version: "10.0.0.5", HashAlg: "sha256", Digest: digest},
		{Name: cps[1].Name, Version: "0.0.0.1", HashAlg: "sha1", Digest: cps[1].Digest},
	}
	r := &attest.Result{Claims: &attest.Claims{ActiveCIPolicies: claims, Boot: &attest.BootState{Windows: w}}}
	var b strings.Builder
	if err := render(&b, "text", r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"\n  activeCiPolicies: 2\n",
		"\n    \"{a244370e-44c9-4c06-b551-f6016e563076}\" version 10.0.0.5 sha256 " + digest + "\n",
		"\n    \"evil\\nFAIL nothing\" version 0.0.0.1 sha1 ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text: no %q in:\n%s", want, out)
		}
	}
	b.Reset()
	if err := render(&b, "json", r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"activeCiPolicies": [`) || !strings.Contains(b.String(), `"id": "a244370e-44c9-4c06-b551-f6016e563076"`) {
		t.Errorf("json:\n%s", b.String())
	}
	b.Reset()
	if err := writeInspection(&b, &jsonInspection{Boot: &attest.BootState{Windows: w}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\n  windows code integrity policy \"{a244370e-44c9-4c06-b551-f6016e563076}\" version 10.0.0.5 sha256 "+digest+"\n") ||
		strings.Contains(b.String(), "\nFAIL") {
		t.Errorf("inspect:\n%s", b.String())
	}
}
