//go:build !unix

package cab

import "time"

func cpuTime() time.Duration { return 0 }
