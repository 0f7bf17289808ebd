package server

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapFloor is the heap size the garbage collector lets the heap reach
// before collecting, however small the live heap is.
//
// Go's default goal is twice the live heap. A homeserver's live heap is
// small (a few tens of MB) while its bursts are not: every member of a
// busy room syncing at once, a batch of federated events. At the default
// goal such a burst runs a collection of its own, whose marking competes
// for the cores with the requests that caused it; on the wake-up
// benchmark that is several milliseconds of tail latency. Above the
// floor the default applies, and GOGC or GOMEMLIMIT set by the operator
// take precedence (GOGC turns the floor off).
const heapFloor = 64 << 20

var heapFloorOnce sync.Once

// keepHeapFloor makes the collector's goal at least heapFloor: after
// every collection it sets GOGC from the live heap, so that
// live*(1+GOGC/100) is the floor while the live heap is under half of
// it, and 100 above. It applies to the whole process, once.
func keepHeapFloor() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	heapFloorOnce.Do(func() {
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
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	debug.SetGCPercent(gcPercentFor(sample[0].Value.Uint64()))
}

// gcPercentFor is the GOGC that puts the heap goal of a live heap at the
// floor, and never under the default 100.
func gcPercentFor(live uint64) int {
	if live == 0 || live >= heapFloor/2 {
		return 100
	}
	return int(heapFloor*100/live) - 100
}
