package attest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/cipolicy"
)

// FuzzParseSIPA: ParseSIPA and the Windows state reader never panic;
// ParseSIPA returns events or an error, not both.
func FuzzParseSIPA(f *testing.F) {
	f.Add(sipa(0x40010001, append(sipa(sipaBootDebugging, []byte{0}), sipa(sipaCodeIntegrity, []byte{1})...)))
	f.Add(sipa(sipaLoadedModuleAggr, append(sipa(sipaFilePath, []byte{'a', 0, 0, 0}), sipa(sipaAuthenticodeHash, make([]byte, 32))...)))
	f.Add(sipa(sipaBootCounter, make([]byte, 8)))
	f.Add(sipa(0x40010001, sipa(0x40010001, sipa(0x40010001, nil))))
	f.Fuzz(func(t *testing.T, data []byte) {
		if evs, err := ParseSIPA(data); err != nil && evs != nil {
			t.Fatal("events and an error")
		}
		n := 0
		_ = newWindowsState().read(data, 0, &n, map[string]bool{})
	})
}

// FuzzParsePolicy: ParsePolicy never panics; it returns a policy or a
// *cipolicy.LoadError.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("format: csv-attest-policy/v1\nname: x\n"))
	f.Add([]byte("format: csv-attest-policy/v1\nname: x\nsecure_boot: any\npk: [{sha256: " + hexString(make([]byte, 32)) + "}]\ndb: {contains: [], not_contains: []}\ndbx: {includes: [{sha256: " + hexString(make([]byte, 32)) + "}]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, "fuzz.yaml", PolicyOptions{ReadFile: func(string) ([]byte, error) { return data, nil }})
		var le *cipolicy.LoadError
		if (err == nil) == (p == nil) || (err != nil && !errors.As(err, &le)) {
			t.Fatalf("policy %v, err %v", p != nil, err)
		}
	})
}

// FuzzParseQuote: quotes and signatures never panic the decoder.
func FuzzParseQuote(f *testing.F) {
	ak := newRSAAK(f, 0x0014)
	q := ak.quote(f, quoteSpec{bank: 0x000B, pcrs: []int{0, 7}, values: nil, nonce: []byte("n")})
	f.Add(q.Attest, q.Signature)
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		p, err := parseQuote(Quote{Attest: attest, Signature: sig})
		if err != nil {
			return
		}
		_ = p.checkSignature(attest, ak.ak(t), true)
		if p.checkStructure() == nil {
			_, _ = p.selections()
		}
	})
}

// FuzzSignatureLists: EFI_SIGNATURE_LIST parsing never panics.
func FuzzSignatureLists(f *testing.F) {
	f.Add(sigList(guidCertSHA256, make([]byte, 32), make([]byte, 32)))
	f.Add(varData(guidImageSecurity, "db", sigList(guidCertSHA256, make([]byte, 32))))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseSignatureLists(data)
		_, _ = ParseSignatureDatabase(data)
		_, _ = parseVariableData(data)
		_, _ = imageName(data)
	})
}

// FuzzDecode: the hand decoder of TPMS_ATTEST and TPMT_SIGNATURE agrees
// with go-tpm: whatever it accepts re-marshals (with tpm2.Marshal) to
// exactly its input, and tpm2.Unmarshal reads the same structure.
func FuzzDecode(f *testing.F) {
	for _, ak := range []*softAK{newRSAAK(f, tpm2.TPMAlgRSASSA), newRSAAK(f, tpm2.TPMAlgRSAPSS), newECCAK(f)} {
		q := ak.quote(f, quoteSpec{bank: 0x000B, pcrs: []int{0, 7, 23}, nonce: []byte("nonce")})
		f.Add(q.Attest, q.Signature)
	}
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		if a, err := decodeAttest(attest); err == nil {
			got := tpm2.Marshal(a)
			if !bytes.Equal(got, attest) {
				t.Fatalf("TPMS_ATTEST round trip: %x, input %x", got, attest)
			}
			u, uerr := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
			if uerr == nil && !bytes.Equal(tpm2.Marshal(u), got) && a.Magic == tpm2.TPMGeneratedValue {
				t.Fatalf("go-tpm reads TPMS_ATTEST %x differently", attest)
			}
		}
		if s, err := decodeSignature(sig); err == nil {
			got := tpm2.Marshal(s)
			if !bytes.Equal(got, sig) {
				t.Fatalf("TPMT_SIGNATURE round trip: %x, input %x", got, sig)
			}
			u, uerr := tpm2.Unmarshal[tpm2.TPMTSignature](sig)
			if uerr != nil || !bytes.Equal(tpm2.Marshal(u), got) {
				t.Fatalf("go-tpm reads TPMT_SIGNATURE %x differently: %v", sig, uerr)
			}
		}
	})
}

// FuzzDecodePublic: what the TPMT_PUBLIC decoder accepts re-marshals to
// exactly its input, as go-tpm reads it.
func FuzzDecodePublic(f *testing.F) {
	f.Add(tpm2.Marshal(newRSAAK(f, tpm2.TPMAlgRSASSA).pub))
	f.Add(tpm2.Marshal(newRSAAK(f, tpm2.TPMAlgRSAPSS).pub))
	f.Add(tpm2.Marshal(newECCAK(f).pub))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePublic(b)
		if err != nil {
			return
		}
		if got := tpm2.Marshal(p); !bytes.Equal(got, b) {
			t.Fatalf("round trip %x, input %x", got, b)
		}
		u, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
		if err != nil || !bytes.Equal(tpm2.Marshal(u), b) {
			t.Fatalf("go-tpm reads %x differently: %v", b, err)
		}
	})
}
