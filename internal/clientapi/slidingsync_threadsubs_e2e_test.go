package clientapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

const threadSubsExt = "io.element.msc4308.thread_subscriptions"

// threadSubsAnswer is the MSC4308 extension's answer as the rust-sdk reads it.
type threadSubsAnswer struct {
	Subscribed map[string]map[string]struct {
		Automatic bool  `json:"automatic"`
		BumpStamp int64 `json:"bump_stamp"`
	} `json:"subscribed"`
	Unsubscribed map[string]map[string]struct {
		BumpStamp int64 `json:"bump_stamp"`
	} `json:"unsubscribed"`
}

func threadSubsOf(t *testing.T, raw testserver.Response) (*threadSubsAnswer, string) {
	t.Helper()
	var out struct {
		Pos        string                     `json:"pos"`
		Extensions map[string]json.RawMessage `json:"extensions"`
	}
	if err := json.Unmarshal(raw.Raw, &out); err != nil {
		t.Fatal(err)
	}
	ext, ok := out.Extensions[threadSubsExt]
	if !ok {
		return nil, out.Pos
	}
	var a threadSubsAnswer
	if err := json.Unmarshal(ext, &a); err != nil {
		t.Fatalf("%s: %v: %s", threadSubsExt, err, ext)
	}
	return &a, out.Pos
}

// TestSlidingSyncThreadSubscriptions drives MSC4308's extension as the
// rust-sdk asks for it: a new connection gets the user's subscriptions,
// a later answer the changes since (an unsubscription included), a
// long-poll is woken by a subscription, a small limit pages through the
// changes, and a server without thread subscriptions sends no section.
func TestSlidingSyncThreadSubscriptions(t *testing.T) {
	testserver.EachEngine(t, withThreadSubscriptions, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		var roots []string
		for range 3 {
			roots = append(roots, sySend(t, alice, room, "root"))
		}
		sub := func(root string, auto bool) {
			t.Helper()
			body := map[string]any{}
			if auto {
				reply := threadReply(t, alice, room, id.EventID(root), "reply")
				body["automatic"] = string(reply)
			}
			st, b := s.Do(t, http.MethodPut, subscriptionPath(room, root), alice.AccessToken, body)
			testserver.WantStatus(t, "subscribe", st, b, http.StatusOK)
		}
		sub(roots[0], false)
		sub(roots[1], true)
		req := func(limit int) map[string]any {
			ext := map[string]any{"enabled": true}
			if limit > 0 {
				ext["limit"] = limit
			}
			return map[string]any{"conn_id": "threads", "extensions": map[string]any{threadSubsExt: ext}}
		}
		_, _, raw := ssync(t, s, alice, "", 0, req(0))
		first, pos := threadSubsOf(t, raw)
		if first == nil || len(first.Subscribed[room.String()]) != 2 || first.Subscribed[room.String()][roots[0]].Automatic ||
			!first.Subscribed[room.String()][roots[1]].Automatic || first.Subscribed[room.String()][roots[1]].BumpStamp == 0 {
			t.Fatalf("first answer: %+v", first)
		}

		// Nothing changed: no section.
		_, _, raw = ssync(t, s, alice, pos, 0, req(0))
		if a, p := threadSubsOf(t, raw); a != nil {
			t.Fatalf("no change, yet %+v", a)
		} else {
			pos = p
		}

		// A long-poll is woken by an unsubscription.
		go func() {
			time.Sleep(300 * time.Millisecond)
			st, b := s.Do(t, http.MethodDelete, subscriptionPath(room, roots[0]), alice.AccessToken, nil)
			if st != http.StatusOK {
				t.Errorf("unsubscribe: %d %v", st, b)
			}
		}()
		start := time.Now()
		_, _, raw = ssync(t, s, alice, pos, 20000, req(0))
		if waited := time.Since(start); waited > 10*time.Second {
			t.Fatalf("long-poll not woken by the unsubscription (%v)", waited)
		}
		woke, pos := threadSubsOf(t, raw)
		if woke == nil || len(woke.Subscribed) != 0 || woke.Unsubscribed[room.String()][roots[0]].BumpStamp == 0 {
			t.Fatalf("after unsubscribing: %+v", woke)
		}

		// limit 1: the changes come one an answer, none lost.
		sub(roots[2], false)
		sub(roots[0], false)
		seen := map[string]bool{}
		for range 2 {
			_, _, raw = ssync(t, s, alice, pos, 0, req(1))
			a, p := threadSubsOf(t, raw)
			if a == nil || len(a.Subscribed[room.String()]) != 1 {
				t.Fatalf("limit 1: %+v", a)
			}
			for root := range a.Subscribed[room.String()] {
				seen[root] = true
			}
			pos = p
		}
		if !seen[roots[0]] || !seen[roots[2]] {
			t.Fatalf("paged changes: %v", seen)
		}
		st, _, raw := ssync(t, s, alice, pos, 0, `{"extensions":{"`+threadSubsExt+`":{"enabled":true,"limit":-1}}}`)
		testserver.WantError(t, "negative limit", st, raw.JSON, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	// Off (the default, as Synapse ships MSC4306): no section.
	s := testserver.Start(t, "", nil)
	alice := s.Register("alice", "pw")
	_, _, raw := ssync(t, s, alice, "", 0, map[string]any{"extensions": map[string]any{threadSubsExt: map[string]any{"enabled": true}}})
	if a, _ := threadSubsOf(t, raw); a != nil {
		t.Fatalf("thread subscriptions off, yet %+v", a)
	}
}
