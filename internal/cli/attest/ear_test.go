package attest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veraison/ear"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/eartest"
)

func writeKey(t *testing.T, path string, k crypto.Signer) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyEAR: csv attest verify --format ear on a real GCE attestation
// writes an EAR the EAR library (github.com/veraison/ear) reads: the
// claims set as it is, the JWT with --ear-key verified with the key's
// public half (and refused once a byte of its payload changes), with the
// trustworthiness vector of the host trusted, of its boot components
// blocked and of a quote of another nonce.
func TestVerifyEAR(t *testing.T) {
	dir := t.TempDir()
	for name, b := range fixtures(t) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("attest.yaml", "format: csv-attest-policy/v1\nname: gce-cos\nsecure_boot: required\ndebugging: forbidden\ncode_integrity: windows\n")
	boot := write("boot.yaml", `format: csv-policy/v1
name: cos-boot
rules:
  - {id: shim, action: allow, authenticode_sha256: dba8d69ffb244496ac8ab2950695d3da539d6ac5ec660fc6b4bdde245284cf23}
  - {id: grub, action: allow, authenticode_sha256: f7bad83f87940312e4642530a9a6242e88529dc37a497d7d4e7c1c070566d542}
  - {id: kernel, action: allow, authenticode_sha256: 6f6afb3caed004e727200a0c310731bd8ab4cd391b2d95cedf67d08e1e8e5e7e}
`)
	shimOnly := write("shim-only.yaml", `format: csv-policy/v1
name: shim-only
rules:
  - {id: shim, action: allow, authenticode_sha256: dba8d69ffb244496ac8ab2950695d3da539d6ac5ec660fc6b4bdde245284cf23}
`)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecPath, rsaPath := filepath.Join(dir, "ear-ec.pem"), filepath.Join(dir, "ear-rsa.pem")
	writeKey(t, ecPath, ecKey)
	writeKey(t, rsaPath, rsaKey)

	tests := []struct {
		name    string
		ci      string
		nonce   string
		key     string
		pub     crypto.PublicKey
		wantErr error
		status  ear.TrustTier
		vector  ear.TrustVector
	}{
		{name: "trusted, unsigned", ci: boot, nonce: "9009", status: ear.TrustTierAffirming,
			vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3}},
		{name: "trusted, ES256", ci: boot, nonce: "9009", key: ecPath, pub: ecKey.Public(), status: ear.TrustTierAffirming,
			vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3}},
		{name: "trusted, PS256", ci: boot, nonce: "9009", key: rsaPath, pub: rsaKey.Public(), status: ear.TrustTierAffirming,
			vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3}},
		{name: "boot components blocked", ci: shimOnly, nonce: "9009", key: ecPath, pub: ecKey.Public(), wantErr: cmdutil.ErrFailed,
			status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 96}},
		{name: "another nonce", ci: boot, nonce: "0123456789abcdef", key: ecPath, pub: ecKey.Public(), wantErr: cmdutil.ErrFailed,
			status: ear.TrustTierContraindicated, vector: ear.TrustVector{InstanceIdentity: 99, Configuration: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout := &bytes.Buffer{}
			o := &VerifyOptions{IO: &cmdutil.IOStreams{Out: stdout, ErrOut: &bytes.Buffer{}}, Version: "1.2.3", EventLog: filepath.Join(dir, "gce.log"),
				Quotes: []string{filepath.Join(dir, "gce-sha256.quote")}, Signatures: []string{filepath.Join(dir, "gce-sha256.sig")},
				PCRs: filepath.Join(dir, "gce-pcrs.yaml"), AK: filepath.Join(dir, "gce-ak.tpmt"), Nonce: tt.nonce, Policy: policy,
				CIPolicies: []string{tt.ci}, Format: "ear", EARKey: tt.key}
			if err := runVerify(context.Background(), o); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var ar *ear.AttestationResult
			var err error
			if tt.key == "" {
				ar, err = eartest.Parse(t, stdout.Bytes())
			} else {
				tok := bytes.TrimSuffix(stdout.Bytes(), []byte("\n"))
				ar, err = eartest.Verify(t, tok, tt.pub)
				// A changed payload byte: refused.
				bad := bytes.Clone(tok)
				bad[bytes.IndexByte(bad, '.')+10] ^= 0x01
				if _, err := eartest.Verify(t, bad, tt.pub); err == nil {
					t.Error("a changed byte: accepted")
				}
			}
			if err != nil {
				t.Fatalf("the EAR library refuses csv's EAR: %v\n%s", err, stdout)
			}
			if got := eartest.Status(t, ar, attest.EARSubmodule); got != tt.status {
				t.Errorf("status %s, want %s", got, tt.status)
			}
			if got := eartest.Vector(t, ar, attest.EARSubmodule); got != tt.vector {
				t.Errorf("vector %+v, want %+v", got, tt.vector)
			}
			if *ar.VerifierID.Build != "csv 1.2.3" || !strings.HasPrefix(*ar.Submods[attest.EARSubmodule].AppraisalPolicyID, "csv:attest/gce-cos@sha256:") {
				t.Errorf("verifier %q, policy %q", *ar.VerifierID.Build, *ar.Submods[attest.EARSubmodule].AppraisalPolicyID)
			}
		})
	}

	// A key csv cannot sign EARs with, and one it cannot read: exit 2,
	// nothing written, before the evidence is judged.
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPath := filepath.Join(dir, "small.pem")
	writeKey(t, smallPath, small)
	for _, key := range []string{smallPath, filepath.Join(dir, "missing.pem"), policy} {
		stdout := &bytes.Buffer{}
		o := &VerifyOptions{IO: &cmdutil.IOStreams{Out: stdout, ErrOut: &bytes.Buffer{}}, EventLog: filepath.Join(dir, "gce.log"),
			Quotes: []string{filepath.Join(dir, "gce-sha256.quote")}, Signatures: []string{filepath.Join(dir, "gce-sha256.sig")},
			AK: filepath.Join(dir, "gce-ak.tpmt"), Nonce: "9009", Policy: policy, CIPolicies: []string{boot}, Format: "ear", EARKey: key}
		err := runVerify(context.Background(), o)
		if err == nil || cmdutil.ExitCode(err) != cmdutil.ExitError || !strings.Contains(err.Error(), "EAR signing key "+key) || stdout.Len() != 0 {
			t.Errorf("%s: err = %v, stdout %q", key, err, stdout)
		}
	}
}

// TestServeEAR: csv attest serve --credential-format ear issues EAR
// credentials the EAR library verifies with the CA certificate's key,
// with csv's version as the verifier's build; with any EK trusted
// (the fixture's trust_any_unsafe) the EAR says nothing of the hardware.
func TestServeEAR(t *testing.T) {
	f := newServeFixture(t, "")
	url, _, _ := startServeWith(t, f, func(o *ServeOptions) {
		o.Version, o.CredentialFormat = "9.9.9", "ear"
		prev := o.changed
		o.changed = func(n string) bool { return n == "credential-format" || prev(n) }
	})
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		t.Fatal(err)
	}
	cred := mustCredential(t, url, f, h)
	if cred.Format != service.FormatEAR {
		t.Fatalf("format %q", cred.Format)
	}
	tok, err := h.Open(cred)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := eartest.Verify(t, tok, ca.PublicKey)
	if err != nil {
		t.Fatalf("the EAR library refuses the credential: %v", err)
	}
	want := ear.TrustVector{InstanceIdentity: 2, Configuration: 2, Executables: 3}
	if v := eartest.Vector(t, ar, attest.EARSubmodule); v != want || eartest.Status(t, ar, attest.EARSubmodule) != ear.TrustTierAffirming ||
		*ar.VerifierID.Build != "csv 9.9.9" {
		t.Errorf("vector %+v, build %q", v, *ar.VerifierID.Build)
	}
}
