package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// ProfileEnv names a directory: when set, each benchmark writes a CPU
// profile of its measured part only (not its setup) there, named after
// the benchmark (<name>.pprof), with block and mutex contention
// profiles of the same part (<name>.block.pprof, <name>.mutex.pprof;
// these are cumulative, so profile one benchmark per process). It cannot
// be combined with go test's -cpuprofile.
const ProfileEnv = "MYELIN_BENCH_CPUPROFILE"

// eachEngine runs fn as a sub-benchmark per database engine, each with a
// fresh server (test configuration: rate limits off, cheap bcrypt).
// MYELIN_SQLITE_SYNCHRONOUS, as for the server, chooses SQLite's
// synchronous setting, so that both can be measured; MYELIN_HEAP_FLOOR_MIB
// the heap floor, MYELIN_EVENT_CACHE_MIB the event cache,
// MYELIN_SQLITE_CACHE_KIB SQLite's page cache per connection,
// MYELIN_STATE_CACHE_MIB, MYELIN_SYNC_CACHE_MIB and
// MYELIN_LOOKUP_CACHE_MIB the state, /sync and lookup caches.
func eachEngine(b *testing.B, fn func(b *testing.B, h *harness)) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) {
			s := testserver.Start(b, testdb.NewURL(b, engine), benchConfig)
			fn(b, newHarness(b, s))
		})
	}
}

// benchConfig applies the environment's choices to a benchmark server.
// It first puts back the durability the test configuration relaxes
// (SQLite's synchronous), so that figures are those of a deployed server.
func benchConfig(cfg *config.Config) {
	cfg.Database.SQLiteSynchronous = config.Default().Database.SQLiteSynchronous
	if v := os.Getenv("MYELIN_SQLITE_SYNCHRONOUS"); v != "" {
		cfg.Database.SQLiteSynchronous = v
	}
	// The heap floor is the process's: the first server's applies.
	if n, err := strconv.Atoi(os.Getenv("MYELIN_HEAP_FLOOR_MIB")); err == nil {
		cfg.Memory.HeapFloorMiB = n
	}
	if n, err := strconv.Atoi(os.Getenv("MYELIN_EVENT_CACHE_MIB")); err == nil {
		cfg.Memory.EventCacheMiB = n
	}
	if n, err := strconv.Atoi(os.Getenv("MYELIN_SQLITE_CACHE_KIB")); err == nil {
		cfg.Memory.SQLiteCacheKiB = n
	}
	if n, err := strconv.Atoi(os.Getenv("MYELIN_STATE_CACHE_MIB")); err == nil {
		cfg.Memory.StateCacheMiB = n
	}
	if n, err := strconv.Atoi(os.Getenv("MYELIN_SYNC_CACHE_MIB")); err == nil {
		cfg.Memory.SyncCacheMiB = n
	}
	if n, err := strconv.Atoi(os.Getenv("MYELIN_LOOKUP_CACHE_MIB")); err == nil {
		cfg.Memory.LookupCacheMiB = n
	}
}

// harness drives one server over HTTP with a keep-alive client pool big
// enough for every concurrent request the benchmarks make.
type harness struct {
	b    testing.TB
	s    *testserver.Server
	base string
	hc   *http.Client
	txn  atomic.Int64
}

func newHarness(b testing.TB, s *testserver.Server) *harness {
	tr := &http.Transport{
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &harness{b: b, s: s, base: s.URL, hc: &http.Client{Transport: tr}}
}

// user is a registered, logged-in account.
type user struct {
	ID, Token string
}

// httpError is a non-200 answer.
type httpError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// do sends one request (body: nil, []byte or anything JSON) and decodes a
// 200 answer into out (when not nil). The body is always drained so that
// the connection goes back to the pool.
func (h *harness) do(ctx context.Context, method, path, token string, body, out any) error {
	data, err := h.doRaw(ctx, method, path, token, body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// doRaw is do without decoding: it returns a 200 answer's body.
func (h *harness) doRaw(ctx context.Context, method, path, token string, body any) ([]byte, error) {
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &httpError{Method: method, Path: path, Status: resp.StatusCode, Body: string(data)}
	}
	return data, nil
}

const clientV3 = "/_matrix/client/v3"

// register creates an account through /register (m.login.dummy), using
// mautrix-go on the harness's connection pool.
func (h *harness) register(ctx context.Context, localpart string) (user, error) {
	cli, err := mautrix.NewClient(h.base, "", "")
	if err != nil {
		return user{}, err
	}
	cli.Client = h.hc
	resp, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: localpart, Password: "benchmark-password"})
	if err != nil {
		return user{}, fmt.Errorf("register %s: %w", localpart, err)
	}
	return user{ID: string(resp.UserID), Token: resp.AccessToken}, nil
}

// registerMany registers prefix0..prefix(n-1) with a few workers.
func (h *harness) registerMany(prefix string, n int) []user {
	h.b.Helper()
	users := make([]user, n)
	err := parallel(n, 8, func(i int) error {
		u, err := h.register(context.Background(), fmt.Sprintf("%s%d", prefix, i))
		users[i] = u
		return err
	})
	if err != nil {
		h.b.Fatal(err)
	}
	return users
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func (h *harness) createRoom(ctx context.Context, u user, req map[string]any) (string, error) {
	var resp struct {
		RoomID string `json:"room_id"`
	}
	if err := h.do(ctx, http.MethodPost, clientV3+"/createRoom", u.Token, req, &resp); err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

func (h *harness) join(ctx context.Context, u user, roomID string) error {
	return h.do(ctx, http.MethodPost, clientV3+"/join/"+url.PathEscape(roomID), u.Token, []byte("{}"), nil)
}

// sendPath is the PUT /send path of a room, a type and a fresh txn ID.
func (h *harness) sendPath(roomID, typ string) string {
	return clientV3 + "/rooms/" + url.PathEscape(roomID) + "/send/" + typ + "/t" + fmt.Sprint(h.txn.Add(1))
}

func (h *harness) sendMessage(ctx context.Context, u user, roomID string, body []byte) error {
	return h.do(ctx, http.MethodPut, h.sendPath(roomID, "m.room.message"), u.Token, body, nil)
}

func (h *harness) putState(ctx context.Context, u user, roomID, typ, stateKey string, content any) error {
	path := clientV3 + "/rooms/" + url.PathEscape(roomID) + "/state/" + typ + "/" + url.PathEscape(stateKey)
	return h.do(ctx, http.MethodPut, path, u.Token, content, nil)
}

// message is a small m.room.message content, as JSON.
func message(text string) []byte {
	raw, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": text})
	return raw
}

// syncResponse is the part of a /sync answer the benchmarks look at.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			State struct {
				Events []json.RawMessage `json:"events"`
			} `json:"state"`
			Timeline struct {
				Events []struct {
					EventID string `json:"event_id"`
					Type    string `json:"type"`
					Content struct {
						Body string `json:"body"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

func (h *harness) sync(ctx context.Context, u user, since string, timeout time.Duration) (*syncResponse, error) {
	raw, err := h.syncRaw(ctx, u, since, timeout)
	if err != nil {
		return nil, err
	}
	return decodeSync(raw)
}

// syncRaw is /sync's undecoded answer.
func (h *harness) syncRaw(ctx context.Context, u user, since string, timeout time.Duration) ([]byte, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	q.Set("timeout", fmt.Sprint(timeout.Milliseconds()))
	return h.doRaw(ctx, http.MethodGet, clientV3+"/sync?"+q.Encode(), u.Token, nil)
}

func decodeSync(raw []byte) (*syncResponse, error) {
	var resp syncResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	return &resp, nil
}

// profile starts a CPU profile of the measured part when ProfileEnv is
// set; call the returned function when the measured part ends.
func profile(b *testing.B) func() {
	dir := os.Getenv(ProfileEnv)
	if dir == "" {
		return func() {}
	}
	name := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(b.Name()))
	f, err := os.Create(name + ".pprof")
	if err != nil {
		b.Fatalf("profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Logf("profile: %v (is -cpuprofile set too?)", err)
		return func() {}
	}
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(1)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		for _, kind := range []string{"block", "mutex"} {
			out, err := os.Create(name + "." + kind + ".pprof")
			if err != nil {
				b.Fatalf("profile: %v", err)
			}
			if err := pprof.Lookup(kind).WriteTo(out, 0); err != nil {
				b.Errorf("profile: %v", err)
			}
			out.Close()
		}
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of ds, by the
// nearest-rank method; ds is sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(float64(len(ds))*p/100+0.999999) - 1
	return ds[max(0, min(rank, len(ds)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// timed logs how long a setup step took, so that slow setups show.
func timed(b *testing.B, what string, fn func()) {
	b.Helper()
	start := time.Now()
	fn()
	b.Logf("setup: %s took %v", what, time.Since(start).Round(time.Millisecond))
}

// cpuMeter adds up the process's CPU time over the measured parts of a
// benchmark: server and load generator together, and not a separate
// database server's. Unlike wall time it hardly changes when other
// processes load the machine, so it shows whether a change made the work
// itself cheaper.
type cpuMeter struct {
	total, started time.Duration
}

func (m *cpuMeter) start() { m.started = processCPU() }
func (m *cpuMeter) stop()  { m.total += processCPU() - m.started }

// perOp is the CPU time per unit of work, n units in all.
func (m *cpuMeter) perOp(n int) time.Duration {
	if n == 0 {
		return 0
	}
	return m.total / time.Duration(n)
}
