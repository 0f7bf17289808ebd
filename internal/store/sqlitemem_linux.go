//go:build linux && (amd64 || arm64 || loong64 || ppc64le || s390x || riscv64 || 386 || arm) && !libc.membrk && !libc.memgrind

package store

import (
	"sync"
	_ "unsafe" // go:linkname

	"modernc.org/memory"
)

// SQLite (modernc.org/sqlite) allocates through modernc.org/libc's one
// allocator, which keeps the regions it frees for reuse: per size class
// up to 4 MiB stay resident, the rest of the pool mapped. When a burst
// is over and its readers have closed (readerMaxIdle), their page
// caches, schemas and statements are such free regions: in issue 20's
// load run 7 to 8 MiB of the server's RSS a minute after the load.
// libc has no call to hand them back, and memory.Allocator.Trim needs
// the allocator itself: it is reached by name. The versions are pinned
// by TestReleaseSQLiteMemoryKnowsLibc, which must be checked again (the
// variables' names and types in libc_musl.go) when libc is upgraded.

//go:linkname libcAllocator modernc.org/libc.allocator
var libcAllocator memory.Allocator

//go:linkname libcAllocatorMu modernc.org/libc.allocatorMu
var libcAllocatorMu sync.Mutex

// trimLibc returns the regions libc's allocator keeps for reuse to the
// operating system. Regions still in use are not touched; the next
// allocations map fresh ones.
func trimLibc() {
	libcAllocatorMu.Lock()
	defer libcAllocatorMu.Unlock()
	_ = libcAllocator.Trim()
}
