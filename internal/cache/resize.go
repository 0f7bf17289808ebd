package cache

// Resized returns a copy of m in a map sized for its entries. Go's maps
// keep the buckets of the most entries they ever held when keys are
// deleted, and maps.Clone keeps them too (it copies the table: a map of
// 100,000 entries emptied to 10 clones to 2.3 MB). A record emptied
// after a burst gives that memory back only through a map filled entry
// by entry.
func Resized[M ~map[K]V, K comparable, V any](m M) M {
	out := make(M, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
