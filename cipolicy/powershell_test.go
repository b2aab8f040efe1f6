package cipolicy

import (
	"strings"
	"testing"
)

// scriptPolicy is a SiPolicy with a user-mode and a kernel-mode hash rule,
// h1 and h2, and the options given besides Enabled:UMCI.
func scriptPolicy(t *testing.T, options ...string) *Set {
	t.Helper()
	body := `  <FileRules>
    <Allow ID="ID_ALLOW_USER" FriendlyName="install.ps1 Hash Sha256" Hash="` + strings.Repeat("11", 32) + `" />
    <Allow ID="ID_ALLOW_KERNEL" FriendlyName="k Hash Sha256" Hash="` + strings.Repeat("22", 32) + `" />
  </FileRules>
` + scenarios(`<FileRulesRef><FileRuleRef RuleID="ID_ALLOW_USER" /></FileRulesRef>`, `<FileRulesRef><FileRuleRef RuleID="ID_ALLOW_KERNEL" /></FileRulesRef>`)
	doc := sipDoc(body)
	for _, o := range options {
		doc = strings.Replace(doc, "<Rules>", "<Rules><Rule><Option>"+o+"</Option></Rule>", 1)
	}
	s, err := NewSet(SetOptions{}, mustParseXML(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func script(sc Scenario, sip []byte) Subject {
	return Subject{Path: "install.ps1", Format: FormatPowerShell, Scenario: sc, Digests: Digests{AuthenticodeSHA256: sip, SHA256: h2}}
}

// TestScriptHashRules: a WDAC hash rule of the user-mode scenario is a
// script's SIP hash (authenticode_sha256); a kernel-mode one is not, and a
// script is judged in user mode whatever the run's scenario; an unsigned
// script no rule allows is blocked as unsigned; the flat SHA256 matches
// too when a rule compares it.
func TestScriptHashRules(t *testing.T) {
	set := scriptPolicy(t)
	for _, sc := range []Scenario{ScenarioUser, ScenarioKernel} {
		if n := set.Needs("install.ps1", FormatPowerShell, sc); !n.Digests.Has(AuthenticodeSHA256) {
			t.Errorf("%s: needs %v", sc, n.Digests)
		}
		if d := set.Evaluate(script(sc, h1)); !d.Allowed() || d.Rule != "ID_ALLOW_USER" || d.Kind != KindAllowedByHash {
			t.Errorf("%s: %+v", sc, d)
		}
		if d := set.Evaluate(script(sc, h2)); d.Allowed() || d.Kind != KindUnsigned {
			t.Errorf("%s: the kernel rule's hash: %+v", sc, d)
		}
	}
	yaml, err := NewSet(SetOptions{}, pol(t, "name: p", "{id: flat, action: allow, sha256: "+hx(h2)+"}"))
	if err != nil {
		t.Fatal(err)
	}
	if d := yaml.Evaluate(script(ScenarioUser, h1)); !d.Allowed() || d.Rule != "flat" {
		t.Errorf("flat hash: %+v", d)
	}
}

// TestScriptEnforcementDisabled: under Disabled:Script Enforcement a script
// is not judged (allowed, saying why), deny rules included; PE files are
// judged as before, and a malformed script is still blocked.
func TestScriptEnforcementDisabled(t *testing.T) {
	set := scriptPolicy(t, OptionDisabledScriptEnforcement)
	if d := set.Evaluate(script(ScenarioUser, h2)); !d.Allowed() || d.Kind != KindNotEnforced || !strings.Contains(d.Reason, OptionDisabledScriptEnforcement) {
		t.Errorf("script: %+v", d)
	}
	if d := set.Evaluate(Subject{Path: "a.js", Format: FormatWSH, Scenario: ScenarioKernel, Digests: Digests{SHA256: h2}}); !d.Allowed() || d.Kind != KindNotEnforced {
		t.Errorf("Windows Script Host script: %+v", d)
	}
	bad := script(ScenarioUser, h2)
	bad.Problem = errMissingFacts
	if d := set.Evaluate(bad); d.Allowed() || d.Kind != KindMalformed {
		t.Errorf("malformed script: %+v", d)
	}
	if d := set.Evaluate(Subject{Path: "a.exe", Format: FormatPE, Scenario: ScenarioUser, Digests: Digests{AuthenticodeSHA256: h2}}); d.Allowed() {
		t.Errorf("PE: %+v", d)
	}
	if d := scriptPolicy(t).Evaluate(script(ScenarioUser, h2)); d.Allowed() {
		t.Errorf("without the option: %+v", d)
	}
}
