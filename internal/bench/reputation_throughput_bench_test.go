package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// repSenders is the number of concurrent senders of
// BenchmarkReputationThroughput.
const repSenders = 8

// repRounds is how many times each variant runs, alternating (the
// machine is shared, so that A and B see the same load over time);
// MYELIN_BENCH_REP_ROUNDS changes it.
var repRounds = envInt("MYELIN_BENCH_REP_ROUNDS", 3)

// BenchmarkReputationThroughput measures what 100,000 rules over 5 feeds
// cost the server's hot paths (issue 16 item 10: under 5 %): client send
// throughput (8 senders, a room each, on hs1) and federation receive
// throughput (8 users of hs2 send in rooms hs1 is in; events/s is how
// fast hs1 stores them, up to the last one), each with no rules and with
// the rules loaded into hs1's blend, alternating A/B repRounds times on
// the same two servers. The rules list none of the senders (the common
// case; the hashed feeds make every check hash the sender's ID). Run with
// -benchtime=Nx (events per round).
func BenchmarkReputationThroughput(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) { reputationThroughput(b, engine) })
	}
}

func reputationThroughput(b *testing.B, engine string) {
	ctx := context.Background()
	net := testserver.StartNetwork(b, engine, 2, func(_ int, c *config.Config) { benchConfig(c) })
	hs1, hs2 := net.Servers[0], net.Servers[1]
	blend, ok := hs1.Reputation().(*reputation.Blender)
	if !ok {
		b.Fatalf("hs1's Enforcer is a %T, not a *reputation.Blender", hs1.Reputation())
	}
	h1, h2 := newHarness(b, hs1), newHarness(b, hs2)
	var local, remote []user
	var reader user
	localRooms, remoteRooms := make([]string, repSenders), make([]string, repSenders)
	var feeds [][]reputation.StateRule
	timed(b, "two servers, 8 senders each, a room each, 100,000 rules made", func() {
		local, remote = h1.registerMany("sender", repSenders), h2.registerMany("remote", repSenders)
		var err error
		if reader, err = h1.register(ctx, "reader"); err != nil {
			b.Fatal(err)
		}
		err = parallel(repSenders, 4, func(i int) error {
			if localRooms[i], err = h1.createRoom(ctx, local[i], map[string]any{"preset": "private_chat"}); err != nil {
				return err
			}
			if remoteRooms[i], err = h2.createRoom(ctx, remote[i], map[string]any{"preset": "public_chat"}); err != nil {
				return err
			}
			return h1.do(ctx, http.MethodPost, clientV3+"/join/"+url.PathEscape(remoteRooms[i])+"?server_name=hs2.test", reader.Token, []byte("{}"), nil)
		})
		if err != nil {
			b.Fatal(err)
		}
		for f := range repFeeds {
			feeds = append(feeds, repFeed(b, f))
		}
	})
	setRules := func(on bool) {
		for f := range repFeeds {
			id := fmt.Sprintf("!benchfeed%d:hs9.test", f)
			if !on {
				blend.RemoveFeed(id)
				continue
			}
			blend.SetFeed(id, 1, false)
			blend.LoadRules(id, feeds[f])
		}
		runtime.GC() // the garbage of a load is not the next round's cost
	}
	for round := range repRounds {
		for _, variant := range []string{"rules=0", "rules=100k"} {
			setRules(variant != "rules=0")
			b.Run(fmt.Sprintf("send/%s/round%d", variant, round), func(b *testing.B) {
				sendLoad(b, h1, local, func(i int) string { return localRooms[i] })
			})
			b.Run(fmt.Sprintf("federation-receive/%s/round%d", variant, round), func(b *testing.B) {
				receiveLoad(b, h1, h2, reader, remote, remoteRooms)
			})
		}
	}
	setRules(false)
}

// receiveLoad has hs2's users send b.N messages in all to their rooms,
// and waits until hs1 has stored each room's last one: federation
// delivers a destination's events in order, so then hs1 has them all.
func receiveLoad(b *testing.B, h1, h2 *harness, reader user, senders []user, roomIDs []string) {
	ctx := context.Background()
	body := message("a benchmark message of an ordinary length, about like this")
	var sent atomic.Int64
	last := make([]string, len(senders))
	var cpu cpuMeter
	stop := profile(b)
	b.ResetTimer()
	cpu.start()
	err := parallel(len(senders), len(senders), func(i int) error {
		for sent.Add(1) <= int64(b.N) {
			var resp struct {
				EventID string `json:"event_id"`
			}
			if err := h2.do(ctx, http.MethodPut, h2.sendPath(roomIDs[i], "m.room.message"), senders[i].Token, body, &resp); err != nil {
				return err
			}
			last[i] = resp.EventID
		}
		return nil
	})
	if err == nil {
		err = parallel(len(senders), len(senders), func(i int) error {
			if last[i] == "" {
				return nil
			}
			path := clientV3 + "/rooms/" + url.PathEscape(roomIDs[i]) + "/event/" + url.PathEscape(last[i])
			deadline := time.Now().Add(5 * time.Minute)
			for {
				err := h1.do(ctx, http.MethodGet, path, reader.Token, nil, nil)
				var he *httpError
				if err == nil || !errors.As(err, &he) || he.Status != http.StatusNotFound || time.Now().After(deadline) {
					return err
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	b.StopTimer()
	cpu.stop()
	stop()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.perOp(b.N).Microseconds()), "cpu-us/event")
}
