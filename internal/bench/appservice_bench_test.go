package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// Application service benchmarks (issue 19): the service is a real HTTP
// server on loopback that takes PUT /_matrix/app/v1/transactions as a
// bridge does (deduplicating by transaction ID, as the spec asks), in
// the benchmark's process. Its bot user is joined to the rooms, which is
// what makes the events interesting to it.

// asReceiver is the application service's HTTP side.
type asReceiver struct {
	b     testing.TB
	port  int
	hs    string // the hs_token it expects
	srv   *http.Server
	mu    sync.Mutex
	txns  map[string]bool
	onEvt func(ev asEvent, at time.Time)
	// events counts the events received (duplicates of a repeated
	// transaction excluded); txnCount the transactions.
	events, txnCount atomic.Int64
}

type asEvent struct {
	Type    string `json:"type"`
	RoomID  string `json:"room_id"`
	Sender  string `json:"sender"`
	Content struct {
		Body string `json:"body"`
	} `json:"content"`
}

// asPort reserves a loopback port for a service that may start later.
func asPort(b testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// asRegistration writes the registration file of the benchmark's service
// at port.
func asRegistration(b testing.TB, port int) (path, asToken, hsToken string) {
	asToken, hsToken = "bench_as_token", "bench_hs_token"
	reg := fmt.Sprintf(`id: benchas
url: http://127.0.0.1:%d
as_token: %s
hs_token: %s
sender_localpart: benchbot
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@benchpuppet_.*"
`, port, asToken, hsToken)
	path = filepath.Join(b.TempDir(), "benchas.yaml")
	if err := os.WriteFile(path, []byte(reg), 0o600); err != nil {
		b.Fatal(err)
	}
	return path, asToken, hsToken
}

func newASReceiver(b testing.TB, port int, hsToken string) *asReceiver {
	return &asReceiver{b: b, port: port, hs: hsToken, txns: map[string]bool{}}
}

// start listens; the service is "up" until stop.
func (r *asReceiver) start() {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(r.port))
	if err != nil {
		r.b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txn}", r.transaction)
	r.srv = &http.Server{Handler: mux}
	go func() { _ = r.srv.Serve(l) }()
	r.b.Cleanup(r.stop)
}

func (r *asReceiver) stop() {
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

func (r *asReceiver) transaction(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	if req.Header.Get("Authorization") != "Bearer "+r.hs {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var txn struct {
		Events []asEvent `json:"events"`
	}
	if err := json.NewDecoder(req.Body).Decode(&txn); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	seen := r.txns[req.PathValue("txn")]
	r.txns[req.PathValue("txn")] = true
	if !seen {
		r.txnCount.Add(1)
		for _, ev := range txn.Events {
			if r.onEvt != nil {
				r.onEvt(ev, at)
			}
			r.events.Add(1)
		}
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

// asServer starts, per engine, a server with the benchmark's service
// registered (withAS) or not, and its receiver (started).
func asServer(b *testing.B, engine string, withAS bool) (*harness, *asReceiver, string) {
	port := asPort(b)
	path, asToken, hsToken := asRegistration(b, port)
	s := testserver.Start(b, testdb.NewURL(b, engine), func(c *config.Config) {
		benchConfig(c)
		if withAS {
			c.AppServices.Files = []string{path}
		}
	})
	r := newASReceiver(b, port, hsToken)
	r.start()
	return newHarness(b, s), r, asToken
}

// roomsWithBot makes n users each with a public room the service's bot
// has joined (when asToken is set).
func roomsWithBot(b *testing.B, h *harness, asToken, prefix string, n int) ([]user, []string) {
	ctx := context.Background()
	users := h.registerMany(prefix, n)
	rooms := make([]string, n)
	err := parallel(n, 8, func(i int) error {
		id, err := h.createRoom(ctx, users[i], map[string]any{"preset": "public_chat"})
		rooms[i] = id
		if err != nil || asToken == "" {
			return err
		}
		return h.join(ctx, user{Token: asToken}, id)
	})
	if err != nil {
		b.Fatal(err)
	}
	return users, rooms
}

// BenchmarkAppServiceLatency measures, per message a normal user sends
// in a room the service's bot is in, the time from the start of PUT
// /send to the transaction carrying it arriving at the service
// (as-p50-ms, as-p99-ms; target p99 <= 50 ms). Messages go one at a
// time, each once the previous one has arrived, while 10 other users
// keep sending in their rooms (the load a busy server has), so the
// figure includes the stream read and the room checks of the others'
// events. after-send-p99-ms counts from the send's answer instead: the
// delivery alone, without the send's own commit; send-p99-ms is the
// send's own answer time.
func BenchmarkAppServiceLatency(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			h, r, asToken := asServer(b, engine, true)
			users, rooms := roomsWithBot(b, h, asToken, "lat", 11)
			var arrivals sync.Map // body -> chan time.Time
			r.onEvt = func(ev asEvent, at time.Time) {
				if ch, ok := arrivals.Load(ev.Content.Body); ok {
					ch.(chan time.Time) <- at
				}
			}
			// Background load: 10 users, about 100 messages/s in all.
			stopLoad := make(chan struct{})
			var loadWG sync.WaitGroup
			for i := 1; i < len(users); i++ {
				loadWG.Add(1)
				go func() {
					defer loadWG.Done()
					t := time.NewTicker(100 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stopLoad:
							return
						case <-t.C:
							_ = h.sendMessage(ctx, users[i], rooms[i], message("background"))
						}
					}
				}()
			}
			var lat, after, sends []time.Duration
			stop := profile(b)
			b.ResetTimer()
			for i := range b.N {
				body := fmt.Sprintf("latency-%d", i)
				ch := make(chan time.Time, 1)
				arrivals.Store(body, ch)
				start := time.Now()
				if err := h.sendMessage(ctx, users[0], rooms[0], message(body)); err != nil {
					b.Fatal(err)
				}
				answered := time.Now()
				sends = append(sends, answered.Sub(start))
				select {
				case at := <-ch:
					lat = append(lat, at.Sub(start))
					after = append(after, max(0, at.Sub(answered)))
				case <-time.After(30 * time.Second):
					b.Fatalf("message %d never reached the service", i)
				}
				arrivals.Delete(body)
			}
			b.StopTimer()
			stop()
			close(stopLoad)
			loadWG.Wait()
			b.ReportMetric(ms(percentile(lat, 50)), "as-p50-ms")
			b.ReportMetric(ms(percentile(lat, 99)), "as-p99-ms")
			b.ReportMetric(ms(percentile(after, 99)), "after-send-p99-ms")
			b.ReportMetric(ms(percentile(sends, 99)), "send-p99-ms")
		})
	}
}

// asSenders is the number of concurrent senders of
// BenchmarkAppServiceThroughput, as it was first measured with.
const asSenders = 50

// BenchmarkAppServiceThroughput has 50 users send as fast as the server
// answers, each in a room of their own that the service's bot is in,
// with the service registered (with-as) and without it (without-as, the
// same rooms, the bot joined to none): events/s is the senders', to
// compare; as-events/s is how fast the service received them (from the
// first send to the last arrival) and as-lag-ms how long after the last
// send answered the last one arrived. Run with -count 2 or more: the
// two alternate, which is the fairest comparison on a loaded machine.
func BenchmarkAppServiceThroughput(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) {
			for _, withAS := range []bool{true, false} {
				name := "without-as"
				if withAS {
					name = "with-as"
				}
				b.Run(name, func(b *testing.B) {
					h, r, asToken := asServer(b, engine, withAS)
					token := ""
					if withAS {
						token = asToken
					}
					users, rooms := roomsWithBot(b, h, token, "thr", asSenders)
					var last, got atomic.Int64
					r.onEvt = func(ev asEvent, at time.Time) {
						if ev.Type == "m.room.message" {
							got.Add(1)
							last.Store(at.UnixNano())
						}
					}
					start := time.Now()
					sendLoad(b, h, users, func(i int) string { return rooms[i] })
					sent := time.Now()
					if !withAS {
						return
					}
					deadline := time.Now().Add(2 * time.Minute)
					for got.Load() < int64(b.N) {
						if time.Now().After(deadline) {
							b.Fatalf("the service got %d of %d events", got.Load(), b.N)
						}
						time.Sleep(time.Millisecond)
					}
					end := time.Unix(0, last.Load())
					b.ReportMetric(float64(b.N)/end.Sub(start).Seconds(), "as-events/s")
					b.ReportMetric(ms(max(0, end.Sub(sent))), "as-lag-ms")
					b.ReportMetric(float64(b.N)/float64(max(1, r.txnCount.Load())), "events/txn")
				})
			}
		})
	}
}

// asBacklog is the number of events BenchmarkAppServiceCatchUp queues
// while the service is down (MYELIN_BENCH_AS_BACKLOG).
var asBacklog = envInt("MYELIN_BENCH_AS_BACKLOG", 20_000)

// BenchmarkAppServiceCatchUp: the service is down while 20 users send
// 20,000 messages in 20 rooms (queue-s: how long the sending took);
// Myelin restarts; the service comes back. It reports how long after it
// returned the last event arrived (catchup-s, including the sender's
// back-off from its failed attempts) and at what rate (catchup-events/s),
// and fails unless every event arrived, each room's in the order sent.
// One iteration; run with -benchtime 1x.
func BenchmarkAppServiceCatchUp(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			port := asPort(b)
			path, asToken, hsToken := asRegistration(b, port)
			s := testserver.Start(b, testdb.NewURL(b, engine), func(c *config.Config) {
				benchConfig(c)
				c.AppServices.Files = []string{path}
			})
			h := newHarness(b, s)
			const nRooms = 20
			users, rooms := roomsWithBot(b, h, asToken, "cu", nRooms)
			perRoom := asBacklog / nRooms
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				err := parallel(nRooms, nRooms, func(i int) error {
					for j := range perRoom {
						if err := h.sendMessage(ctx, users[i], rooms[i], message(fmt.Sprintf("%d/%d", i, j))); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				queued := time.Since(start)
				s.Restart()
				r := newASReceiver(b, port, hsToken)
				next := make([]int, nRooms)
				var bad atomic.Value
				var got atomic.Int64
				done := make(chan struct{})
				r.onEvt = func(ev asEvent, _ time.Time) {
					if ev.Type != "m.room.message" {
						return
					}
					room, seq, ok := strings.Cut(ev.Content.Body, "/")
					i, err1 := strconv.Atoi(room)
					j, err2 := strconv.Atoi(seq)
					if !ok || err1 != nil || err2 != nil || i < 0 || i >= nRooms || rooms[i] != ev.RoomID {
						bad.Store(errors.New("unexpected event " + ev.Content.Body))
						return
					}
					if j != next[i] {
						bad.Store(fmt.Errorf("room %d: got message %d, want %d", i, j, next[i]))
					}
					next[i] = j + 1
					if got.Add(1) == int64(nRooms*perRoom) {
						close(done)
					}
				}
				stop := profile(b) // the catch-up alone
				back := time.Now()
				r.start()
				select {
				case <-done:
				case <-time.After(10 * time.Minute):
					b.Fatalf("the service got %d of %d events", got.Load(), nRooms*perRoom)
				}
				took := time.Since(back)
				stop()
				if err, _ := bad.Load().(error); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(queued.Seconds(), "queue-s")
				b.ReportMetric(took.Seconds(), "catchup-s")
				b.ReportMetric(float64(nRooms*perRoom)/took.Seconds(), "catchup-events/s")
				b.ReportMetric(float64(r.txnCount.Load()), "txns")
			}
		})
	}
}
