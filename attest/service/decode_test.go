package service

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest"
)

func sampleRequest() *AttestRequest {
	return &AttestRequest{
		Nonce: "AQID-_x", EventLog: bytes.Repeat([]byte{0, 1, 2, 0xff}, 100),
		Quotes:   []QuoteJSON{{Attest: []byte("attest"), Signature: []byte("sig")}, {Attest: []byte{}, Signature: nil}},
		PCRs:     map[string]map[string]string{"sha256": {"0": "00ff", "7": "abcd"}, "sha1": {}},
		AKPublic: []byte{0, 0x23}, EKCertificate: []byte("cert"),
	}
}

// decodeStd is what encoding/json makes of a body, strictly.
func decodeStd(b []byte) (*AttestRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r AttestRequest
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errTrailing
	}
	return &r, nil
}

func TestDecodeAttestRequest(t *testing.T) {
	want := sampleRequest()
	b, _ := json.Marshal(want)
	got, err := decodeAttestRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	indented, _ := json.MarshalIndent(want, "", "\t")
	if got, err := decodeAttestRequest(indented); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("indented: %v", err)
	}
	// Escapes as other encoders write them.
	esc := `{"nonce":"a\u0062\/c\"\\\n\u00e9\ud83d\ude00\ud800x","event_log":"AAEC\/w==","pcrs":null,"quotes":null,"ak_public":null}`
	got, err = decodeAttestRequest([]byte(esc))
	std, serr := decodeStd([]byte(esc))
	if err != nil || serr != nil || !reflect.DeepEqual(got, std) {
		t.Fatalf("escapes: %v %v\n%+v\n%+v", err, serr, got, std)
	}
	for _, bad := range []string{
		``, `   `, `null`, `[]`, `{`, `{"nonce":"x"`, `{"nonce":"x",}`, `{"nonce":"x"}{}`, `{"nonce":"x"} x`,
		`{"nonce":1}`, `{"Nonce":"x"}`, `{"nonce":"x","nonce":"y"}`, `{"other":1}`, `{"event_log":"@@"}`,
		`{"event_log":"AAE"}`, `{"nonce":"a` + "\x01" + `"}`, `{"nonce":"` + "\xff" + `"}`, `{"nonce":"\x"}`,
		`{"nonce":"\u12"}`, `{"quotes":[{"attest":"AA==","x":1}]}`, `{"quotes":[1]}`, `{"quotes":[{}],}`,
		`{"pcrs":{"sha256":{"0":1}}}`, `{"pcrs":{"sha256":{"0":"a","0":"b"}}}`, `{"pcrs":[]}`,
		`{"quotes":[` + strings.Repeat(`{},`, 10) + `{}]}`, "{\"event_log\":\"AA\nAA==\"}", "{\"event_log\":\"AA\rAA==\"}",
		"{\"event_log\":\"AA\tAA==\"}",
	} {
		if r, err := decodeAttestRequest([]byte(bad)); err == nil {
			t.Errorf("%q accepted: %+v", bad, r)
		}
	}
}

// FuzzDecodeAttestRequest: whatever the decoder accepts, encoding/json
// (with DisallowUnknownFields) accepts too and decodes to the same
// request; it never panics.
func FuzzDecodeAttestRequest(f *testing.F) {
	b, _ := json.Marshal(sampleRequest())
	f.Add(b)
	f.Add([]byte(`{"nonce":"\u00e9\ud83d\ude00","event_log":"AAEC\/w==","pcrs":{"sha1":null}}`))
	f.Add([]byte(`{"quotes":[],"pcrs":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeAttestRequest(b)
		if err != nil {
			return
		}
		std, err := decodeStd(b)
		if err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, b)
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("decodes %q differently:\n%+v\n%+v", b, got, std)
		}
	})
}

// TestResponseEncode: a response with pre-encoded claims writes them once,
// in place of the Result's, to the same JSON.
func TestResponseEncode(t *testing.T) {
	res := &attest.Result{MediaType: attest.ResultMediaType, Verdict: attest.VerdictTrusted, Trusted: true,
		Checks: []attest.Check{{Name: "x", Passed: true, Detail: `a "claims":null in a detail`}}, Claims: &attest.Claims{SecureBootEnabled: true}}
	raw, _ := json.Marshal(res.Claims)
	r := &AttestResponse{MediaType: ResponseMediaType, Verdict: attest.VerdictTrusted, Trusted: true, Result: res, rawClaims: raw}
	a, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	if string(a) != string(b) || res.Claims == nil {
		t.Fatalf("%s\n%s", a, b)
	}
	c := &claimsOut{MediaType: ClaimsMediaType, AKName: "00", Claims: raw, ID: "j"}
	enc, err := c.encode()
	var back ClaimsJSON
	if err != nil || json.Unmarshal(enc, &back) != nil || back.Claims == nil || !back.Claims.SecureBootEnabled || back.ID != "j" {
		t.Fatalf("%s %v", enc, err)
	}
}
