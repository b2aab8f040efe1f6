package attest

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/eventlog"
)

func TestParsePCRs(t *testing.T) {
	p, err := ParsePCRs([]byte("sha256:\n  0 : 0x" + strings.Repeat("ab", 32) + "\n  7: " + strings.Repeat("cd", 32) + "\n"))
	if err != nil || hex.EncodeToString(p.Get(eventlog.SHA256, 7)) != strings.Repeat("cd", 32) || p.Get(eventlog.SHA256, 0)[0] != 0xab {
		t.Fatalf("%v %v", p, err)
	}
	for _, bad := range []string{"sha256:\n  0: 0x00\n", "md5:\n  0: 00\n", "sha1:\n  24: " + strings.Repeat("00", 20) + "\n", "[1, 2]"} {
		if _, err := ParsePCRs([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
