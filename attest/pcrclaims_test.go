package attest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/eventlog"
)

func TestPCRClaimsJSONRoundTrip(t *testing.T) {
	in := PCRClaims{pcrs: eventlog.PCRs{}}
	in.pcrs.Set(eventlog.SHA256, 0, bytes.Repeat([]byte{0xab}, 32))
	in.pcrs.Set(eventlog.SHA256, 7, bytes.Repeat([]byte{0x01}, 32))
	in.pcrs.Set(eventlog.SHA1, 23, bytes.Repeat([]byte{0xff}, 20))
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out PCRClaims
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	for _, c := range []struct {
		a   eventlog.HashAlg
		pcr int
	}{{eventlog.SHA256, 0}, {eventlog.SHA256, 7}, {eventlog.SHA1, 23}, {eventlog.SHA256, 1}} {
		if !bytes.Equal(out.Get(c.a, c.pcr), in.Get(c.a, c.pcr)) {
			t.Errorf("%v PCR %d: got %x, want %x", c.a, c.pcr, out.Get(c.a, c.pcr), in.Get(c.a, c.pcr))
		}
	}
	b2, err := json.Marshal(out)
	if err != nil || !bytes.Equal(b, b2) {
		t.Errorf("re-marshal %s, want %s (%v)", b2, b, err)
	}
}

func TestPCRClaimsJSONRejects(t *testing.T) {
	h32 := strings.Repeat("ab", 32)
	for name, in := range map[string]string{
		"unknown bank":             `{"md5":{"0":"` + h32 + `"}}`,
		"index too large":          `{"sha256":{"24":"` + h32 + `"}}`,
		"negative index":           `{"sha256":{"-1":"` + h32 + `"}}`,
		"padded index":             `{"sha256":{"07":"` + h32 + `"}}`,
		"short value":              `{"sha256":{"0":"abcd"}}`,
		"sha1 size in sha256 bank": `{"sha256":{"0":"` + strings.Repeat("ab", 20) + `"}}`,
		"not hex":                  `{"sha256":{"0":"` + strings.Repeat("zz", 32) + `"}}`,
		"not an object":            `[1,2]`,
	} {
		var p PCRClaims
		if err := json.Unmarshal([]byte(in), &p); err == nil {
			t.Errorf("%s: %s accepted", name, in)
		}
	}
}
