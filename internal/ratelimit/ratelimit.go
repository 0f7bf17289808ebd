// Package ratelimit implements the token buckets behind M_LIMIT_EXCEEDED:
// one bucket per (rule, client), where the client is a user ID once
// authenticated and an IP address before.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/periodic"
)

// Rule is a token bucket: PerSecond refill rate and Burst capacity.
type Rule struct {
	PerSecond float64
	Burst     int
}

// Limiter holds the buckets. The zero value is not usable; use New.
type Limiter struct {
	mu      sync.Mutex
	rules   map[string]Rule
	exempt  map[string]bool
	buckets map[string]*bucket
	now     func() time.Time
	// overrides gives users their own rule (nil: none do).
	overrides Overrides
}

// Overrides are per-user rules an admin set (Synapse's admin API
// override_ratelimit): they replace every rule's rate and burst for the
// user; a rate and burst of 0 exempt the user altogether.
type Overrides interface {
	RateOverride(userID string) (perSecond float64, burst int, ok bool)
}

type bucket struct {
	tokens float64
	last   time.Time
	rule   Rule // the rule it fills by (a user's override, or the named rule)
}

// New makes a limiter with the named rules; exemptUsers are never limited.
func New(rules map[string]Rule, exemptUsers []string) *Limiter {
	l := &Limiter{rules: rules, exempt: map[string]bool{}, buckets: map[string]*bucket{}, now: time.Now}
	for _, u := range exemptUsers {
		l.exempt[u] = true
	}
	return l
}

// NewWithOverrides is New with per-user overrides.
func NewWithOverrides(rules map[string]Rule, exemptUsers []string, o Overrides) *Limiter {
	l := New(rules, exemptUsers)
	l.overrides = o
	return l
}

// Allow takes a token from the bucket of rule for key. When none is left
// it reports how many milliseconds until one is.
func (l *Limiter) Allow(rule, key string) (bool, int64) {
	r, ok := l.rules[rule]
	if !ok {
		return true, 0
	}
	if user, ok := strings.CutPrefix(key, "user:"); ok {
		if l.exempt[user] {
			return true, 0
		}
		if l.overrides != nil {
			if perSecond, burst, ok := l.overrides.RateOverride(user); ok {
				if perSecond <= 0 {
					// Synapse: no rate is no limit, whatever the burst.
					return true, 0
				}
				// Overridden buckets are keyed apart, so that a change
				// of override starts a fresh bucket.
				r = Rule{PerSecond: perSecond, Burst: max(burst, 1)}
				key = fmt.Sprintf("%s\x00%g/%d", key, perSecond, burst)
			}
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	id := rule + "\x00" + key
	b, ok := l.buckets[id]
	if !ok {
		b = &bucket{tokens: float64(r.Burst), last: now, rule: r}
		l.buckets[id] = b
	}
	b.tokens = math.Min(float64(r.Burst), b.tokens+now.Sub(b.last).Seconds()*r.PerSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / r.PerSecond
	return false, int64(math.Ceil(wait * 1000))
}

// Run forgets full buckets every interval until ctx ends, so that memory
// follows the number of active clients rather than all clients ever seen.
func (l *Limiter) Run(ctx context.Context, interval time.Duration) error {
	periodic.Every(ctx, interval, l.sweep)
	return nil
}

func (l *Limiter) sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, b := range l.buckets {
		r := b.rule
		if b.tokens+now.Sub(b.last).Seconds()*r.PerSecond >= float64(r.Burst) {
			delete(l.buckets, id)
		}
	}
}
