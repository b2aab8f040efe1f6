package attest_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/codesignval/csv/attest"
)

// A result's checks become an EAR's trustworthiness vector; sign it with
// EAR.Sign for a relying party.
func ExampleNewEAR() {
	r := &attest.Result{Verdict: attest.VerdictTrusted, Trusted: true,
		Policy: &attest.PolicyRef{Name: "fleet", SHA256: "5e1f"}, CIPolicies: []attest.PolicyRef{{Name: "boot", SHA256: "b007"}},
		Checks: []attest.Check{{Name: "ak", Passed: true}, {Name: "quote[1].signature", Passed: true}, {Name: "quote[1].nonce", Passed: true},
			{Name: "quote[1].pcrs", Passed: true}, {Name: "replay", Passed: true}, {Name: "policy.secure-boot", Passed: true},
			{Name: "policy.boot-components", Passed: true}}}
	e, err := attest.NewEAR(r, attest.EAROptions{Build: "csv 1.4.0", Now: func() time.Time { return time.Unix(1796668800, 0) }})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := json.MarshalIndent(e, "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "eat_profile": "tag:github.com,2023:veraison/ear",
	//   "iat": 1796668800,
	//   "ear.verifier-id": {
	//     "build": "csv 1.4.0",
	//     "developer": "https://github.com/codesignval/csv"
	//   },
	//   "submods": {
	//     "csv-boot": {
	//       "ear.status": "affirming",
	//       "ear.trustworthiness-vector": {
	//         "instance-identity": 2,
	//         "configuration": 2,
	//         "executables": 3
	//       },
	//       "ear.appraisal-policy-id": "csv:attest/fleet@sha256:5e1f;ci/boot@sha256:b007"
	//     }
	//   }
	// }
}
