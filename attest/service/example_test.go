package service_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
)

// A host attests to the service and opens its credential. The host here is
// a software one (package servicetest); package client does the same with
// a TPM.
func Example() {
	host, _ := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	ca, caKey, _ := servicetest.NewCA("Example Attestation CA", time.Now())
	// The host's boot: Secure Boot on, a boot loader admitted by db.
	app := sha256.Sum256([]byte("boot loader"))
	boot, _ := servicetest.SecureBootLog(servicetest.BootOptions{SecureBoot: true, DB: []*x509.Certificate{ca},
		Apps: []servicetest.App{{SHA256: app[:], SHA1: app[:20]}}})

	srv, err := service.New(service.Config{
		LoadPolicy: func() (*service.Policy, error) {
			p, err := attest.ParsePolicy([]byte("format: csv-attest-policy/v1\nname: example\nboot_components: ignore\n"),
				"example.yaml", attest.PolicyOptions{})
			return &service.Policy{Attestation: p}, err
		},
		EKAllowlist: [][32]byte{host.EKKeySHA256()}, // the enrolled fleet
		CA:          ca, CAKey: caKey,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	post := func(path string, in, out any) {
		b, _ := json.Marshal(in)
		resp, err := http.Post(ts.URL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(out)
	}

	var nonce service.NonceResponse
	post(service.PathNonce, host.NonceRequest(), &nonce)
	req, _ := host.Evidence(&nonce, boot.Bytes(), boot.PCRs())
	var r service.AttestResponse
	post(service.PathAttest, req, &r)
	fmt.Println(r.Verdict, r.Credential.Format)

	token, err := host.Open(r.Credential) // TPM2_ActivateCredential, then AES-GCM
	fmt.Println(strings.Count(string(token), "."), err)
	// Output:
	// trusted token
	// 2 <nil>
}
