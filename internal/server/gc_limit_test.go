package server

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestGOMEMLIMITHonouredAboveFloor runs itself again with GOMEMLIMIT set
// under the heap floor: the floor sets GOGC, never the memory limit, so
// the collector's goal must stay under the operator's limit while the
// floor asks for more.
func TestGOMEMLIMITHonouredAboveFloor(t *testing.T) {
	const limit = 24 << 20
	if os.Getenv("MYELIN_TEST_MEMLIMIT_CHILD") != "" {
		keepHeapFloor(64)
		if got := debug.SetMemoryLimit(-1); got != limit {
			t.Fatalf("memory limit %d after the floor, want GOMEMLIMIT's %d", got, limit)
		}
		// A live heap of 4 MiB and garbage: the floor alone would let
		// the heap reach 64 MiB before collecting.
		live := make([][]byte, 0, 64)
		for range 64 {
			live = append(live, make([]byte, 64<<10))
		}
		var sink []byte
		for i := range 4000 {
			sink = make([]byte, 16<<10)
			sink[0] = byte(i)
		}
		runtime.KeepAlive(live)
		runtime.KeepAlive(sink)
		if goal := readMetric("/gc/heap/goal:bytes"); goal > limit {
			t.Fatalf("heap goal %d MiB with GOMEMLIMIT at %d MiB", goal>>20, limit>>20)
		}
		return
	}
	// The goal is the pacer's at one moment: on a loaded machine, read
	// mid-cycle, it was once over the limit (31 MiB, CI 2026-12-07)
	// where it is 16 MiB settled. Three tries: a floor that replaced
	// GOMEMLIMIT gives 32-35 MiB every time.
	var out []byte
	var err error
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGOMEMLIMITHonouredAboveFloor$", "-test.count=1")
		// GOGC set by the operator turns the floor off: the child runs
		// without it.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "MYELIN_TEST_MEMLIMIT_CHILD=1", "GOMEMLIMIT=24MiB")
		if out, err = cmd.CombinedOutput(); err == nil {
			return
		}
	}
	t.Fatalf("child, three times: %v\n%s", err, out)
}
