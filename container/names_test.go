package container

import (
	"errors"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/limits"
)

// TestCleanName: names come out relative and clean, or refused with
// ErrMember; a name over limits.MaxMemberName is refused and not returned
// whole (readers and reports keep what CleanName returns).
func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"./usr/bin/x": "usr/bin/x", "a//b/./c/": "a/b/c", "x": "x"} {
		if got, err := CleanName(in); err != nil || got != want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	long := strings.Repeat("a/", limits.MaxMemberName/2) + "x"
	for _, in := range []string{"", "/abs", "C:x", `a\b`, "a/../../b", "..", "a\x00b", ".", long} {
		got, err := CleanName(in)
		if !errors.Is(err, ErrMember) {
			t.Errorf("CleanName(%.40q): %v, want ErrMember", in, err)
		}
		if len(got) > limits.MaxMemberName {
			t.Errorf("CleanName returned %d bytes of a refused name", len(got))
		}
	}
}
