package ratelimit

import (
	"strings"
	"testing"
	"time"
)

func TestBucketRefillsAndReportsWait(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(map[string]Rule{"login": {PerSecond: 0.5, Burst: 2}}, []string{"@bot:x"})
	l.now = func() time.Time { return now }
	for i := 0; i < 2; i++ {
		if ok, _ := l.Allow("login", "ip:1.2.3.4"); !ok {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	ok, wait := l.Allow("login", "ip:1.2.3.4")
	if ok || wait != 2000 {
		t.Fatalf("third request: ok=%v wait=%d, want refused with 2000 ms", ok, wait)
	}
	if ok, _ := l.Allow("login", "ip:5.6.7.8"); !ok {
		t.Fatal("another client shares the bucket")
	}
	now = now.Add(2 * time.Second)
	if ok, _ := l.Allow("login", "ip:1.2.3.4"); !ok {
		t.Fatal("not refilled after the wait")
	}
	for i := 0; i < 10; i++ {
		if ok, _ := l.Allow("login", "user:@bot:x"); !ok {
			t.Fatal("exempt user limited")
		}
	}
	if ok, _ := l.Allow("unknown-rule", "ip:1.2.3.4"); !ok {
		t.Fatal("a rule that does not exist must not limit")
	}
}

func TestSweepForgetsFullBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(map[string]Rule{"r": {PerSecond: 1, Burst: 1}}, nil)
	l.now = func() time.Time { return now }
	l.Allow("r", "a")
	l.sweep()
	if len(l.buckets) != 1 {
		t.Fatal("an empty bucket was forgotten: the client would get a fresh burst")
	}
	now = now.Add(time.Second)
	l.sweep()
	if len(l.buckets) != 0 {
		t.Fatal("a refilled bucket was kept")
	}
}

type fixedOverrides map[string]Rule

func (f fixedOverrides) RateOverride(user string) (float64, int, bool) {
	r, ok := f[user]
	return r.PerSecond, r.Burst, ok
}

func TestOverrides(t *testing.T) {
	now := time.Unix(1000, 0)
	o := fixedOverrides{"@free:x": {}, "@big:x": {PerSecond: 1, Burst: 5}, "@noburst:x": {PerSecond: 1}}
	l := NewWithOverrides(map[string]Rule{"message": {PerSecond: 0.001, Burst: 1}}, nil, o)
	l.now = func() time.Time { return now }
	for i := 0; i < 20; i++ {
		if ok, _ := l.Allow("message", "user:@free:x"); !ok {
			t.Fatal("a 0/0 override limited the user")
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("message", "user:@big:x"); !ok {
			t.Fatalf("request %d within the override's burst refused", i)
		}
	}
	if ok, wait := l.Allow("message", "user:@big:x"); ok || wait != 1000 {
		t.Fatalf("over the override's burst: ok=%v wait=%d, want refused with 1000 ms", ok, wait)
	}
	if ok, _ := l.Allow("message", "user:@noburst:x"); !ok {
		t.Fatal("an override with burst 0 refused the first request")
	}
	l.Allow("message", "user:@plain:x")
	if ok, _ := l.Allow("message", "user:@plain:x"); ok {
		t.Fatal("a user without override was not limited by the rule")
	}
	// The sweep fills overridden buckets at their own rate.
	now = now.Add(5 * time.Second)
	l.sweep()
	for id := range l.buckets {
		if strings.Contains(id, "@big:x") {
			t.Fatal("a refilled overridden bucket was kept")
		}
	}
}
