package accountdata

// defaultIgnoredBytes bounds the ignore lists' cache when New is given
// no bound (memory.lookup_cache_mib's default). It was bounded at
// 100,000 users, whatever their lists' lengths.
const defaultIgnoredBytes = 4 << 20

// options are New's settings.
type options struct{ ignoredBytes int }

// Option sets one of New's settings.
type Option func(*options)

// WithIgnoredCacheBytes bounds the cache of users' ignore lists by an
// estimate of its memory (cache.SetCost); 0 or less keeps the default.
func WithIgnoredCacheBytes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.ignoredBytes = n
		}
	}
}
