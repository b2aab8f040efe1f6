//go:build unix

package csv

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time so far (user and system), the
// measure of a stage on a machine other work shares: wall time there
// counts the others' turns.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
