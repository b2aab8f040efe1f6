//go:build !unix

package appx_test

import "time"

func cpuTime() time.Duration { return 0 }
