package service_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/service"
	"github.com/codesignval/csv/attest/wire"
)

// TestResponseMatchesWire: a host reads the service's answer as a
// wire.AttestResponse, whose Result is a summary of attest.Result. The
// two declare the same JSON fields in the same order, and the answers the
// service writes, trusted and refused, decode into wire's types and
// encode again to the same bytes: the host loses nothing of them.
func TestResponseMatchesWire(t *testing.T) {
	if wire.VerdictTrusted != attest.VerdictTrusted || wire.VerdictNotTrusted != attest.VerdictNotTrusted {
		t.Errorf("verdicts %q, %q in package wire; %q, %q in package attest",
			wire.VerdictTrusted, wire.VerdictNotTrusted, attest.VerdictTrusted, attest.VerdictNotTrusted)
	}
	for _, pair := range [][2]any{
		{service.AttestResponse{}, wire.AttestResponse{}},
		{attest.Result{}, wire.Result{}},
		{attest.Check{}, wire.Check{}},
		{attest.PolicyRef{}, wire.PolicyRef{}},
	} {
		if s, w := jsonFields(reflect.TypeOf(pair[0])), jsonFields(reflect.TypeOf(pair[1])); !reflect.DeepEqual(s, w) {
			t.Errorf("%T has the JSON fields %q, %T %q", pair[0], s, pair[1], w)
		}
	}

	e := newEnv(t)
	h := e.hosts[0]
	trusted := e.evidence(t, h)
	refused := e.evidence(t, h)
	refused.Quotes[0].Signature[len(refused.Quotes[0].Signature)-1] ^= 1
	for name, req := range map[string]*service.AttestRequest{"trusted": trusted, "refused": refused, "malformed": {}} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Post(e.ts.URL+service.PathAttest, "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			var r wire.AttestResponse
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
			}
			if (name == "malformed") != (r.Result == nil) || (name == "trusted") != (r.Credential != nil) {
				t.Fatalf("%d: result %v, credential %v", resp.StatusCode, r.Result != nil, r.Credential != nil)
			}
			again, err := json.Marshal(&r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(again, '\n'), body) {
				t.Errorf("the service wrote\n%s\nwire encodes it again as\n%s", body, again)
			}
		})
	}
}

// jsonFields lists a struct's JSON field tags, in order.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			out = append(out, f.Name+" "+f.Tag.Get("json"))
		}
	}
	return out
}
