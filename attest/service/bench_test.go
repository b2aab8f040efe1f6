package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/service/servicetest"
	"github.com/codesignval/csv/internal/limits"
)

// BenchmarkAttest measures the service's handler alone (no network) on a
// real-size log: GCE COS 85's (24 KB, three banks), quoted by a software
// host over the values it replays to. Per op: one POST /v1/attest judged
// trusted, the credential made (nonce minting and the host's work are
// outside the timer).
func BenchmarkAttest(b *testing.B) {
	a := attesttest.FindAttestation(b, "go-tpm-tools/attestations/gce-cos-85-nonce9009.derived.json")
	l, err := eventlog.Parse(a.Log)
	if err != nil {
		b.Fatal(err)
	}
	r := l.Replay()
	pcrs := eventlog.PCRs{}
	for p := 0; p < eventlog.NumPCRs; p++ {
		if c := r.Candidates(eventlog.SHA256, p); len(c) > 0 {
			pcrs.Set(eventlog.SHA256, p, c[0].Value)
		}
	}
	h, err := servicetest.NewHost(servicetest.ECC, servicetest.ECC)
	if err != nil {
		b.Fatal(err)
	}
	// The policy: strict defaults, the boot components allowed by hash.
	nonce := []byte("setup")
	q, _ := h.Quote(eventlog.SHA256, service.DefaultPCRs()[0].PCRs, pcrs, nonce)
	ak, _ := attest.ParseAK(h.AKPublic())
	v, err := attest.Verify(context.Background(), &attest.Evidence{EventLog: a.Log, Quotes: []attest.Quote{{Attest: q.Attest, Signature: q.Signature}}}, attest.VerifyOptions{AK: ak, Nonce: nonce})
	if err != nil {
		b.Fatal(err)
	}
	var rules strings.Builder
	for i, c := range v.BootState().Components {
		fmt.Fprintf(&rules, "  - {id: c%d, action: allow, authenticode_sha256: %x, scenarios: [boot]}\n", i, c.AuthenticodeSHA256)
	}
	ca, caKey, _ := servicetest.NewCA("bench CA", epoch)
	srv, err := service.New(service.Config{
		LoadPolicy: loadPolicy("format: csv-attest-policy/v1\nname: bench\n", "format: csv-policy/v1\nname: b\nrules:\n"+rules.String()),
		CA:         ca, CAKey: caKey, EKAllowlist: [][32]byte{h.EKKeySHA256()},
		// One host attests as fast as it can: lift its share of the
		// used-nonce cache.
		MaxUsedNoncesPerEK: 1 << 20,
		Logger:             slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	hd := srv.Handler()
	post := func(path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		hd.ServeHTTP(w, req)
		return w
	}
	nr, _ := json.Marshal(h.NonceRequest())
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		var n service.NonceResponse
		json.Unmarshal(post(service.PathNonce, nr).Body.Bytes(), &n)
		req, err := h.Evidence(&n, a.Log, pcrs)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := json.Marshal(req)
		b.StartTimer()
		w := post(service.PathAttest, body)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkAttestFlood measures the service's handler on submissions
// built to cost the most (see flood):
//
//   - 6000x600: the issue's, 6,000 components and 600 authorities (about
//     1 MB of body): refused by the caps on components and authorities.
//   - 4MiB-flood: as many components and authorities as the default body
//     cap holds, ten components per authority: refused by the caps.
//   - 4MiB-at-caps: the most an attacker alone can ask for at the default
//     body cap: limits.MaxBootComponents components and
//     limits.MaxBootAuthorities distinct authorities of its own, under a
//     path-scoped rule (each component judged under each image load type),
//     the rest of the body filled with the same authorities' events over
//     again: judged not trusted.
//   - 4MiB-at-caps-named: the same, but the code integrity policy names
//     every authority one by one, so that none is judged like another and
//     every judgement allows: the most judging work the caps allow (judged
//     trusted, the credential made). A real policy names a few.
func BenchmarkAttestFlood(b *testing.B) {
	for _, tc := range []struct {
		name string
		fo   floodOptions
	}{
		{"6000x600", floodOptions{components: 6000, authorities: 600}},
		{"4MiB-flood", floodOptions{components: 24000, authorities: 2400}},
		{"4MiB-at-caps", floodOptions{components: limits.MaxBootComponents, authorities: limits.MaxBootAuthorities - 1, bodyBytes: 4 << 20}},
		{"4MiB-at-caps-named", floodOptions{components: limits.MaxBootComponents, authorities: limits.MaxBootAuthorities - 1, named: true, bodyBytes: 4 << 20}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFlood(b, tc.fo)
			size := len(f.body(b))
			if size > 4<<20 {
				b.Fatalf("the body is %d bytes, over the default cap", size)
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				body := f.body(b)
				b.StartTimer()
				w := f.post(service.PathAttest, body)
				if w.Code != http.StatusForbidden && w.Code != http.StatusOK {
					b.Fatalf("%d %.300s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(size), "body-bytes")
		})
	}
}
