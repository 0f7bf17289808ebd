package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// lockedBuffer is a log sink that handlers and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rawJSON makes one request and decodes the answer; err is a transport
// error (the server has stopped listening).
func rawJSON(method, url, token string, body any) (int, map[string]any, error) {
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	err = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, err
}

// TestShutdownIsGraceful: with long-polling /syncs (timeout 30 s) and
// messages being sent, Shutdown answers every long-poll with a 200,
// returns within 5 s, closes the database only after every handler and
// worker returned (no "database is closed" anywhere in the log), and
// every message answered 200 is there after a restart.
func TestShutdownIsGraceful(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		cfg := testserver.Config(t, dbURL)
		logs := &lockedBuffer{}
		log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s, err := server.New(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		running := server.BeforeDBClose(s, func() {})
		base := "http://" + s.Addr("client")
		register := func(name string) *mautrix.Client {
			t.Helper()
			c, err := mautrix.NewClient(base, "", "")
			if err != nil {
				t.Fatal(err)
			}
			reg, err := c.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: name, Password: "pw"})
			if err != nil {
				t.Fatal(err)
			}
			c.SetCredentials(reg.UserID, reg.AccessToken)
			return c
		}
		// Alice long-polls; bob sends in a room of his own, which does not
		// wake her.
		alice, bob := register("alice"), register("bob")
		room, err := bob.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		st, body, err := rawJSON(http.MethodGet, base+"/_matrix/client/v3/sync", alice.AccessToken, nil)
		if err != nil || st != http.StatusOK {
			t.Fatalf("initial sync: %d %v %v", st, body, err)
		}
		since := body["next_batch"].(string)

		const polls = 3
		answered := make(chan error, polls)
		for range polls {
			go func() {
				st, body, err := rawJSON(http.MethodGet, base+"/_matrix/client/v3/sync?timeout=30000&since="+since, alice.AccessToken, nil)
				switch {
				case err != nil:
					answered <- err
				case st != http.StatusOK || body["next_batch"] == nil:
					answered <- fmt.Errorf("long-poll answered %d %v", st, body)
				default:
					answered <- nil
				}
			}()
		}
		// Senders keep going through the shutdown; what got a 200 was
		// acknowledged and must survive.
		var mu sync.Mutex
		var acked []string
		stop := make(chan struct{})
		var senders sync.WaitGroup
		for g := range 2 {
			senders.Add(1)
			go func() {
				defer senders.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					url := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/g%d-%d", base, room.RoomID, g, i)
					st, body, err := rawJSON(http.MethodPut, url, bob.AccessToken, map[string]any{"msgtype": "m.text", "body": "x"})
					if err != nil {
						return
					}
					if st == http.StatusOK {
						mu.Lock()
						acked = append(acked, body["event_id"].(string))
						mu.Unlock()
					}
				}
			}()
		}
		// Shut down once every poll waits and a send was acknowledged: a
		// fixed 300 ms was not always enough on a loaded machine, and a
		// poll that had not reached the server failed to connect.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			sent := len(acked)
			mu.Unlock()
			if server.LongPolls(s) == polls && sent > 0 {
				break
			}
			if len(answered) > 0 {
				t.Fatalf("a long-poll was answered before the shutdown: %v", <-answered)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d long-polls waiting and %d sends acknowledged after 20 s", server.LongPolls(s), sent)
			}
		}
		time.Sleep(100 * time.Millisecond) // bob's messages go on, and must not wake alice
		if len(answered) > 0 {
			t.Fatalf("a long-poll was answered before the shutdown: %v", <-answered)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err = s.Shutdown(ctx)
		took := time.Since(start)
		close(stop)
		senders.Wait()
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		if took > 5*time.Second {
			t.Fatalf("shutdown took %v with long-polls in flight, want under 5 s", took)
		}
		for range polls {
			select {
			case err := <-answered:
				if err != nil {
					t.Fatalf("long-poll during shutdown: %v", err)
				}
			case <-time.After(time.Second):
				t.Fatal("a long-poll was not answered by the shutdown")
			}
		}
		if n := running(); n != 0 {
			t.Fatalf("%d requests still running when the database was closed", n)
		}
		if l := logs.String(); strings.Contains(l, "database is closed") || strings.Contains(l, "closed pool") {
			t.Fatalf("the database was used after it was closed:\n%s", l)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(acked) == 0 {
			t.Fatal("no message was acknowledged")
		}

		s2, err := server.New(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Start(); err != nil {
			t.Fatal(err)
		}
		defer s2.Shutdown(context.Background())
		base = "http://" + s2.Addr("client")
		for _, id := range acked {
			st, body, err := rawJSON(http.MethodGet, base+"/_matrix/client/v3/rooms/"+room.RoomID.String()+"/event/"+id, bob.AccessToken, nil)
			if err != nil || st != http.StatusOK {
				t.Fatalf("acknowledged event %s after a restart: %d %v %v", id, st, body, err)
			}
		}
		t.Logf("%d messages acknowledged up to the shutdown, all there after a restart; shutdown took %v", len(acked), took)
	})
}
