// Package bench compares csv's attestation verifier with
// github.com/google/go-attestation on the same real evidence, in the same
// run. It is a module of its own so that go-attestation stays out of csv's
// go.mod.
package bench

import (
	"context"
	"crypto"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	goattest "github.com/google/go-attestation/attest"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/attesttest"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/cipolicy"
)

var hashOf = map[eventlog.HashAlg]crypto.Hash{eventlog.SHA1: crypto.SHA1, eventlog.SHA256: crypto.SHA256, eventlog.SHA384: crypto.SHA384}

type workload struct {
	name    string
	ev      *attest.Evidence
	opts    attest.VerifyOptions
	policy  *attest.Policy
	set     *cipolicy.Set
	signers *cipolicy.Set // a code integrity policy of signer rules
	windows bool
	// go-attestation's inputs.
	akPub  []byte
	quotes []goattest.Quote
	pcrs   []goattest.PCR
	nonce  []byte
}

// workloads loads the real attestations (the Windows GCP Shielded VM and
// the GCE COS 85 VM with three quotes) and, for csv, a policy requiring
// Secure Boot, no debugging, code integrity on Windows, and every boot
// component allowed by a code integrity policy of their digests.
func workloads(b *testing.B) []workload {
	var out []workload
	for _, a := range attesttest.Attestations(b) {
		if a.Name == "go-tpm-tools/attestations/gce-cos-85-no-nonce.derived.json" {
			continue // the same evidence as the nonce9009 one
		}
		w := workload{name: a.Name[strings.LastIndex(a.Name, "/")+1:], akPub: a.AKPublic, nonce: a.Nonce, windows: a.SHA1Signed}
		w.ev = &attest.Evidence{EventLog: a.Log, PCRs: eventlog.PCRs{}}
		for _, q := range a.Quotes {
			w.ev.Quotes = append(w.ev.Quotes, attest.Quote{Attest: q.Attest, Signature: q.Signature})
			w.quotes = append(w.quotes, goattest.Quote{Quote: q.Attest, Signature: q.Signature})
			for i, v := range q.PCRs[q.Bank] {
				if v != nil {
					w.ev.PCRs.Set(q.Bank, i, v)
					w.pcrs = append(w.pcrs, goattest.PCR{Index: i, Digest: v, DigestAlg: hashOf[q.Bank]})
				}
			}
		}
		ak, err := attest.ParseAK(a.AKPublic)
		if err != nil {
			b.Fatal(err)
		}
		w.opts = attest.VerifyOptions{AK: ak, Nonce: a.Nonce, AllowSHA1Unsafe: true, AllowEmptyNonceUnsafe: len(a.Nonce) == 0}
		v, err := attest.Verify(context.Background(), w.ev, w.opts)
		if err != nil {
			b.Fatal(err)
		}
		var rules strings.Builder
		for i, c := range v.BootState().Components {
			alg, d := "authenticode_sha256", c.AuthenticodeSHA256
			if d == nil {
				alg, d = "authenticode_sha1", c.AuthenticodeSHA1
			}
			fmt.Fprintf(&rules, "  - {id: c%d, action: allow, %s: %s}\n", i, alg, hex.EncodeToString(d))
		}
		cp, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: boot\nrules:\n"+rules.String()), "boot.yaml")
		if err != nil {
			b.Fatal(err)
		}
		if w.set, err = cipolicy.NewSet(cipolicy.SetOptions{}, cp); err != nil {
			b.Fatal(err)
		}
		// The same components allowed by signer rules naming the Secure
		// Boot authorities: the authority certificates are then parsed.
		var srules strings.Builder
		for i, a := range v.BootState().DistinctAuthorities() {
			if c := a.Certificate(); c != nil {
				fmt.Fprintf(&srules, "  - {id: s%d, action: allow, signer: {tbs: %x, level: any}}\n", i, c.TBSHash)
			}
		}
		sp, err := cipolicy.Parse([]byte("format: csv-policy/v1\nname: boot-signers\nrules:\n"+srules.String()), "signers.yaml")
		if err != nil {
			b.Fatal(err)
		}
		if w.signers, err = cipolicy.NewSet(cipolicy.SetOptions{}, sp); err != nil {
			b.Fatal(err)
		}
		if w.policy, err = attest.ParsePolicy([]byte("format: csv-attest-policy/v1\nname: bench\n"), "bench.yaml", attest.PolicyOptions{}); err != nil {
			b.Fatal(err)
		}
		r, err := attest.Evaluate(context.Background(), v, w.policy, w.set)
		if err != nil || !r.Trusted {
			b.Fatalf("%s: not trusted: %v %v", w.name, err, r.Checks)
		}
		out = append(out, w)
	}
	return out
}

// BenchmarkCSV: per attestation, csv's parse + replay + quote verification
// (every quote) + boot state + attestation policy and code integrity
// policy evaluation; the code integrity policy allows the boot components
// by hash ("hash") or by the Secure Boot authorities that admitted them
// ("signer").
func BenchmarkCSV(b *testing.B) {
	for _, w := range workloads(b) {
		b.Run(w.name+"/hash", func(b *testing.B) { benchCSV(b, w, w.set) })
		b.Run(w.name+"/signer", func(b *testing.B) { benchCSV(b, w, w.signers) })
	}
}

func benchCSV(b *testing.B, w workload, set *cipolicy.Set) {
	b.ReportAllocs()
	for b.Loop() {
		ak, err := attest.ParseAK(w.akPub)
		if err != nil {
			b.Fatal(err)
		}
		opts := w.opts
		opts.AK = ak
		v, err := attest.Verify(context.Background(), w.ev, opts)
		if err != nil {
			b.Fatal(err)
		}
		r, err := attest.Evaluate(context.Background(), v, w.policy, set)
		if err != nil || !r.Trusted {
			b.Fatal("not trusted")
		}
	}
}

// BenchmarkGoAttestation: the same evidence through go-attestation v0.6.4:
// AK parse, every quote verified, the log parsed and replayed against the
// quoted PCRs, the Secure Boot state parsed, and on Windows the WBCL.
// go-attestation has no policy step.
func BenchmarkGoAttestation(b *testing.B) {
	for _, w := range workloads(b) {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ak, err := goattest.ParseAKPublic(w.akPub)
				if err != nil {
					b.Fatal(err)
				}
				for _, q := range w.quotes {
					// Verify, not VerifyAll, which refuses an empty nonce.
					if err := ak.Verify(q, w.pcrs, w.nonce); err != nil {
						b.Fatal(err)
					}
				}
				el, err := goattest.ParseEventLog(w.ev.EventLog)
				if err != nil {
					b.Fatal(err)
				}
				events, err := el.Verify(w.pcrs)
				if err != nil {
					b.Fatal(err)
				}
				sb, err := goattest.ParseSecurebootState(events)
				if err != nil || !sb.Enabled {
					b.Fatal(err)
				}
				if w.windows {
					if _, err := goattest.ParseWinEvents(events); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
