package cmdutil

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	"github.com/spf13/pflag"

	"github.com/codesignval/csv/internal/limits"
)

// MemoryLimit is the --memory-limit flag: the soft limit of the Go
// runtime's memory (runtime/debug.SetMemoryLimit), past which the garbage
// collector works harder rather than let the heap grow to twice what is in
// use. A run's working memory is bounded by design (read buffers, members
// waiting for a worker, the reorder window); what grows with the inputs is
// loaded before the run (the policy, certificates): the default limit is
// what is in use then plus limits.RunMemory. 0 sets none; GOMEMLIMIT, when
// set, wins.
type MemoryLimit struct{ bytes int64 }

// Register adds the flag to fl.
func (m *MemoryLimit) Register(fl *pflag.FlagSet) {
	m.bytes = -1
	fl.Int64Var(&m.bytes, "memory-limit", -1, fmt.Sprintf("soft limit of csv's memory in `BYTES`, past which it collects garbage more often; -1: what the policy takes plus %d MiB; 0: none; GOMEMLIMIT wins", limits.RunMemory>>20))
}

// Check refuses a negative limit other than the default.
func (m *MemoryLimit) Check(cmd string) error {
	if m.bytes < -1 {
		return FlagErrorf("%s: --memory-limit %d: want a size in bytes, or 0 for none", cmd, m.bytes)
	}
	return nil
}

// exactAbove is the heap past which Apply collects garbage before it
// measures what is in use.
const exactAbove = 32 << 20

// Apply sets the limit, once what the run loads before it starts is loaded.
func (m *MemoryLimit) Apply() {
	if os.Getenv("GOMEMLIMIT") != "" || m.bytes == 0 {
		return
	}
	limit := m.bytes
	if limit < 0 {
		// What is allocated bounds what is in use; a collection (5 ms of
		// CPU in a small run's fresh process) sharpens it only where the
		// difference matters: after a large policy's load. The heap is
		// read from runtime/metrics, which does not stop the world as
		// runtime.ReadMemStats does (that flushed every P's cache: 4% of
		// the CPU of a one-file run).
		heap := heapObjects()
		if heap > exactAbove {
			runtime.GC()
			heap = heapObjects()
		}
		limit = int64(heap) + limits.RunMemory
	}
	debug.SetMemoryLimit(limit)
}

// heapObjects is the heap's live and not yet swept objects, in bytes
// (runtime.MemStats.HeapAlloc).
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	return s[0].Value.Uint64()
}
