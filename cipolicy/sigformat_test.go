package cipolicy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/sigtest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
)

// TestSignatureFormats: a signer rule with signature_formats admits a file
// only by a signature of those formats (a Linux policy that requires IMA
// signatures), says so when another format's signature by the same signer
// is all the file has, and is written back as read; an unknown format is
// an error naming the line.
func TestSignatureFormats(t *testing.T) {
	p := newPKI(t)
	src := "format: csv-policy/v1\nname: ima\nversion: '1'\nrules:\n" +
		"  - {id: ima-only, action: allow, signer: {tbs: " + p.inter.TBSHashHex() + ", level: issuer, signature_formats: [ima]}}\n"
	pol, err := Parse([]byte(src), "ima.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewSet(SetOptions{Now: func() time.Time { return testca.Epoch }}, pol)
	if err != nil {
		t.Fatal(err)
	}
	imaSig := p.unverifiedSig(p.leaf, "RSA")
	imaSig.Format = "ima"
	sub := func(sigs ...*signing.Signature) Subject {
		return Subject{Path: "bin/tool", Format: FormatELF, Signed: true, Signatures: sigs, Digests: Digests{SHA256: make([]byte, 32)}}
	}
	if d := set.Evaluate(sub(p.sig(p.leaf, "RSA"))); d.Allowed() || !strings.Contains(d.Reason, "counts only ima signatures") {
		t.Fatalf("an Authenticode-format signature: %v %q", d.Verdict, d.Reason)
	}
	if d := set.Evaluate(sub(p.sig(p.leaf, "RSA"), sigtest.Verified(t, imaSig))); !d.Allowed() || d.Signature != 1 {
		t.Fatalf("with an IMA signature: %v (signature %d) %q", d.Verdict, d.Signature, d.Reason)
	}
	out, err := MarshalYAML(pol)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, "again.yaml")
	if err != nil || len(again.Rules) != 1 || strings.Join(again.Rules[0].Signer.SignatureFormats, ",") != "ima" {
		t.Fatalf("written back: %v\n%s", err, out)
	}
	_, err = Parse([]byte(strings.Replace(src, "[ima]", "[gpg]", 1)), "bad.yaml")
	if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), `unknown signature format "gpg"`) || !strings.Contains(err.Error(), "bad.yaml:5:") {
		t.Fatalf("unknown format: %v", err)
	}
}
