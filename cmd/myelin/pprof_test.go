package main

import (
	"runtime"
	"testing"
)

func TestKeepHeapProfileOnlyWithPprof(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 512 << 10
	keepHeapProfile("127.0.0.1:6060")
	if runtime.MemProfileRate != 512<<10 {
		t.Errorf("with listen.pprof, MemProfileRate = %d, want it left at %d", runtime.MemProfileRate, 512<<10)
	}
	keepHeapProfile("")
	if runtime.MemProfileRate != 0 {
		t.Errorf("without listen.pprof, MemProfileRate = %d, want 0", runtime.MemProfileRate)
	}
}
