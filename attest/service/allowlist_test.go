package service_test

import (
	"strings"
	"testing"

	"github.com/codesignval/csv/attest/service"
)

func TestParseEKAllowlist(t *testing.T) {
	l, err := service.ParseEKAllowlist([]byte("# fleet\n" + strings.Repeat("ab", 32) + "  # host 1\n\n" + strings.Repeat("CD", 32) + "\n"))
	if err != nil || len(l) != 2 || l[0][0] != 0xab || l[1][31] != 0xcd {
		t.Fatalf("%v %x", err, l)
	}
	if l, err := service.ParseEKAllowlist(nil); err != nil || len(l) != 0 {
		t.Errorf("empty file: %x, %v", l, err)
	}
	for _, bad := range []string{"abcd\n", strings.Repeat("ab", 32) + "\n" + strings.Repeat("zz", 32), strings.Repeat("ab", 33)} {
		if l, err := service.ParseEKAllowlist([]byte(bad)); err == nil || l != nil {
			t.Errorf("%q: %x, %v", bad, l, err)
		}
	}
	if _, err := service.ParseEKAllowlist([]byte("\n# x\nabcd\n")); err == nil || !strings.Contains(err.Error(), "line 3:") {
		t.Errorf("the error does not name the line: %v", err)
	}
}
