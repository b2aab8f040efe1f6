package panicerr_test

import (
	"fmt"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/internal/panicerr"
	"github.com/codesignval/csv/signing"
)

// TestWrappers: the error types the recovers of the parsers wrap the
// panic in let Find reach it, so that the fuzz targets see it.
func TestWrappers(t *testing.T) {
	p := panicerr.New("boom")
	for name, err := range map[string]error{
		"fmt %w":                 fmt.Errorf("attest: internal error: %w", p),
		"signing.Errorf":         signing.Errorf(signing.ErrInternal, "cms: internal error: %w (please report this)", p),
		"signing.MalformedError": &signing.MalformedError{Format: "x", Offset: -1, Reason: "internal error", Err: p},
		"cipolicy.LoadError":     &cipolicy.LoadError{Source: "p", Problems: []cipolicy.Problem{{Message: "internal error: boom", Err: p}}},
	} {
		if panicerr.Find(err) != p {
			t.Errorf("%s: Find does not reach the panic in %v", name, err)
		}
	}
}
