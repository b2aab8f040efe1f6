//go:build unix

package appx_test

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system CPU time: benchmarks report
// MB per CPU second too, which other processes on a shared machine
// disturb less than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
