package cache

// EntryOverhead estimates the memory an LRU entry costs besides its key's
// and value's own data, for a key of one string and a value of a word or
// two: the entry (48 bytes), its list element (48) and its slot in the
// cache's map (about 64 with Go's load factor; the map does not shrink
// after evictions). Caches bounded by bytes add it to each entry's cost,
// so that a cache of small entries is bounded too. Measured by the
// caches' tests (TestRoomTypesCacheBoundedByBytes: 207 bytes an entry
// for a 38-byte ID and a pointer).
const EntryOverhead = 160

// StringBytes estimates the memory of a string's bytes: its length and
// the rounding up to the allocator's size class.
func StringBytes(s string) int { return len(s) + 16 }

// SetEntryBytes estimates one entry of a set of IDs (map[string]bool)
// besides the ID's bytes: the map's slot (a string header and a bool,
// with Go's load factor and tophash byte).
const SetEntryBytes = 40

// SetCost estimates the memory of a set of IDs held in a cache entry,
// with the entry's key of keyLen bytes.
func SetCost(keyLen int, set map[string]bool) int {
	n := keyLen + 16 + EntryOverhead + 48 // the map's header
	for id := range set {
		n += StringBytes(id) + SetEntryBytes
	}
	return n
}
