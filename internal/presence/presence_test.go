package presence

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	// Databases copied from one migrated once, not migrated per test.
	_ "github.com/myelin-chat/myelin/internal/testdb/migrated"
)

// clock is a settable clock for the timeouts.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	db      *store.DB
	stream  *rooms.StreamGen
	clock   *clock
	svc     *Service
	changes []string
	pushes  []Push
	mu      sync.Mutex
}

func newFixture(t *testing.T, dbURL string, enabled bool) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, clock: &clock{t: time.UnixMilli(1_700_000_000_000)}}
	f.start(t, enabled)
	return f
}

// start makes a new service over the fixture's database, as a restart.
func (f *fixture) start(t *testing.T, enabled bool) {
	t.Helper()
	stream, err := rooms.OpenStream(context.Background(), f.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.stream = stream
	b := bus.New()
	f.svc = New(Options{ServerName: "hs1.test", Enabled: enabled, Store: f.db, Stream: stream, Now: f.clock.Now, Bus: b})
	b.Subscribe("sync", func(_ context.Context, c bus.Change) {
		f.mu.Lock()
		f.changes = append(f.changes, c.(Changed).UserID)
		f.mu.Unlock()
	}, TopicChanged)
	b.Subscribe("federation", func(_ context.Context, c bus.Change) {
		f.mu.Lock()
		f.pushes = append(f.pushes, c.(Push))
		f.mu.Unlock()
	}, TopicLocal)
}

func (f *fixture) counts() (changes, pushes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.changes), len(f.pushes)
}

func (f *fixture) get(t *testing.T, user string) Content {
	t.Helper()
	c, err := f.svc.Get(context.Background(), user, user)
	if err != nil {
		t.Fatalf("Get %s: %v", user, err)
	}
	return c
}

func wantPresence(t *testing.T, what string, c Content, presence string) {
	t.Helper()
	if c.Presence != presence {
		t.Fatalf("%s: presence %q, want %q (%+v)", what, c.Presence, presence, c)
	}
}

const alice = "@alice:hs1.test"

func TestSetGetAndStream(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		// A local user never seen is offline, with nothing else known.
		if c := f.get(t, alice); c.Presence != Offline || c.LastActiveAgo != nil || c.CurrentlyActive != nil {
			t.Fatalf("unseen user: %+v", c)
		}
		before := f.stream.Current()
		msg := "in a meeting"
		if err := f.svc.Set(ctx, alice, Online, &msg); err != nil {
			t.Fatal(err)
		}
		pos := f.stream.Current()
		if pos <= before {
			t.Fatalf("stream did not advance: %d -> %d", before, pos)
		}
		f.clock.Advance(1500 * time.Millisecond)
		c := f.get(t, alice)
		wantPresence(t, "after PUT online", c, Online)
		if c.StatusMsg == nil || *c.StatusMsg != msg || c.CurrentlyActive == nil || !*c.CurrentlyActive ||
			c.LastActiveAgo == nil || *c.LastActiveAgo != 1500 {
			t.Fatalf("after PUT online: %+v", c)
		}
		if ch, pu := f.counts(); ch != 1 || pu != 1 {
			t.Fatalf("Changed %d times, Push %d times; want 1 and 1", ch, pu)
		}
		// The user's own presence is in /sync's changes up to the
		// position, not after it.
		evs, err := f.svc.Changes(ctx, alice, 0, pos)
		if err != nil || len(evs) != 1 || evs[0].Sender != alice || evs[0].Type != "m.presence" || evs[0].Content.Presence != Online {
			t.Fatalf("Changes(0, %d) = %+v, %v", pos, evs, err)
		}
		if evs, _ := f.svc.Changes(ctx, alice, pos, pos); len(evs) != 0 {
			t.Fatalf("Changes after the position: %+v", evs)
		}
		// The same state again is no change: no position, no wake-up.
		if err := f.svc.Set(ctx, alice, Online, &msg); err != nil {
			t.Fatal(err)
		}
		if f.stream.Current() != pos {
			t.Fatal("an unchanged state took a position")
		}
		// A restart resumes after presence's positions.
		max, err := f.db.MaxStreamPos(ctx)
		if err != nil || max < pos {
			t.Fatalf("MaxStreamPos = %d, %v; presence took %d", max, err, pos)
		}
		// Setting without status_msg clears it, as Synapse.
		if err := f.svc.Set(ctx, alice, Unavailable, nil); err != nil {
			t.Fatal(err)
		}
		c = f.get(t, alice)
		wantPresence(t, "after PUT unavailable", c, Unavailable)
		if c.StatusMsg != nil || c.CurrentlyActive != nil {
			t.Fatalf("after PUT unavailable: %+v", c)
		}
		err = f.svc.Set(ctx, alice, "busy", nil)
		if e, ok := mxerr.As(err); !ok || e.Code != "M_INVALID_PARAM" {
			t.Fatalf("Set busy: %v", err)
		}
	})
}

func TestSyncTimeouts(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		// set_presence=offline leaves an offline user offline.
		done, err := f.svc.SetFromSync(ctx, alice, Offline)
		if err != nil {
			t.Fatal(err)
		}
		done()
		wantPresence(t, "after an offline sync", f.get(t, alice), Offline)
		if _, err := f.svc.SetFromSync(ctx, alice, "away"); err == nil {
			t.Fatal("set_presence=away accepted")
		}

		// A sync brings the user online; its end and 30 s more take them
		// offline.
		done, err = f.svc.SetFromSync(ctx, alice, "")
		if err != nil {
			t.Fatal(err)
		}
		wantPresence(t, "during a sync", f.get(t, alice), Online)
		f.clock.Advance(10 * time.Second)
		done()
		f.clock.Advance(SyncOnlineTimeout)
		f.svc.Sweep(ctx)
		wantPresence(t, "30 s after the sync's end", f.get(t, alice), Online)
		f.clock.Advance(time.Second)
		f.svc.Sweep(ctx)
		wantPresence(t, "31 s after the sync's end", f.get(t, alice), Offline)

		// While a sync is in progress the user stays online; inactive,
		// they stop being currently_active after a minute and go idle
		// after five; a sync does not end idleness, activity does.
		done, _ = f.svc.SetFromSync(ctx, alice, Online)
		f.clock.Advance(LastActiveGranularity + time.Second)
		f.svc.Sweep(ctx)
		c := f.get(t, alice)
		wantPresence(t, "a minute into a sync", c, Online)
		if c.CurrentlyActive == nil || *c.CurrentlyActive {
			t.Fatalf("a minute without activity, still currently_active: %+v", c)
		}
		f.clock.Advance(IdleTimer)
		f.svc.Sweep(ctx)
		wantPresence(t, "six minutes without activity", f.get(t, alice), Unavailable)
		done()
		done, _ = f.svc.SetFromSync(ctx, alice, Online)
		wantPresence(t, "a new sync of an idle user", f.get(t, alice), Unavailable)
		if err := f.svc.Activity(ctx, alice); err != nil {
			t.Fatal(err)
		}
		c = f.get(t, alice)
		wantPresence(t, "after activity", c, Online)
		if c.CurrentlyActive == nil || !*c.CurrentlyActive {
			t.Fatalf("after activity: %+v", c)
		}
		// set_presence=unavailable makes the user so.
		done()
		done, _ = f.svc.SetFromSync(ctx, alice, Unavailable)
		wantPresence(t, "a sync with unavailable", f.get(t, alice), Unavailable)
		done()
	})
}

func TestRestartKeepsPresence(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		msg := "back soon"
		if err := f.svc.Set(ctx, alice, Unavailable, &msg); err != nil {
			t.Fatal(err)
		}
		done, _ := f.svc.SetFromSync(ctx, alice, Offline)
		done()
		pos := f.stream.Current()
		f.svc.Flush(ctx)

		f.start(t, true)
		if f.stream.Current() < pos {
			t.Fatalf("stream after restart at %d, presence had taken %d", f.stream.Current(), pos)
		}
		c := f.get(t, alice)
		wantPresence(t, "after restart", c, Unavailable)
		if c.StatusMsg == nil || *c.StatusMsg != msg {
			t.Fatalf("after restart: %+v", c)
		}
		// Loaded at start, the user gets a sync timeout's grace to
		// reconnect, then goes offline.
		if err := f.svc.loadActive(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(SyncOnlineTimeout)
		f.svc.Sweep(ctx)
		wantPresence(t, "within the grace", f.get(t, alice), Unavailable)
		f.clock.Advance(time.Second)
		f.svc.Sweep(ctx)
		wantPresence(t, "after the grace", f.get(t, alice), Offline)
	})
}

func TestDisabled(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, false)
		before := f.stream.Current()
		msg := "hello"
		if err := f.svc.Set(ctx, alice, Online, &msg); err != nil {
			t.Fatal(err)
		}
		done, err := f.svc.SetFromSync(ctx, alice, Online)
		if err != nil {
			t.Fatal(err)
		}
		done()
		_ = f.svc.Activity(ctx, alice)
		edu := json.RawMessage(`{"push":[{"user_id":"@bob:hs2.test","presence":"online","last_active_ago":5}]}`)
		if err := f.svc.HandleEDU(ctx, "hs2.test", edu); err != nil {
			t.Fatal(err)
		}
		if f.stream.Current() != before {
			t.Fatal("presence took positions while off")
		}
		// Everyone reads as offline, even users sharing no room.
		if c, err := f.svc.Get(ctx, "@carol:hs1.test", "@bob:hs2.test"); err != nil || c.Presence != Offline || c.StatusMsg != nil {
			t.Fatalf("Get while off: %+v, %v", c, err)
		}
		if evs, err := f.svc.Changes(ctx, alice, 0, f.stream.Current()+1); err != nil || len(evs) != 0 {
			t.Fatalf("Changes while off: %+v, %v", evs, err)
		}
		if ch, pu := f.counts(); ch != 0 || pu != 0 {
			t.Fatalf("Changed %d, Push %d while off", ch, pu)
		}
	})
}

func TestIncomingEDU(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		const bob = "@bob:hs2.test"
		_, err := f.svc.Get(ctx, bob, bob)
		if e, ok := mxerr.As(err); !ok || e.Status != http.StatusNotFound {
			t.Fatalf("an unknown remote user: %v", err)
		}
		edu := json.RawMessage(`{"push":[
			{"user_id":"@bob:hs2.test","presence":"online","last_active_ago":2000,"currently_active":true,"status_msg":"hi"},
			{"user_id":"@mallory:hs3.test","presence":"online","last_active_ago":0},
			{"user_id":"@alice:hs1.test","presence":"online","last_active_ago":0},
			{"user_id":"@bob2:hs2.test","presence":"dancing","last_active_ago":0}]}`)
		if err := f.svc.HandleEDU(ctx, "hs2.test", edu); err == nil {
			t.Fatal("no error for the refused entries")
		}
		c := f.get(t, bob)
		wantPresence(t, "bob", c, Online)
		if c.StatusMsg == nil || *c.StatusMsg != "hi" || c.LastActiveAgo == nil || *c.LastActiveAgo != 2000 || !*c.CurrentlyActive {
			t.Fatalf("bob: %+v", c)
		}
		for _, u := range []string{"@mallory:hs3.test", "@bob2:hs2.test"} {
			if _, err := f.svc.Get(ctx, u, u); err == nil {
				t.Fatalf("%s's presence was stored", u)
			}
		}
		wantPresence(t, "alice, claimed by hs2", f.get(t, alice), Offline)
		if ch, pu := f.counts(); ch != 1 || pu != 0 {
			t.Fatalf("Changed %d, Push %d; want 1 and 0 (remote users are not sent on)", ch, pu)
		}
		// A remote server silent for FederationTimeout: its users go
		// offline.
		f.clock.Advance(FederationTimeout + time.Second)
		f.svc.Sweep(ctx)
		wantPresence(t, "bob after the federation timeout", f.get(t, bob), Offline)
	})
}

func TestFederationPing(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		if err := f.svc.Set(ctx, alice, Unavailable, nil); err != nil {
			t.Fatal(err)
		}
		done, _ := f.svc.SetFromSync(ctx, alice, Offline)
		defer done()
		// Keep alice connected: a sync in progress.
		f.svc.mu.Lock()
		f.svc.syncing[alice]++
		f.svc.mu.Unlock()
		_, before := f.counts()
		f.clock.Advance(FederationPingInterval + time.Second)
		f.svc.Sweep(ctx)
		if _, after := f.counts(); after != before+1 {
			t.Fatalf("pushes %d -> %d, want a ping", before, after)
		}
		f.svc.Sweep(ctx)
		if _, again := f.counts(); again != before+1 {
			t.Fatal("pinged twice in a row")
		}
	})
}
