package cmdutil

import (
	"errors"
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/spf13/pflag"

	"github.com/codesignval/csv/internal/limits"
)

// TestMemoryLimit: --memory-limit sets the runtime's soft limit (by
// default what is in use plus limits.RunMemory), 0 sets none, GOMEMLIMIT
// wins, and a negative size is a usage error.
func TestMemoryLimit(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	parse := func(args ...string) *MemoryLimit {
		var m MemoryLimit
		fl := pflag.NewFlagSet("t", pflag.ContinueOnError)
		m.Register(fl)
		if err := fl.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	parse("--memory-limit", "123456789").Apply()
	if got := debug.SetMemoryLimit(-1); got != 123456789 {
		t.Errorf("--memory-limit 123456789: limit %d", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	parse().Apply()
	if got := debug.SetMemoryLimit(-1); got < limits.RunMemory || got > limits.RunMemory+1<<30 {
		t.Errorf("default: limit %d, want what is in use plus %d", got, int64(limits.RunMemory))
	}
	// What is in use counts what the run holds: 48 MiB loaded before it
	// (a large policy) raise the default limit by as much.
	held := make([][]byte, 48)
	for i := range held {
		held[i] = make([]byte, 1<<20)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	parse().Apply()
	if got := debug.SetMemoryLimit(-1); got < limits.RunMemory+48<<20 {
		t.Errorf("default with 48 MiB held: limit %d, want at least %d", got, int64(limits.RunMemory+48<<20))
	}
	runtime.KeepAlive(held)
	debug.SetMemoryLimit(math.MaxInt64)
	parse("--memory-limit", "0").Apply()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("--memory-limit 0: limit %d", got)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	parse("--memory-limit", "5000000").Apply()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set: limit %d", got)
	}
	var fe *FlagError
	if err := parse("--memory-limit", "-5").Check("validate"); !errors.As(err, &fe) {
		t.Errorf("--memory-limit -5: %v", err)
	}
}
