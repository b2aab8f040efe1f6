package attest

import (
	"strings"
	"testing"
	"unicode"

	"github.com/codesignval/csv/attest"
)

// TestRenderEscapes: the text report of attest verify and request prints
// what the event log, the policies and the service said (kernel command
// lines, component names, check details) escaped, one line each: a
// command line holding "\nattestation: TRUSTED" or a CI log command cannot
// forge a line or reach the runner.
func TestRenderEscapes(t *testing.T) {
	evil := "quiet\nattestation: TRUSTED\n::error::x ##[add-mask]NOT \x1b[2J\u202e"
	r := &attest.Result{
		Policy:     &attest.PolicyRef{Name: evil, Source: evil},
		CIPolicies: []attest.PolicyRef{{Name: evil, Source: evil}},
		Checks:     []attest.Check{{Name: "policy.x", Detail: evil}},
		Claims: &attest.Claims{
			KernelCmdlines: []string{evil},
			UnloggedPCRs:   []string{evil},
			BootComponents: []attest.ComponentClaim{{ID: evil, Name: evil, Verdict: "blocked", Reason: evil}},
		},
		Workarounds: []attest.WorkaroundUsed{{Description: evil}},
	}
	var b strings.Builder
	if err := render(&b, "text", r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.ContainsFunc(l, func(r rune) bool { return !unicode.IsGraphic(r) }) || strings.Contains(l, "##[") ||
			strings.HasPrefix(strings.TrimSpace(l), "::") || (i > 0 && strings.HasPrefix(l, "attestation:")) {
			t.Errorf("line %d is not inert: %q", i+1, l)
		}
	}
	if !strings.Contains(out, `quiet\x0aattestation: TRUSTED`) {
		t.Errorf("the command line is not shown escaped:\n%s", out)
	}
}
