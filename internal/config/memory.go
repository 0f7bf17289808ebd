package config

import (
	"fmt"
	"strconv"
)

// Memory bounds what the server keeps in memory (issue 20: a small
// server should fit a small box). Each cache is bounded by an estimate
// of the bytes it holds, not by a count of entries, so that a bound
// means the same whatever the events look like.
type Memory struct {
	// HeapFloorMiB is the heap size the garbage collector lets the heap
	// grow to before collecting, however small the live heap: a burst of
	// /sync wake-ups then runs no collection of its own (tail latency).
	// It is lifted once the server is quiet, so that an idle server
	// gives the memory back. 0 turns it off (Go's default: collect at
	// twice the live heap). GOGC set in the environment turns it off
	// too; GOMEMLIMIT set there is honoured as Go does, above the floor.
	// Above the floor the goal is twice the live heap, so the floor and
	// the caches below set the peak together: in issue 20's load run the
	// live heap reached 15-18 MB with 8 MiB event and sync caches (a goal
	// of 35-38 MB whatever the floor), 24 MiB with 4 MiB caches took the
	// peak from 76-77 to 67 MiB with no CPU per /sync wake-up that
	// BenchmarkSyncWakeup could tell from noise (docs/benchmarks.md,
	// "Memory, fourth pass").
	HeapFloorMiB int `yaml:"heap_floor_mib"`
	// EventCacheMiB bounds the room engine's cache of parsed events (and
	// of event IDs to events).
	EventCacheMiB int `yaml:"event_cache_mib"`
	// SQLiteCacheKiB is SQLite's page cache per connection (cache_size);
	// there are database.max_open_conns readers besides the writer. The
	// operating system's file cache is behind it: a page missing from
	// one reader's cache is a read from memory, not from the disk. 256
	// KiB rather than 512 took 4 to 8 MiB off the peak of issue 20's load
	// run (the /messages pages fill every reader's cache with the same
	// pages) at no CPU cost that BenchmarkSyncWakeup or
	// BenchmarkInitialSync100Rooms could tell from noise.
	SQLiteCacheKiB int `yaml:"sqlite_cache_kib"`
	// StateCacheMiB bounds the room engine's cache of full room states
	// (state snapshots). It was bounded at 500,000 state entries, whose
	// bytes grow with the rooms: 43 MB at issue 20's 1,000-user scale
	// step, 89 MB at 10,000. A big room's state is about 1 MB per 10,000
	// members, so the default holds the states of the rooms that are busy
	// at a time on a small server; the rest are read from their snapshot
	// deltas in the database.
	StateCacheMiB int `yaml:"state_cache_mib"`
	// SyncCacheMiB bounds /sync's caches of who is joined to each room
	// (half of it), of each user's memberships (a quarter) and of the
	// rooms with events in a stream range (a quarter).
	SyncCacheMiB int `yaml:"sync_cache_mib"`
	// LookupCacheMiB bounds each of the caches of small per-user and
	// per-room answers: users' ignore lists, rooms' types (sliding sync),
	// users' unread counts per room (push) and which rooms have relations.
	// They were bounded at 100,000 to 262,144 entries each, 10 to 30 MB
	// when full, full on a server with that many active users or rooms.
	LookupCacheMiB int `yaml:"lookup_cache_mib"`
}

func defaultMemory() Memory {
	return Memory{HeapFloorMiB: 24, EventCacheMiB: 4, SQLiteCacheKiB: 256, StateCacheMiB: 16, SyncCacheMiB: 4, LookupCacheMiB: 4}
}

// applyMemoryEnv reads MYELIN_HEAP_FLOOR_MIB, MYELIN_EVENT_CACHE_MIB,
// MYELIN_SQLITE_CACHE_KIB, MYELIN_STATE_CACHE_MIB,
// MYELIN_SYNC_CACHE_MIB and MYELIN_LOOKUP_CACHE_MIB, and
// MYELIN_DATABASE_MAX_OPEN_CONNS (database.max_open_conns: on SQLite
// the number of readers, each with its own page cache outside Go's heap).
func (c *Config) applyMemoryEnv(env func(string) (string, bool)) error {
	for name, dst := range map[string]*int{
		"MYELIN_HEAP_FLOOR_MIB":   &c.Memory.HeapFloorMiB,
		"MYELIN_EVENT_CACHE_MIB":  &c.Memory.EventCacheMiB,
		"MYELIN_SQLITE_CACHE_KIB": &c.Memory.SQLiteCacheKiB,
		"MYELIN_STATE_CACHE_MIB":  &c.Memory.StateCacheMiB,
		"MYELIN_SYNC_CACHE_MIB":   &c.Memory.SyncCacheMiB,
		"MYELIN_LOOKUP_CACHE_MIB": &c.Memory.LookupCacheMiB,

		"MYELIN_DATABASE_MAX_OPEN_CONNS": &c.Database.MaxOpenConns,
	} {
		if v, ok := env(name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("config: %s: %w", name, err)
			}
			*dst = n
		}
	}
	return nil
}

func (m Memory) validate(bad func(field, format string, args ...any) error) error {
	if m.HeapFloorMiB < 0 || m.HeapFloorMiB > 1<<20 {
		return bad("memory.heap_floor_mib", "want 0 (off) to 1048576, got %d", m.HeapFloorMiB)
	}
	if m.EventCacheMiB < 1 || m.EventCacheMiB > 1<<20 {
		return bad("memory.event_cache_mib", "want 1 to 1048576, got %d", m.EventCacheMiB)
	}
	if m.SQLiteCacheKiB < 64 || m.SQLiteCacheKiB > 1<<30 {
		return bad("memory.sqlite_cache_kib", "want 64 to 1073741824, got %d", m.SQLiteCacheKiB)
	}
	if m.StateCacheMiB < 1 || m.StateCacheMiB > 1<<20 {
		return bad("memory.state_cache_mib", "want 1 to 1048576, got %d", m.StateCacheMiB)
	}
	if m.SyncCacheMiB < 1 || m.SyncCacheMiB > 1<<20 {
		return bad("memory.sync_cache_mib", "want 1 to 1048576, got %d", m.SyncCacheMiB)
	}
	if m.LookupCacheMiB < 1 || m.LookupCacheMiB > 1<<20 {
		return bad("memory.lookup_cache_mib", "want 1 to 1048576, got %d", m.LookupCacheMiB)
	}
	return nil
}
