// Package attesttest loads the real event logs, quotes and keys of the
// shared test data (../shared/testdata/eventlogs, described in its
// README.md) for the tests of package attest, its CLI and its benchmark.
// Each fixture carries the PCR values its source states, never values
// computed here.
package attesttest

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/testenv"
)

// Dir returns the shared event log directory, or skips the test.
func Dir(t testing.TB) string {
	t.Helper()
	return testenv.Shared(t, "testdata/eventlogs")
}

// Log is one real event log.
type Log struct {
	// Name is the path under testdata/eventlogs.
	Name string
	Raw  []byte
	// Want holds the PCR values the source states (nil if it states none)
	// and WantSource where they come from.
	Want       eventlog.PCRs
	WantSource string
}

// Logs returns every real log of the shared data, in a fixed order: the
// raw .bin files and the logs embedded in the go-attestation and
// go-eventlog "Dump" JSON files.
func Logs(t testing.TB) []Log {
	t.Helper()
	dir := Dir(t)
	var out []Log
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// go-attestation: raw logs with PCRs from expected_pcrs.derived.json.
	var gaWant map[string]json.RawMessage
	if err := json.Unmarshal(read("go-attestation/expected_pcrs.derived.json"), &gaWant); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"coreos_36_shielded_vm_no_secure_boot_eventlog", "crypto_agile_eventlog",
		"ebs_event_missing_eventlog", "option_rom_eventlog", "sb_cert_eventlog", "short_no_action_eventlog"} {
		l := Log{Name: "go-attestation/" + f, Raw: read("go-attestation/" + f)}
		if raw, ok := gaWant[f]; ok {
			var w map[string]map[string]string
			if err := json.Unmarshal(raw, &w); err != nil {
				t.Fatal(err)
			}
			l.Want, l.WantSource = pcrsFromHex(t, w), "go-attestation/expected_pcrs.derived.json"
		}
		out = append(out, l)
	}
	for _, f := range []string{"go-attestation/windows_gcp_shielded_vm.json", "go-eventlog/linux_tpm12.json"} {
		d := ReadDump(t, filepath.Join(dir, f))
		out = append(out, Log{Name: f, Raw: d.Log.Raw, Want: d.PCRs(t), WantSource: f + " Log.PCRs"})
	}
	// go-tpm-tools: raw logs with PCRs from expected_pcrs.derived.json.
	var gtWant map[string]json.RawMessage
	if err := json.Unmarshal(read("go-tpm-tools/eventlogs/expected_pcrs.derived.json"), &gtWant); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "go-tpm-tools/eventlogs/*.bin"))
	sort.Strings(names)
	for _, p := range names {
		f := filepath.Base(p)
		l := Log{Name: "go-tpm-tools/eventlogs/" + f, Raw: read("go-tpm-tools/eventlogs/" + f)}
		if raw, ok := gtWant[f]; ok {
			var e struct {
				PCRs map[string]map[string]string `json:"pcrs"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			l.Want, l.WantSource = pcrsFromHex(t, e.PCRs), "go-tpm-tools/eventlogs/expected_pcrs.derived.json"
		}
		out = append(out, l)
	}
	// keylime: raw logs with the PCRs tpm2_eventlog printed (where it did).
	names, _ = filepath.Glob(filepath.Join(dir, "keylime-python3-uefi-eventlog/*.bin"))
	sort.Strings(names)
	for _, p := range names {
		rel := "keylime-python3-uefi-eventlog/" + filepath.Base(p)
		l := Log{Name: rel, Raw: read(rel)}
		yml := strings.TrimSuffix(rel, ".bin") + ".yml"
		if w := yamlPCRs(t, read(yml)); w != nil {
			l.Want, l.WantSource = w, yml+" pcrs (tpm2_eventlog)"
		}
		out = append(out, l)
	}
	return out
}

// Find returns the log named name (a path under testdata/eventlogs).
func Find(t testing.TB, name string) Log {
	t.Helper()
	for _, l := range Logs(t) {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("attesttest: no log %q", name)
	return Log{}
}

var bankNames = map[string]eventlog.HashAlg{"SHA1": eventlog.SHA1, "SHA256": eventlog.SHA256, "SHA384": eventlog.SHA384,
	"sha1": eventlog.SHA1, "sha256": eventlog.SHA256, "sha384": eventlog.SHA384}

func pcrsFromHex(t testing.TB, m map[string]map[string]string) eventlog.PCRs {
	t.Helper()
	out := eventlog.PCRs{}
	for bank, vals := range m {
		alg, ok := bankNames[bank]
		if !ok {
			t.Fatalf("attesttest: unknown bank %q", bank)
		}
		for idx, h := range vals {
			i, err := strconv.Atoi(idx)
			if err != nil {
				t.Fatal(err)
			}
			v, err := hex.DecodeString(strings.TrimPrefix(h, "0x"))
			if err != nil {
				t.Fatal(err)
			}
			out.Set(alg, i, v)
		}
	}
	return out
}

var ymlPCR = regexp.MustCompile(`^\s+(\d+)\s*:\s*0x([0-9a-fA-F]+)\s*$`)

// yamlPCRs reads the "pcrs:" section tpm2_eventlog ends its output with.
func yamlPCRs(t testing.TB, b []byte) eventlog.PCRs {
	i := bytes.Index(b, []byte("\npcrs:\n"))
	if i < 0 {
		return nil
	}
	m := map[string]map[string]string{}
	bank := ""
	sc := bufio.NewScanner(bytes.NewReader(b[i+7:]))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  ") && strings.HasSuffix(line, ":") && !strings.HasPrefix(line, "    ") {
			bank = strings.TrimSuffix(strings.TrimSpace(line), ":")
			m[bank] = map[string]string{}
			continue
		}
		if g := ymlPCR.FindStringSubmatch(line); g != nil && bank != "" {
			m[bank][g[1]] = g[2]
		}
	}
	return pcrsFromHex(t, m)
}

// Dump is go-attestation's test "Dump" JSON (byte fields base64).
type Dump struct {
	Static struct {
		TPMVersion int
	}
	AK struct {
		Public                  []byte
		UseTCSDActivationFormat bool
	}
	Quote struct {
		Nonce     []byte
		Alg       int
		Quote     []byte
		Signature []byte
	}
	Log struct {
		PCRs []struct {
			Index     int
			Digest    []byte
			DigestAlg crypto.Hash
		}
		Raw []byte
	}
}

// ReadDump reads a Dump JSON file.
func ReadDump(t testing.TB, path string) *Dump {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d Dump
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &d
}

// PCRs returns the dump's PCR values.
func (d *Dump) PCRs(t testing.TB) eventlog.PCRs {
	out := eventlog.PCRs{}
	for _, p := range d.Log.PCRs {
		var a eventlog.HashAlg
		switch p.DigestAlg {
		case crypto.SHA1:
			a = eventlog.SHA1
		case crypto.SHA256:
			a = eventlog.SHA256
		default:
			t.Fatalf("attesttest: dump PCR of hash %v", p.DigestAlg)
		}
		out.Set(a, p.Index, p.Digest)
	}
	return out
}

// Quote is one TPM2 quote of a real attestation.
type Quote struct {
	Bank      eventlog.HashAlg
	Attest    []byte // TPMS_ATTEST
	Signature []byte // TPMT_SIGNATURE
	// PCRs are the quoted values the source states (nil if none).
	PCRs eventlog.PCRs
}

// Attestation is a real TPM2 attestation: a log, quotes and the AK.
type Attestation struct {
	Name  string
	Log   []byte
	Nonce []byte
	// AKPublic is the TPMT_PUBLIC of the AK; AKCert its certificate (DER),
	// if any, and Roots, Intermediates the CA certificates (DER) it chains
	// to.
	AKPublic      []byte
	AKCert        []byte
	Roots         [][]byte
	Intermediates [][]byte
	Quotes        []Quote
	// SHA1Signed says the quotes are signed with SHA-1 (Windows).
	SHA1Signed bool
}

// Attestations returns the real TPM2 attestations: the Windows GCP
// Shielded VM (SHA1 log, one SHA1-signed quote, empty nonce) and the two
// GCE COS 85 attestations (three quotes each, AK certificate).
func Attestations(t testing.TB) []Attestation {
	t.Helper()
	dir := Dir(t)
	var out []Attestation
	d := ReadDump(t, filepath.Join(dir, "go-attestation/windows_gcp_shielded_vm.json"))
	out = append(out, Attestation{
		Name: "go-attestation/windows_gcp_shielded_vm.json", Log: d.Log.Raw, Nonce: d.Quote.Nonce,
		AKPublic:   d.AK.Public,
		Quotes:     []Quote{{Bank: eventlog.SHA1, Attest: d.Quote.Quote, Signature: d.Quote.Signature, PCRs: d.PCRs(t)}},
		SHA1Signed: true,
	})
	ca := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "go-tpm-tools/ca-certs", f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, f := range []string{"gce-cos-85-nonce9009.derived.json", "gce-cos-85-no-nonce.derived.json"} {
		b, err := os.ReadFile(filepath.Join(dir, "go-tpm-tools/attestations", f))
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			Nonce    string `json:"nonce_hex"`
			AKPub    string `json:"ak_pub_tpmt_public_b64"`
			AKCert   string `json:"ak_cert_der_b64"`
			EventLog string `json:"event_log_b64"`
			Quotes   []struct {
				Bank   string            `json:"pcr_bank"`
				PCRs   map[string]string `json:"pcrs_hex"`
				Attest string            `json:"quote_tpms_attest_b64"`
				Sig    string            `json:"raw_sig_tpmt_signature_b64"`
			} `json:"quotes"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		a := Attestation{Name: "go-tpm-tools/attestations/" + f,
			Roots:         [][]byte{ca("tpm_ek_root_1.cer"), ca("gcp_ek_ak_ca_root.crt")},
			Intermediates: [][]byte{ca("tpm_ek_intermediate_2.crt"), ca("tpm_ek_intermediate_3.crt"), ca("gcp_ek_ak_ca_intermediate_v3.crt")},
		}
		a.Nonce = mustHex(t, j.Nonce)
		a.AKPublic, a.AKCert, a.Log = mustB64(t, j.AKPub), mustB64(t, j.AKCert), mustB64(t, j.EventLog)
		for _, q := range j.Quotes {
			alg := bankNames[q.Bank]
			a.Quotes = append(a.Quotes, Quote{Bank: alg, Attest: mustB64(t, q.Attest), Signature: mustB64(t, q.Sig),
				PCRs: pcrsFromHex(t, map[string]map[string]string{q.Bank: q.PCRs})})
		}
		out = append(out, a)
	}
	return out
}

// FindAttestation returns the attestation named name.
func FindAttestation(t testing.TB, name string) Attestation {
	t.Helper()
	for _, a := range Attestations(t) {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("attesttest: no attestation %q", name)
	return Attestation{}
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustB64(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PEMOrDER returns a certificate's DER, decoding PEM if it is PEM.
func PEMOrDER(b []byte) []byte {
	if blk, _ := pem.Decode(b); blk != nil {
		return blk.Bytes
	}
	return b
}
