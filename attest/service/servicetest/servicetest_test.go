package servicetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/eventlog"
)

// TestQuoteEncoding: the hand-made TPMS_ATTEST and TPMT_SIGNATURE are what
// go-tpm encodes, and verify.
func TestQuoteEncoding(t *testing.T) {
	for _, ak := range []KeyType{ECC, RSA} {
		h, err := NewHost(ECC, ak)
		if err != nil {
			t.Fatal(err)
		}
		pcrs := eventlog.PCRs{}
		for i := 0; i < 24; i++ {
			pcrs.Set(eventlog.SHA256, i, bytes.Repeat([]byte{byte(i)}, 32))
		}
		q, err := h.Quote(eventlog.SHA256, []int{0, 7, 14}, pcrs, []byte("nonce"))
		if err != nil {
			t.Fatal(err)
		}
		att, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tpm2.Marshal(*att), q.Attest) || att.ClockInfo.Clock != 1 || string(att.ExtraData.Buffer) != "nonce" {
			t.Fatalf("TPMS_ATTEST %x", q.Attest)
		}
		sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](q.Signature)
		if err != nil || !bytes.Equal(tpm2.Marshal(*sig), q.Signature) {
			t.Fatalf("TPMT_SIGNATURE %x: %v", q.Signature, err)
		}
		a, err := attest.ParseAK(h.AKPublic())
		if err != nil {
			t.Fatal(err)
		}
		_, err = attest.Verify(context.Background(), &attest.Evidence{EventLog: mustLog(t), Quotes: []attest.Quote{{Attest: q.Attest, Signature: q.Signature}}},
			attest.VerifyOptions{AK: a, Nonce: []byte("nonce")})
		var ve *attest.VerificationError
		if err != nil && !errors.As(err, &ve) {
			t.Fatal(err)
		}
		if ve != nil {
			for _, c := range ve.Checks {
				if c.Name == "quote[1].signature" && !c.Passed {
					t.Fatalf("signature: %s", c.Detail)
				}
			}
		}
	}
}

func mustLog(t *testing.T) []byte {
	w, err := SecureBootLog(BootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}
