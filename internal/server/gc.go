package server

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
)

// The heap floor (memory.heap_floor_mib) is the heap size the garbage
// collector lets the heap reach before collecting, however small the
// live heap is, while the server is busy.
//
// Go's default goal is twice the live heap. A homeserver's live heap is
// small (ten to twenty MB) while its bursts are not: every member of a
// busy room syncing at once, a batch of federated events. At the default
// goal such a burst runs a collection of its own, whose marking competes
// for the cores with the requests that caused it; on the wake-up
// benchmark that is several milliseconds of tail latency. Above the
// floor the default applies. GOGC set by the operator turns the floor
// off; GOMEMLIMIT set by the operator is honoured as Go does (the
// collector runs when the limit is near, floor or not).
//
// The floor used to be 64 MB and set GOGC as if the goal were
// live*(1+GOGC/100); Go's goal also counts the stacks and globals
// scanned, so the goal came out at 150 MB and the load run of issue 20
// peaked at 196 MB of RSS. Now the roots are counted, and the floor is
// lifted when the server goes quiet: a server that has been busy then
// gives its memory back instead of keeping the floor's worth of heap.

// Quiet is fewer than quietAllocBytes allocated in a quietCheck.
const (
	quietCheck      = 10 * time.Second
	quietAllocBytes = 8 << 20
)

// heapFloor is the process's floor state: the collector and the tuning
// are the process's, not one server's.
var heapFloor struct {
	once sync.Once
	mu   sync.Mutex
	// bytes is the floor; lifted is set while the server is quiet and
	// the floor is not applied.
	bytes     uint64
	lifted    bool
	lastAlloc uint64
}

// keepHeapFloor makes the collector's goal at least floorMiB MiB while
// the server is busy: after every collection it sets GOGC from the live
// heap and the roots. It applies to the whole process, once; 0 (or GOGC
// in the environment) leaves Go's default.
//
// Whatever the floor, it also starts the watch for quiet (checkQuiet),
// which trims the caches and returns memory.
func keepHeapFloor(floorMiB int) {
	heapFloor.once.Do(func() {
		heapFloor.lastAlloc = readMetric("/gc/heap/allocs:bytes")
		time.AfterFunc(quietCheck, checkQuiet)
		if _, set := os.LookupEnv("GOGC"); set || floorMiB <= 0 {
			return
		}
		heapFloor.mu.Lock()
		heapFloor.bytes = uint64(floorMiB) << 20
		heapFloor.mu.Unlock()
		adjustGCPercent()
		armGCHook()
	})
}

// gcHook is an object whose finalizer runs after each collection.
type gcHook struct{ _ [16]byte }

func armGCHook() {
	runtime.SetFinalizer(&gcHook{}, func(*gcHook) {
		adjustGCPercent()
		armGCHook()
	})
}

func adjustGCPercent() {
	heapFloor.mu.Lock()
	defer heapFloor.mu.Unlock()
	if heapFloor.lifted || heapFloor.bytes == 0 {
		return
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(s)
	debug.SetGCPercent(gcPercentFor(heapFloor.bytes, s[0].Value.Uint64(), s[1].Value.Uint64()+s[2].Value.Uint64()))
}

// checkQuiet lifts the floor when the last quietCheck allocated little
// (and gives the heap above the live one back to the system), and puts
// it back as soon as one allocates more. It re-arms itself: the floor
// is the process's for its lifetime.
func checkQuiet() {
	defer time.AfterFunc(quietCheck, checkQuiet)
	alloc := readMetric("/gc/heap/allocs:bytes")
	heapFloor.mu.Lock()
	quiet := alloc-heapFloor.lastAlloc < quietAllocBytes
	heapFloor.lastAlloc = alloc
	lift := quiet && !heapFloor.lifted
	restore := !quiet && heapFloor.lifted
	heapFloor.lifted = quiet
	floor := heapFloor.bytes != 0
	heapFloor.mu.Unlock()
	// While quiet, the caches drop what went unused for a quietCheck
	// (cache.ExpireWhenIdle).
	dropped := 0
	if quiet {
		dropped = cache.TrimIdleCaches()
	}
	switch {
	case lift || dropped > 0:
		if floor {
			debug.SetGCPercent(100)
		}
		// A collection and scavenge when the server goes quiet, and when
		// the caches dropped what it no longer uses: the memory is
		// returned now rather than held until a collection that an idle
		// server may not run for minutes.
		releaseMemory()
	case restore:
		adjustGCPercent()
	case quiet:
		// An idle server still collects (the runtime forces a collection
		// every two minutes, the workers allocate) and runs its periodic
		// work; the collection alone, walking the stacks and the live
		// heap's types, maps 3 to 6 MiB of the binary's tables back in.
		// Dropping them every quietCheck costs a few hundred minor faults
		// to map back what the next check runs.
		releaseWhileQuiet()
	}
}

// releaseWhileQuiet is what each quiet check gives back besides the
// heap. The readers a burst opened close readerMaxIdle (30 s) after it,
// after the check that found the server quiet: what SQLite freed then
// goes back here. The executable's pages are dropped last: the release
// runs SQL (statements closed, PRAGMA shrink_memory) through SQLite's
// parser and virtual machine, and trimmed before it, the 3 MiB or so of
// the binary that code spans were mapped back and counted in RSS until
// the next check (issue 20's load run, a minute after the load).
func releaseWhileQuiet() {
	store.ReleaseSQLiteMemory()
	trimExecutable()
}

// releaseMemory collects, returns the free heap to the system, and then
// drops the mappings of the code and tables the collection and the busy
// spell touched (trimExecutable): the server maps back what it runs
// next. SQLite's allocator gives back what its closed connections held
// too (store.ReleaseSQLiteMemory).
func releaseMemory() {
	debug.FreeOSMemory()
	store.ReleaseSQLiteMemory()
	trimExecutable()
}

// startSettle is how long after Start the start-up's memory is
// released: by then the workers' first runs (prunes, expiries, queue
// loads) are done.
const startSettle = 2 * time.Second

// releaseAfterStart releases what starting took and does not use again:
// the migrations' and the loaders' garbage, and the pages of every
// package's init function and of the start-up code, which the kernel
// otherwise counts in the process's RSS until memory pressure reclaims
// them (20 of the binary's 25 MiB). The quiet watch would do it too,
// but only after its first quietCheck, and only if start-up allocated
// little in it. Once per process: a test process starts hundreds of
// servers.
func releaseAfterStart() {
	startRelease.Do(func() { time.AfterFunc(startSettle, releaseMemory) })
}

var startRelease sync.Once

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// gcPercentFor is the GOGC that puts the heap goal at the floor, and
// never under the default 100. Go's goal is live + (live + roots) *
// GOGC/100, roots being the stacks and globals the collector scans.
func gcPercentFor(floor, live, roots uint64) int {
	if live == 0 || live+(live+roots) >= floor {
		return 100
	}
	return min(maxGCPercent, int((floor-live)*100/(live+roots)))
}

// maxGCPercent bounds the floor's GOGC. It is set from the live heap
// after a collection, and holds until the next one ends: a GOGC worked
// out from a start-up heap of 2 MB (over 1,000) applied to the heap
// the next collection found made a goal of hundreds of MB, and the load
// run's setup reached 65 MB of heap. Under a few MB of live heap the
// floor is not reached, and a collection of so small a heap is cheap.
const maxGCPercent = 300
