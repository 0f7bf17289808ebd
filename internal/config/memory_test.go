package config

import (
	"strings"
	"testing"
)

func TestMemoryAndPprofValidation(t *testing.T) {
	for _, c := range []struct {
		env   map[string]string
		field string // "" when valid
	}{
		{map[string]string{"MYELIN_PPROF_ADDR": "127.0.0.1:6060"}, ""},
		{map[string]string{"MYELIN_PPROF_ADDR": "[::1]:6060"}, ""},
		{map[string]string{"MYELIN_PPROF_ADDR": "localhost:6060"}, ""},
		{map[string]string{"MYELIN_PPROF_ADDR": "0.0.0.0:6060"}, "listen.pprof"},
		{map[string]string{"MYELIN_PPROF_ADDR": ":6060"}, "listen.pprof"},
		{map[string]string{"MYELIN_PPROF_ADDR": "192.168.1.2:6060"}, "listen.pprof"},
		{map[string]string{"MYELIN_PPROF_ADDR": "6060"}, "listen.pprof"},
		{map[string]string{"MYELIN_HEAP_FLOOR_MIB": "-1"}, "memory.heap_floor_mib"},
		{map[string]string{"MYELIN_EVENT_CACHE_MIB": "0"}, "memory.event_cache_mib"},
		{map[string]string{"MYELIN_SQLITE_CACHE_KIB": "8"}, "memory.sqlite_cache_kib"},
		{map[string]string{"MYELIN_SQLITE_CACHE_KIB": "lots"}, "MYELIN_SQLITE_CACHE_KIB"},
		{map[string]string{"MYELIN_DATABASE_MAX_OPEN_CONNS": "0"}, "database.max_open_conns"},
		{map[string]string{"MYELIN_DATABASE_MAX_OPEN_CONNS": "few"}, "MYELIN_DATABASE_MAX_OPEN_CONNS"},
		{map[string]string{"MYELIN_STATE_CACHE_MIB": "0"}, "memory.state_cache_mib"},
		{map[string]string{"MYELIN_STATE_CACHE_MIB": "many"}, "MYELIN_STATE_CACHE_MIB"},
		{map[string]string{"MYELIN_SYNC_CACHE_MIB": "-4"}, "memory.sync_cache_mib"},
		{map[string]string{"MYELIN_SYNC_CACHE_MIB": "2048"}, ""},
		{map[string]string{"MYELIN_LOOKUP_CACHE_MIB": "0"}, "memory.lookup_cache_mib"},
	} {
		_, err := Load("", envMap(c.env))
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%v: %v", c.env, err)
		case c.field != "" && (err == nil || !strings.Contains(err.Error(), c.field)):
			t.Errorf("%v: got %v, want an error naming %s", c.env, err, c.field)
		}
	}
}

// The defaults are issue 20's measured ones (docs/benchmarks.md, "Memory,
// second pass"): the SQLite page cache per connection is 256 KiB.
func TestMemoryDefaults(t *testing.T) {
	got := Default().Memory
	want := Memory{HeapFloorMiB: 24, EventCacheMiB: 4, SQLiteCacheKiB: 256, StateCacheMiB: 16, SyncCacheMiB: 4, LookupCacheMiB: 4}
	if got != want {
		t.Errorf("default memory settings %+v, want %+v", got, want)
	}
	loaded, err := Load("", envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Memory != want {
		t.Errorf("loaded without a file or variables: %+v, want %+v", loaded.Memory, want)
	}
}

// The cache sizes are read from the file's memory section.
func TestMemoryCacheSizesFromFile(t *testing.T) {
	cfg, err := Load(writeFile(t, "c.yaml", `
server_name: example.org
memory:
  state_cache_mib: 40
  sync_cache_mib: 12
  lookup_cache_mib: 2
`), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Memory
	if m.StateCacheMiB != 40 || m.SyncCacheMiB != 12 || m.LookupCacheMiB != 2 {
		t.Errorf("memory section read as %+v", m)
	}
	if _, err := Load(writeFile(t, "c.yaml", "server_name: example.org\nmemory:\n  state_cache_mib: 0\n"), envMap(nil)); err == nil || !strings.Contains(err.Error(), "memory.state_cache_mib") {
		t.Errorf("state_cache_mib 0: got %v, want an error naming it", err)
	}
}
