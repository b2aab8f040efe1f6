//go:build !unix

package csv

import (
	"testing"
	"time"
)

// cpuTime is 0 where the process's CPU time is not read (the
// benchmarks' cpu-ns/record are then 0).
func cpuTime(testing.TB) time.Duration { return 0 }
