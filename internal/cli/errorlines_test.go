package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// twoCauses is an error whose Unwrap() []error may hold nil, as
// attest/client.OpenError's does when there is no second cause.
type twoCauses struct{ a, b error }

func (e *twoCauses) Error() string   { return "open: " + e.a.Error() }
func (e *twoCauses) Unwrap() []error { return []error{e.a, e.b} }

// TestErrorLines: errors.Join prints one line per error, any other error
// (even one unwrapping to several, some nil) one escaped line.
func TestErrorLines(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want []string
	}{
		{"joined", errors.Join(errors.New("a"), errors.New("b\nc")), []string{"a", `b\x0ac`}},
		{"nil cause", &twoCauses{a: errors.New("no TPM")}, []string{"open: no TPM"}},
		{"plain", errors.New("x\nresult: PASSED"), []string{`x\x0aresult: PASSED`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorLines(tt.err); !slices.Equal(got, tt.want) {
				t.Errorf("errorLines = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWriteErrorPrefixOnce: csv prints its prefix once, on every line,
// whether or not the error already carries it (the csv package's errors
// do).
func TestWriteErrorPrefixOnce(t *testing.T) {
	var b strings.Builder
	writeError(&b, errors.Join(errors.New("csv: cannot validate path nowhere: no such file or directory"),
		errors.New("cannot read policy p.yaml: no such file or directory"), errors.New("csv: invalid options: csv: x")))
	want := "csv: cannot validate path nowhere: no such file or directory\ncsv: cannot read policy p.yaml: no such file or directory\ncsv: invalid options: csv: x\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
