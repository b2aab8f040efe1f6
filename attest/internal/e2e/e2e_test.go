//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/client"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/internal/swtpmtest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/attest/wire"
	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
)

var claimsOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 42, 1}

// akHandle is where the tests persist an AK.
const akHandle = tpm2.TPMHandle(0x81000100)

// fleet is a boot every host of the tests makes, and the files that
// describe it to the service.
type fleet struct {
	dir      string
	w        *eventlog.Writer
	log      []byte
	logFile  string
	policy   string // attestation policy file
	ciPolicy string // code integrity policy file
	appSHA   []byte
}

// newFleet writes the synthetic boot: Secure Boot on, PK, KEK and db from
// the test CA, and one boot application (a PE built here) whose
// Authenticode digests are its measurements; and the policies that trust
// it: PK and KEK exactly, db containing the signer, debugging forbidden,
// the boot application allowed by a hash rule.
func newFleet(t *testing.T) *fleet {
	t.Helper()
	ca := testca.New(t)
	db := ca.Leaf(t, testca.LeafOptions{CommonName: "Test Boot Signing"})
	img := testbin.PE(testbin.PEOptions{Data: []byte("a boot application")})
	im, err := authpe.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	a256, err := im.Digest(bytes.NewReader(img), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := im.Digest(bytes.NewReader(img), crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	w, err := servicetest.SecureBootLog(servicetest.BootOptions{SecureBoot: true,
		PK: []*x509.Certificate{ca.Root.Cert}, KEK: []*x509.Certificate{ca.Intermediate.Cert}, DB: []*x509.Certificate{db.Cert},
		DBX: [][]byte{bytes.Repeat([]byte{0xdb}, 32)}, Apps: []servicetest.App{{SHA256: a256, SHA1: a1}}})
	if err != nil {
		t.Fatal(err)
	}
	fl := &fleet{dir: t.TempDir(), w: w, log: w.Bytes(), appSHA: a256}
	put := func(name string, b []byte) string {
		p := filepath.Join(fl.dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	put("pk.pem", testca.PEM(ca.Root.Cert))
	put("kek.pem", testca.PEM(ca.Intermediate.Cert))
	put("db.pem", testca.PEM(db.Cert))
	fl.logFile = put("binary_bios_measurements", fl.log)
	fl.policy = put("attest.yaml", []byte(`format: csv-attest-policy/v1
name: e2e-fleet
secure_boot: required
pk: [{certificate_file: pk.pem}]
kek: [{certificate_file: kek.pem}]
db:
  contains: [{certificate_file: db.pem}]
dbx:
  includes: [{sha256: `+strings.Repeat("db", 32)+`}]
debugging: forbidden
boot_components: ci_policy
`))
	fl.ciPolicy = put("boot-ci.yaml", []byte(fmt.Sprintf(`format: csv-policy/v1
name: e2e-boot
rules:
  - {id: boot-app, action: allow, authenticode_sha256: %x, scenarios: [boot]}
`, a256)))
	return fl
}

// loadPolicy reads the fleet's policy files.
func (fl *fleet) loadPolicy() (*service.Policy, error) {
	b, err := os.ReadFile(fl.policy)
	if err != nil {
		return nil, err
	}
	p, err := attest.ParsePolicy(b, fl.policy, attest.PolicyOptions{ReadFile: func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(fl.dir, name))
	}})
	if err != nil {
		return nil, err
	}
	cb, err := os.ReadFile(fl.ciPolicy)
	if err != nil {
		return nil, err
	}
	cp, err := cipolicy.Parse(cb, fl.ciPolicy)
	if err != nil {
		return nil, err
	}
	set, err := cipolicy.NewSet(cipolicy.SetOptions{}, cp)
	if err != nil {
		return nil, err
	}
	return &service.Policy{Attestation: p, CI: set}, nil
}

// tlsFor issues a TLS server certificate for 127.0.0.1 from ca.
func tlsFor(t *testing.T, ca *x509.Certificate, caKey crypto.Signer) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// lab is two swtpm TPMs, the fleet's boot, and a service over HTTPS on
// loopback that trusts EKs certified by the swtpm local CA or on the
// allowlist.
type lab struct {
	tpms     *swtpmtest.Lab
	a, b     *swtpmtest.TPM
	fleet    *fleet
	srv      *service.Server
	url      string
	http     *http.Client
	ca       *x509.Certificate
	log      *testenv.SyncBuffer
	eccA     [32]byte // TPM a's ECC P-256 EK (allowlisted)
	tlsCAPEM []byte
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{tpms: swtpmtest.NewLab(t), fleet: newFleet(t), log: &testenv.SyncBuffer{}}
	l.a = l.tpms.New(t, "a")
	l.b = l.tpms.New(t, "b")
	roots, inter := l.tpms.EKRoots(t)
	// TPM a's ECC P-256 EK has no certificate: the service knows it from
	// the allowlist, as an enrolled fleet's.
	c := l.a.Open(t)
	at, err := client.NewAttester(c, client.Options{EK: client.ECC})
	if err != nil {
		t.Fatal(err)
	}
	l.eccA, err = at.EKKeySHA256()
	if err != nil {
		t.Fatal(err)
	}
	at.Close()
	c.Close()

	ca, caKey, err := servicetest.NewCA("e2e attestation CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.ca = ca
	l.tlsCAPEM = testca.PEM(ca)
	l.srv, err = service.New(service.Config{
		LoadPolicy: l.fleet.loadPolicy,
		EKRoots:    roots, EKIntermediates: inter, EKAllowlist: [][32]byte{l.eccA},
		CA: ca, CAKey: caKey, CredentialFormat: service.FormatX509, ClaimsOID: claimsOID,
		TLS:    &tls.Config{Certificates: []tls.Certificate{tlsFor(t, ca, caKey)}},
		Logger: slog.New(slog.NewJSONHandler(l.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	l.url = "https://" + ln.Addr().String()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	l.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return l
}

// boot resets a TPM and extends the fleet's boot into it.
func (l *lab) boot(t *testing.T, tp *swtpmtest.TPM) {
	t.Helper()
	tp.Restart(t)
	tp.Extend(t, l.fleet.log)
}

// host opens a TPM and loads its keys.
// twoHosts boots both TPMs with the fleet's log and returns a client on
// each (RSA EKs).
func (l *lab) twoHosts(t *testing.T) (ca, cb *client.Client) {
	t.Helper()
	l.boot(t, l.a)
	l.boot(t, l.b)
	return l.host(t, l.a, client.Options{EK: client.RSA}, l.fleet.log), l.host(t, l.b, client.Options{EK: client.RSA}, l.fleet.log)
}

func (l *lab) host(t *testing.T, tp *swtpmtest.TPM, o client.Options, log []byte) *client.Client {
	t.Helper()
	c, err := client.Open(tp.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := client.NewAttester(c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &client.Client{Attester: a, URL: l.url, HTTP: l.http, EventLog: log}
}

func failedChecks(r *wire.AttestResponse) []string {
	var out []string
	if r != nil && r.Result != nil {
		for _, c := range r.Result.Checks {
			if !c.Passed {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// wantRefused checks a refusal: ErrRefused, no credential, the check named.
func wantRefused(t *testing.T, r *wire.AttestResponse, err error, check string) {
	t.Helper()
	var re *client.RefusedError
	if !errors.Is(err, client.ErrRefused) || !errors.As(err, &re) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if re.Response.Credential != nil || re.Response.Trusted {
		t.Fatal("a refusal carries a credential")
	}
	if f := failedChecks(re.Response); !slices.Contains(f, check) {
		t.Fatalf("failed checks %v, want %s", f, check)
	}
}

// checkAKCertificate checks a credential's payload: an AK certificate
// from the service CA for the host's AK, stating the claims.
func (l *lab) checkAKCertificate(t *testing.T, der []byte, c *client.Client) {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(l.ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}
	ak, err := attest.ParseAK(c.Attester.AKPublic())
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(ak.Public) {
		t.Fatal("the certificate does not certify the host's AK")
	}
	cl, err := service.ClaimsFromCertificate(cert, claimsOID)
	if err != nil {
		t.Fatal(err)
	}
	if cl.AKName != hex.EncodeToString(c.Attester.AKName()) || !cl.Claims.SecureBootEnabled || len(cl.Claims.BootComponents) != 1 ||
		cl.Claims.BootComponents[0].AuthenticodeSHA256 != hex.EncodeToString(l.fleet.appSHA) || cl.Policy.Name != "e2e-fleet" {
		t.Fatalf("claims %+v", cl)
	}
}

// TestSwtpm runs the attestation against swtpm: good hosts get a
// credential only their TPM activates; altered logs, changed PCRs,
// replayed nonces and another TPM's AK get refusals and nothing to
// activate; a credential made for one TPM does not activate on another.
func TestSwtpm(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()

	t.Run("the PCRs hold what the log says", func(t *testing.T) {
		// tpm2-tools reads the PCRs; eventlog.Writer computed what they
		// must hold: two independent accounts of the same extends.
		l.boot(t, l.a)
		out := l.a.Tool(t, "tpm2_pcrread", "sha1:0,1,2,3,4,5,6,7+sha256:0,1,2,3,4,5,6,7,8,12")
		got := parsePCRRead(t, out)
		want := l.fleet.w.PCRs()
		for _, alg := range []eventlog.HashAlg{eventlog.SHA1, eventlog.SHA256} {
			for _, p := range []int{0, 1, 2, 3, 4, 5, 6, 7} {
				if !bytes.Equal(got.Get(alg, p), want.Get(alg, p)) {
					t.Errorf("%s PCR %d: TPM %x, writer %x", alg, p, got.Get(alg, p), want.Get(alg, p))
				}
			}
		}
	})

	for _, tc := range []struct {
		name   string
		o      client.Options
		ekWhy  string
		hasCrt bool
	}{
		{"good host, RSA EK certified by the TPM's CA", client.Options{EK: client.RSA}, "chains to EK root", true},
		{"good host, ECC P-384 EK certified, RSA AK", client.Options{EK: client.ECCP384, AK: client.RSA}, "chains to EK root", true},
		{"good host, ECC P-256 EK on the allowlist, AK persisted", client.Options{EK: client.ECC, AKHandle: akHandle}, "EK allowlist", false},
		{"auto EK choice", client.Options{}, "chains to EK root", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.boot(t, l.a)
			c := l.host(t, l.a, tc.o, l.fleet.log)
			if got := c.Attester.EKCertificate() != nil; got != tc.hasCrt {
				t.Fatalf("EK certificate read from NV: %v", got)
			}
			out, err := c.Attest(ctx)
			if err != nil {
				t.Fatalf("%v (failed checks %v)", err, failedChecks(responseOf(err)))
			}
			if !out.Response.Trusted || !strings.Contains(out.Response.Result.Checks[1].Detail, tc.ekWhy) {
				t.Fatalf("response %+v", out.Response.Result.Checks[:2])
			}
			l.checkAKCertificate(t, out.Payload, c)
		})
	}

	t.Run("tpm2-tools activates the service's credential", func(t *testing.T) {
		// An independent TPM2 stack (tpm2-tools, tss2) recovers the same
		// secret from the credential, with the AK persisted by the
		// previous case and the RSA EK: the credential is a standard
		// TPM2_MakeCredential blob, not something only this client reads.
		l.boot(t, l.a)
		c := l.host(t, l.a, client.Options{EK: client.RSA, AKHandle: akHandle}, l.fleet.log)
		if c.Attester.AKHandle() != akHandle {
			t.Fatalf("AK at 0x%x, not loaded from the persistent handle", c.Attester.AKHandle())
		}
		n, err := c.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req, err := c.Evidence(n)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := c.Attester.ActivateCredential(r.Credential.IDObject, r.Credential.EncryptedSecret)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		blob := binary.BigEndian.AppendUint32(nil, 0xBADCC0DE)
		blob = binary.BigEndian.AppendUint32(blob, 1)
		blob = binary.BigEndian.AppendUint16(blob, uint16(len(r.Credential.IDObject)))
		blob = append(blob, r.Credential.IDObject...)
		blob = binary.BigEndian.AppendUint16(blob, uint16(len(r.Credential.EncryptedSecret)))
		blob = append(blob, r.Credential.EncryptedSecret...)
		credFile, secretFile, session := filepath.Join(dir, "cred.blob"), filepath.Join(dir, "secret"), filepath.Join(dir, "session.ctx")
		if err := os.WriteFile(credFile, blob, 0o600); err != nil {
			t.Fatal(err)
		}
		l.a.Tool(t, "tpm2_readpublic", "-c", fmt.Sprintf("0x%x", uint32(akHandle)))
		l.a.Tool(t, "tpm2_startauthsession", "--policy-session", "-S", session)
		l.a.Tool(t, "tpm2_policysecret", "-S", session, "-c", "e")
		l.a.Tool(t, "tpm2_activatecredential", "-c", fmt.Sprintf("0x%x", uint32(akHandle)), "-C", "0x81010001",
			"-i", credFile, "-o", secretFile, "-P", "session:"+session)
		theirs, err := os.ReadFile(secretFile)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(theirs, ours) || len(ours) != 32 {
			t.Fatalf("tpm2-tools recovered %x, this client %x", theirs, ours)
		}
		payload, err := service.Open(r.Credential, theirs, c.Attester.AKName())
		if err != nil {
			t.Fatal(err)
		}
		l.checkAKCertificate(t, payload, c)
		// Leave the TPM as the other cases expect it.
		l.a.Tool(t, "tpm2_evictcontrol", "-C", "o", "-c", fmt.Sprintf("0x%x", uint32(akHandle)))
	})

	t.Run("altered log", func(t *testing.T) {
		l.boot(t, l.a)
		log := slices.Clone(l.fleet.log)
		i := bytes.Index(log, l.fleet.appSHA)
		log[i] ^= 1 // another boot application's digest
		c := l.host(t, l.a, client.Options{EK: client.RSA}, log)
		out, err := c.Attest(ctx)
		if out != nil {
			t.Fatal("an outcome for a refused host")
		}
		wantRefused(t, responseOf(err), err, "replay")
	})

	t.Run("PCRs differ from the log", func(t *testing.T) {
		l.boot(t, l.a)
		tc := l.a.Open(t)
		l.a.ExtendDigests(t, tc, 4, []tpm2.TPMTHA{
			{HashAlg: tpm2.TPMAlgSHA1, Digest: bytes.Repeat([]byte{1}, 20)},
			{HashAlg: tpm2.TPMAlgSHA256, Digest: bytes.Repeat([]byte{1}, 32)}})
		tc.Close()
		c := l.host(t, l.a, client.Options{EK: client.RSA}, l.fleet.log)
		_, err := c.Attest(ctx)
		wantRefused(t, responseOf(err), err, "replay")
	})

	t.Run("replayed nonce", func(t *testing.T) {
		l.boot(t, l.a)
		c := l.host(t, l.a, client.Options{EK: client.RSA}, l.fleet.log)
		n, err := c.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req, err := c.Evidence(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Submit(ctx, req); err != nil {
			t.Fatal(err)
		}
		r, err := c.Submit(ctx, req)
		wantRefused(t, r, err, "nonce")
		if f := failedChecks(r); len(f) != 1 {
			t.Fatalf("failed checks %v: the replay is refused before anything else", f)
		}
	})

	t.Run("another TPM's AK", func(t *testing.T) {
		// Host b quotes with its own AK but presents a's AK (with a nonce
		// bound to a's AK and b's EK, so that the nonce is not what fails).
		ca, cb := l.twoHosts(t)
		ekB, _ := cb.Attester.EKKeySHA256()
		n := l.nonceFor(t, ca.Attester.AKName(), ekB)
		req, err := cb.Evidence(n)
		if err != nil {
			t.Fatal(err)
		}
		req.AKPublic = ca.Attester.AKPublic()
		r, err := cb.Submit(ctx, req)
		wantRefused(t, r, err, "quote[1].signature")
	})

	t.Run("a credential for one TPM does not activate on another", func(t *testing.T) {
		ca, cb := l.twoHosts(t)
		n, err := ca.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		req, err := ca.Evidence(n)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ca.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cb.Attester.Open(r.Credential)
		var te *client.TPMError
		if !errors.As(err, &te) {
			t.Fatalf("TPM b on TPM a's credential: %v, want the TPM's refusal", err)
		}
		// libtpms answers TPM_RC_FAILURE where the seed does not decrypt
		// (a hardware TPM: TPM_RC_VALUE); the TPM stays usable.
		t.Logf("TPM b refuses: %v", err)
		if _, err := ca.Attester.Open(r.Credential); err != nil {
			t.Fatalf("TPM a cannot activate its own credential: %v", err)
		}
	})

	t.Run("a man in the middle who swaps in another trusted EK gets nothing usable", func(t *testing.T) {
		// b's evidence, submitted with a's (trusted) EK: the service cannot
		// tell and issues, but b lacks a's EK and a lacks b's AK.
		ca, cb := l.twoHosts(t)
		ekA, _ := ca.Attester.EKKeySHA256()
		n := l.nonceFor(t, cb.Attester.AKName(), ekA)
		req, err := cb.Evidence(n)
		if err != nil {
			t.Fatal(err)
		}
		req.EKPublic, req.EKCertificate = ca.Attester.EKPublic(), ca.Attester.EKCertificate()
		r, err := cb.Submit(ctx, req)
		if err != nil {
			t.Fatalf("%v", err)
		}
		for name, at := range map[string]*client.Attester{"b (its AK, not the EK)": cb.Attester, "a (its EK, not the AK)": ca.Attester} {
			_, err := at.Open(r.Credential)
			var te *client.TPMError
			if !errors.As(err, &te) {
				t.Fatalf("TPM %s: %v, want the TPM's refusal", name, err)
			}
			t.Logf("TPM %s refuses: %v", name, err)
		}
	})

	// Every decision was logged as one JSON line.
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(l.log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "attestation decision" {
			n++
		}
	}
	if n == 0 {
		t.Error("no decision logged")
	}
}

func responseOf(err error) *wire.AttestResponse {
	var re *client.RefusedError
	if errors.As(err, &re) {
		return re.Response
	}
	return nil
}

// nonceFor asks for a nonce bound to any AK name and EK.
func (l *lab) nonceFor(t *testing.T, akName []byte, ek [32]byte) *service.NonceResponse {
	t.Helper()
	b, _ := json.Marshal(service.NonceRequest{AKName: hex.EncodeToString(akName), EKKeySHA256: hex.EncodeToString(ek[:])})
	resp, err := l.http.Post(l.url+service.PathNonce, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n service.NonceResponse
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("nonce: %d %v", resp.StatusCode, err)
	}
	return &n
}

var pcrLine = regexp.MustCompile(`^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$`)

// parsePCRRead reads tpm2_pcrread's output.
func parsePCRRead(t *testing.T, out string) eventlog.PCRs {
	t.Helper()
	p := eventlog.PCRs{}
	var bank eventlog.HashAlg
	for _, line := range strings.Split(out, "\n") {
		if s := strings.TrimSpace(line); strings.HasSuffix(s, ":") {
			if a, err := eventlog.ParseHashAlg(strings.TrimSuffix(s, ":")); err == nil {
				bank = a
			}
			continue
		}
		if m := pcrLine.FindStringSubmatch(line); m != nil && bank != 0 {
			i, _ := strconv.Atoi(m[1])
			v, err := hex.DecodeString(m[2])
			if err != nil {
				t.Fatal(err)
			}
			p.Set(bank, i, v)
		}
	}
	return p
}

var _ = io.EOF
