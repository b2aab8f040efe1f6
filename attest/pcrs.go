package attest

import (
	"encoding/hex"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/codesignval/csv/attest/eventlog"
)

// ParsePCRs reads PCR values: a mapping of bank names (sha1, sha256, ...)
// to mappings of PCR indexes to hex values (optionally 0x-prefixed), in
// YAML or JSON (tpm2_pcrread's output is such YAML): the values read from
// the TPM with the quotes, for Evidence.PCRs. The caller caps the size of
// b.
func ParsePCRs(b []byte) (eventlog.PCRs, error) {
	var m map[string]map[int]string
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("want a mapping of banks to PCR indexes to hex values: %v", err)
	}
	out := eventlog.PCRs{}
	for bank, vals := range m {
		alg, err := eventlog.ParseHashAlg(strings.ToLower(bank))
		if err != nil {
			return nil, err
		}
		for i, h := range vals {
			if i < 0 || i >= eventlog.NumPCRs {
				return nil, fmt.Errorf("%s PCR %d does not exist", bank, i)
			}
			v, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(h, "0x"), "0X"))
			if err != nil || len(v) != alg.Size() {
				return nil, fmt.Errorf("%s PCR %d: %q is not %d bytes of hex", bank, i, h, alg.Size())
			}
			out.Set(alg, i, v)
		}
	}
	return out, nil
}
