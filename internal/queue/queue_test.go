package queue

import (
	"sync"
	"testing"
)

func TestQueueOrderAndBound(t *testing.T) {
	q := New[int](3)
	for i := range 3 {
		if !q.TryPush(i) {
			t.Fatalf("TryPush(%d) refused under the bound", i)
		}
	}
	if q.TryPush(3) {
		t.Fatal("TryPush accepted a fourth entry into a queue of 3")
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	if got := q.Take(2); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("Take(2) = %v, want [0 1]", got)
	}
	// Entries left behind signal Ready again.
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled for the entry left")
	}
	if !q.TryPush(4) || !q.TryPush(5) {
		t.Fatal("TryPush refused after Take made room")
	}
	if got := q.Take(10); len(got) != 3 || got[0] != 2 || got[1] != 4 || got[2] != 5 {
		t.Fatalf("Take(10) = %v, want [2 4 5]", got)
	}
	if got := q.Take(10); got != nil {
		t.Fatalf("Take of an empty queue = %v", got)
	}
}

func TestQueuePushWaitsForSpace(t *testing.T) {
	q := New[int](1)
	q.TryPush(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const pushers = 4
	for i := range pushers {
		wg.Add(1)
		go func() { defer wg.Done(); q.Push(i+1, stop) }()
	}
	got := 0
	for got < pushers+1 {
		<-q.Ready()
		got += len(q.Take(1))
	}
	wg.Wait()
	// A full queue's Push gives up when stopped.
	q.TryPush(0)
	close(stop)
	if q.Push(1, stop) {
		t.Fatal("Push into a full queue returned true after stop")
	}
}

// TestQueueLetsGoOfABurst is why Queue exists: a channel keeps its whole
// buffer, a Queue emptied by its worker gives the burst's slice back.
func TestQueueLetsGoOfABurst(t *testing.T) {
	type entry struct{ a, b, c, d [4]int64 }
	q := New[entry](100000)
	for range 50000 {
		q.TryPush(entry{})
	}
	for q.Take(256) != nil {
	}
	if c := cap(q.items); c > keepCap {
		t.Fatalf("an emptied queue kept capacity %d (want <= %d)", c, keepCap)
	}
}
