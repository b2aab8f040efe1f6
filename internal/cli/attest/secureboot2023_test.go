package attest

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/lab"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/cli/cmdutil"
	"github.com/codesignval/csv/internal/testenv"
)

// TestSecureBoot2023Examples: csv attest verify with the rollover's
// example policies as shipped (examples/attest, docs/secureboot-2023.md),
// their certificate files (named as Microsoft names them, spaces and all)
// in certs/ beside them, as an operator lays them out. The certificates
// are stand-ins with Microsoft's subject names (package attest's
// secureboot2023_test.go judges every state; this is the command's path:
// files resolved against each policy's directory).
func TestSecureBoot2023Examples(t *testing.T) {
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"secureboot-2023.yaml", "boot-ci-2023.yaml", "secureboot-transition.yaml", "boot-ci.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "examples", "attest", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	certs := map[string]*x509.Certificate{}
	for file, cn := range map[string]string{
		"MicCorKEKCA2011_2011-06-24.der":           "Microsoft Corporation KEK CA 2011",
		"MicWinProPCA2011_2011-10-19.der":          "Microsoft Windows Production PCA 2011",
		"MicCorUEFCA2011_2011-06-27.der":           "Microsoft Corporation UEFI CA 2011",
		"microsoft corporation kek 2k ca 2023.der": "Microsoft Corporation KEK 2K CA 2023",
		"windows uefi ca 2023.der":                 "Windows UEFI CA 2023",
		"microsoft uefi ca 2023.der":               "Microsoft UEFI CA 2023",
		"microsoft option rom uefi ca 2023.der":    "Microsoft Option ROM UEFI CA 2023",
		"pk.der":                                   "OEM Platform Key",
	} {
		c, err := lab.NewCertificate(cn)
		if err != nil {
			t.Fatal(err)
		}
		certs[cn] = c
		if err := os.WriteFile(filepath.Join(dir, "certs", file), c.Raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ak.tpmt"), host.AKPublic(), 0o600); err != nil {
		t.Fatal(err)
	}
	// A host in state (3): the 2023 KEK and CAs, the PCA 2011 revoked by
	// dbx; it booted a boot manager admitted by authority.
	write := func(name string, authority *x509.Certificate) *VerifyOptions {
		t.Helper()
		w, err := eventlog.NewWriter(eventlog.FormatCryptoAgile, eventlog.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		ders := func(cns ...string) (out [][]byte) {
			for _, cn := range cns {
				out = append(out, certs[cn].Raw)
			}
			return out
		}
		w.Append(0, eventlog.EvSCRTMVersion, []byte("v1"))
		for _, v := range []struct {
			vendor [16]byte
			name   string
			data   []byte
		}{
			{bootlog.GUIDGlobalVariable, "SecureBoot", []byte{1}},
			{bootlog.GUIDGlobalVariable, "PK", bootlog.CertLists(ders("OEM Platform Key")...)},
			{bootlog.GUIDGlobalVariable, "KEK", bootlog.CertLists(ders("Microsoft Corporation KEK CA 2011", "Microsoft Corporation KEK 2K CA 2023")...)},
			{bootlog.GUIDImageSecurity, "db", bootlog.CertLists(ders("Microsoft Windows Production PCA 2011", "Microsoft Corporation UEFI CA 2011",
				"Windows UEFI CA 2023", "Microsoft UEFI CA 2023", "Microsoft Option ROM UEFI CA 2023")...)},
			{bootlog.GUIDImageSecurity, "dbx", bootlog.CertLists(ders("Microsoft Windows Production PCA 2011")...)},
		} {
			w.Append(7, eventlog.EvEFIVariableDriverConfig, bootlog.VariableData(v.vendor, v.name, v.data))
		}
		for p := uint32(0); p < 8; p++ {
			w.Append(p, eventlog.EvSeparator, []byte{0, 0, 0, 0})
		}
		w.Append(7, eventlog.EvEFIVariableAuthority, bootlog.VariableData(bootlog.GUIDImageSecurity, "db", append(make([]byte, 16), authority.Raw...)))
		w.AppendDigests(4, eventlog.EvEFIBootServicesApplication, bootlog.ImageLoadEvent(`\EFI\Microsoft\Boot\bootmgfw.efi`),
			eventlog.Digest{Alg: eventlog.SHA256, Value: eventlog.SHA256.Sum([]byte("bootmgfw.efi"))})
		w.Append(5, eventlog.EvEFIAction, []byte("Exit Boot Services Invocation"))
		pcrs := make([]int, 24)
		for i := range pcrs {
			pcrs[i] = i
		}
		nonce := []byte("rollover-nonce-0")
		q, err := host.Quote(eventlog.SHA256, pcrs, w.PCRs(), nonce)
		if err != nil {
			t.Fatal(err)
		}
		for f, b := range map[string][]byte{name + ".log": w.Bytes(), name + ".quote": q.Attest, name + ".sig": q.Signature} {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return &VerifyOptions{EventLog: filepath.Join(dir, name+".log"), Quotes: []string{filepath.Join(dir, name+".quote")},
			Signatures: []string{filepath.Join(dir, name+".sig")}, AK: filepath.Join(dir, "ak.tpmt"), Nonce: "726f6c6c6f7665722d6e6f6e63652d30",
			Format: "text"}
	}
	tests := []struct {
		host, policy, ci string
		authority        string
		trusted          bool
		want             []string
	}{
		{"current", "secureboot-2023.yaml", "boot-ci-2023.yaml", "Windows UEFI CA 2023", true, []string{
			"attestation: TRUSTED",
			"pass policy.kek: KEK holds the 1 certificates required",
			"pass policy.db: db holds the 1 certificates required and none of the 0 forbidden, and trusts none of the 1 not trusted",
			"pass policy.not-revoked:",
			"pass policy.boot-components: the code integrity policy allows all 1 boot components"}},
		{"current", "secureboot-transition.yaml", "boot-ci.yaml", "Windows UEFI CA 2023", true, []string{"attestation: TRUSTED"}},
		{"old", "secureboot-transition.yaml", "boot-ci.yaml", "Microsoft Windows Production PCA 2011", false, []string{
			`FAIL policy.not-revoked: the boot used what its own dbx revokes (firmware that honours dbx refuses it): authority db certificate "Microsoft Windows Production PCA 2011"`,
			"pass policy.boot-components"}},
		{"old", "secureboot-2023.yaml", "boot-ci-2023.yaml", "Microsoft Windows Production PCA 2011", false, []string{
			"FAIL policy.not-revoked", "FAIL policy.boot-components: 1 of 1 boot components blocked"}},
	}
	for _, tt := range tests {
		o := write(tt.host, certs[tt.authority])
		stdout := &bytes.Buffer{}
		o.IO = &cmdutil.IOStreams{Out: stdout, ErrOut: &bytes.Buffer{}}
		o.Policy, o.CIPolicies = filepath.Join(dir, tt.policy), []string{filepath.Join(dir, tt.ci)}
		err := runVerify(context.Background(), o)
		if tt.trusted && err != nil || !tt.trusted && !errors.Is(err, cmdutil.ErrFailed) {
			t.Fatalf("%s %s: %v\n%s", tt.host, tt.policy, err, stdout)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%s %s: no %q in\n%s", tt.host, tt.policy, w, stdout)
			}
		}
	}
}
