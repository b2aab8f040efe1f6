// Package panicerr marks an error as a recovered panic, so that tests and
// fuzz targets can tell it from an ordinary error.
//
// Parsers of untrusted bytes recover from a panic (a bug) and return an
// error, so that one bad file is a finding and not the end of a run. But
// a fuzz target then sees an ordinary error and never reports the crash.
// Each such recover wraps the value in an [*Error] (with %w, or as the
// error itself), and every fuzz target fails when [Find] finds one in
// what the parser returned.
//
// # Security
//
// The Error carries the stack of the panic for the test that finds it;
// its Error() is the panic's value alone, as the messages were before,
// so that reports show no stack.
package panicerr

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Error is a recovered panic.
type Error struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the stack of the goroutine where it was recovered.
	Stack []byte
}

// New returns the Error of a recovered value: call it in the deferred
// function that recovered, so that the stack is the panic's.
func New(v any) *Error { return &Error{Value: v, Stack: debug.Stack()} }

func (e *Error) Error() string { return fmt.Sprint(e.Value) }

// Unwrap returns the panic's value when it is an error (a runtime error,
// say).
func (e *Error) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Find returns the recovered panic in err's tree, or nil.
func Find(err error) *Error {
	var p *Error
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// Report describes the panic with its stack, for a test failure.
func (e *Error) Report() string {
	return fmt.Sprintf("a panic was recovered into an error: %v\n%s", e.Value, e.Stack)
}

// Fataler is the part of testing.TB that [Check] uses (this package
// does not import testing).
type Fataler interface {
	Helper()
	Fatal(args ...any)
}

// Check fails t when any of errs carries a recovered panic: call it in
// a fuzz target on every error the code under test returns.
func Check(t Fataler, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if p := Find(err); p != nil {
			t.Fatal(p.Report())
		}
	}
}
