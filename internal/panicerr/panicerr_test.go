package panicerr

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func recovered(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pkg: internal error: %w", New(r))
		}
	}()
	f()
	return nil
}

func TestFind(t *testing.T) {
	err := recovered(func() {
		var m map[string]int
		m["x"] = 1
	})
	p := Find(err)
	if p == nil {
		t.Fatalf("Find(%v) = nil", err)
	}
	if !strings.Contains(string(p.Stack), "TestFind") || !strings.Contains(p.Report(), "assignment to entry in nil map") {
		t.Errorf("report without the panic's stack or value: %s", p.Report())
	}
	if err.Error() != "pkg: internal error: assignment to entry in nil map" {
		t.Errorf("message %q: the stack must not show", err)
	}
	var re interface{ RuntimeError() }
	if !errors.As(err, &re) {
		t.Error("the runtime error is not reachable with errors.As")
	}
	if Find(errors.New("ordinary")) != nil || Find(nil) != nil {
		t.Error("an ordinary error is reported as a panic")
	}
}
