// Package ratelimit implements the token buckets behind M_LIMIT_EXCEEDED:
// one bucket per (rule, client), where the client is a user ID once
// authenticated and an IP address before.
package ratelimit

import (
	"context"
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
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New makes a limiter with the named rules; exemptUsers are never limited.
func New(rules map[string]Rule, exemptUsers []string) *Limiter {
	l := &Limiter{rules: rules, exempt: map[string]bool{}, buckets: map[string]*bucket{}, now: time.Now}
	for _, u := range exemptUsers {
		l.exempt[u] = true
	}
	return l
}

// Allow takes a token from the bucket of rule for key. When none is left
// it reports how many milliseconds until one is.
func (l *Limiter) Allow(rule, key string) (bool, int64) {
	r, ok := l.rules[rule]
	if !ok {
		return true, 0
	}
	if user, ok := strings.CutPrefix(key, "user:"); ok && l.exempt[user] {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	id := rule + "\x00" + key
	b, ok := l.buckets[id]
	if !ok {
		b = &bucket{tokens: float64(r.Burst), last: now}
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
		rule, _, _ := strings.Cut(id, "\x00")
		r := l.rules[rule]
		if b.tokens+now.Sub(b.last).Seconds()*r.PerSecond >= float64(r.Burst) {
			delete(l.buckets, id)
		}
	}
}
