package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

func subscriptionPath(roomID id.RoomID, root string) string {
	return "/_matrix/client/unstable/io.element.msc4306/rooms/" + url.PathEscape(string(roomID)) + "/thread/" + url.PathEscape(root) + "/subscription"
}

func threadReply(t *testing.T, c *mautrix.Client, roomID id.RoomID, root id.EventID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": string(root)}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

// TestThreadSubscriptions follows Complement's MSC4306 tests: subscribe,
// read, unsubscribe (idempotent); automatic subscriptions must name an
// event of the thread, do not replace a manual one, and are refused
// (409) when their cause precedes the latest unsubscription; unknown
// threads and other users' rooms are 404; every change is listed by
// ChangesSince in order.
// withThreadSubscriptions turns MSC4306 on (off by default, as in
// Synapse).
func withThreadSubscriptions(c *config.Config) { c.Rooms.ThreadSubscriptions = true }

func TestThreadSubscriptions(t *testing.T) {
	testserver.EachEngine(t, withThreadSubscriptions, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, eve := s.Register("alice", "pw-alice-1"), s.Register("eve", "pw-eve-1")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		rootResp, err := alice.SendText(ctx, room.RoomID, "thread root")
		if err != nil {
			t.Fatal(err)
		}
		root := rootResp.EventID
		path := subscriptionPath(room.RoomID, string(root))
		do := func(method string, c *mautrix.Client, body any) (int, map[string]any) {
			t.Helper()
			return s.Do(t, method, path, c.AccessToken, body)
		}
		status, body := do(http.MethodGet, alice, nil)
		testserver.WantError(t, "not subscribed", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = do(http.MethodPut, alice, map[string]any{})
		testserver.WantStatus(t, "subscribe", status, body, http.StatusOK)
		if status, body = do(http.MethodGet, alice, nil); status != http.StatusOK || body["automatic"] != false {
			t.Fatalf("after subscribing: %d %v", status, body)
		}
		status, body = do(http.MethodDelete, alice, nil)
		testserver.WantStatus(t, "unsubscribe", status, body, http.StatusOK)
		status, body = do(http.MethodDelete, alice, nil)
		testserver.WantStatus(t, "unsubscribe again", status, body, http.StatusOK)
		status, body = do(http.MethodGet, alice, nil)
		testserver.WantError(t, "after unsubscribing", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// The thread root is no cause; nor is a reply in another thread.
		status, body = do(http.MethodPut, alice, map[string]any{"automatic": string(root)})
		testserver.WantError(t, "root as cause", status, body, http.StatusBadRequest, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD")
		other, _ := alice.SendText(ctx, room.RoomID, "other root")
		elsewhere := threadReply(t, alice, room.RoomID, other.EventID, "elsewhere")
		status, body = do(http.MethodPut, alice, map[string]any{"automatic": string(elsewhere)})
		testserver.WantError(t, "reply in another thread", status, body, http.StatusBadRequest, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD")

		// Complement's ordering conflict: reply 1, automatic subscription,
		// reply 2, unsubscription, reply 3: only reply 3 may cause an
		// automatic subscription now.
		reply1 := threadReply(t, alice, room.RoomID, root, "reply 1")
		status, body = do(http.MethodPut, alice, map[string]any{"automatic": string(reply1)})
		testserver.WantStatus(t, "automatic subscription", status, body, http.StatusOK)
		if _, body = do(http.MethodGet, alice, nil); body["automatic"] != true {
			t.Fatalf("automatic subscription reads %v", body)
		}
		reply2 := threadReply(t, alice, room.RoomID, root, "reply 2")
		status, body = do(http.MethodDelete, alice, nil)
		testserver.WantStatus(t, "unsubscribe", status, body, http.StatusOK)
		reply3 := threadReply(t, alice, room.RoomID, root, "reply 3")
		for _, cause := range []id.EventID{reply1, reply2} {
			status, body = do(http.MethodPut, alice, map[string]any{"automatic": string(cause)})
			testserver.WantError(t, "automatic before the unsubscription", status, body, http.StatusConflict, "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION")
			status, body = do(http.MethodGet, alice, nil)
			testserver.WantError(t, "after a refused automatic subscription", status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		status, body = do(http.MethodPut, alice, map[string]any{"automatic": string(reply3)})
		testserver.WantStatus(t, "automatic after the unsubscription", status, body, http.StatusOK)
		// A manual subscription replaces an automatic one; an automatic
		// one leaves a manual one be.
		status, body = do(http.MethodPut, alice, map[string]any{})
		testserver.WantStatus(t, "manual over automatic", status, body, http.StatusOK)
		status, body = do(http.MethodPut, alice, map[string]any{"automatic": string(reply3)})
		testserver.WantStatus(t, "automatic over manual", status, body, http.StatusOK)
		if _, body = do(http.MethodGet, alice, nil); body["automatic"] != false {
			t.Fatalf("manual subscription after an automatic request reads %v", body)
		}

		// Unknown threads, rooms the user is not in, bad bodies.
		for _, p := range []string{subscriptionPath(room.RoomID, "$nope:hs1.test"), subscriptionPath("!nope:hs1.test", string(root))} {
			status, body = s.Do(t, http.MethodPut, p, alice.AccessToken, map[string]any{})
			testserver.WantError(t, "unknown "+p, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		status, body = do(http.MethodGet, eve, nil)
		testserver.WantError(t, "eve, not in the room", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = do(http.MethodPut, alice, map[string]any{"automatic": 7})
		testserver.WantError(t, "automatic not a string", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = s.Do(t, http.MethodPut, subscriptionPath(room.RoomID, "not-an-event"), alice.AccessToken, map[string]any{})
		testserver.WantError(t, "thread root not an event ID", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		// The changes, for sliding sync: one per thread, its latest
		// state, at the position of its latest change; a no-op request
		// (the automatic one over the manual subscription) moves nothing.
		subs := s.ThreadSubscriptions()
		changes, next, err := subs.ChangesSince(ctx, string(alice.UserID), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || !changes[0].Subscribed || changes[0].Automatic || changes[0].ThreadRootID != string(root) ||
			changes[0].RoomID != string(room.RoomID) || next != changes[0].Pos {
			t.Fatalf("changes = %+v, next %d", changes, next)
		}
		if more, again, _ := subs.ChangesSince(ctx, string(alice.UserID), next, 100); len(more) != 0 || again != next {
			t.Fatalf("changes since the last: %+v %d", more, again)
		}
		status, body = do(http.MethodDelete, alice, nil)
		testserver.WantStatus(t, "unsubscribe", status, body, http.StatusOK)
		other2, _ := alice.SendText(ctx, room.RoomID, "third root")
		status, body = s.Do(t, http.MethodPut, subscriptionPath(room.RoomID, string(other2.EventID)), alice.AccessToken, map[string]any{})
		testserver.WantStatus(t, "subscribe to another thread", status, body, http.StatusOK)
		more, last, err := subs.ChangesSince(ctx, string(alice.UserID), next, 1)
		if err != nil || len(more) != 1 || more[0].Subscribed || more[0].ThreadRootID != string(root) || more[0].Pos <= next || last != more[0].Pos {
			t.Fatalf("first change after %d: %+v %d %v", next, more, last, err)
		}
		more, last, _ = subs.ChangesSince(ctx, string(alice.UserID), last, 1)
		if len(more) != 1 || !more[0].Subscribed || more[0].ThreadRootID != string(other2.EventID) {
			t.Fatalf("second change: %+v %d", more, last)
		}
		if others, _, _ := subs.ChangesSince(ctx, string(eve.UserID), 0, 100); len(others) != 0 {
			t.Fatalf("eve's changes: %+v", others)
		}
	})
}

// TestThreadSubscriptionNotifications: a reply in a thread notifies a
// member who follows the thread and not one who does not (MSC4306's
// postcontent rules), while a mention still notifies everyone named.
func TestThreadSubscriptionNotifications(t *testing.T) {
	testserver.EachEngine(t, withThreadSubscriptions, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoomByID(ctx, room.RoomID); err != nil {
				t.Fatal(err)
			}
		}
		root, err := alice.SendText(ctx, room.RoomID, "thread root")
		if err != nil {
			t.Fatal(err)
		}
		status, body := s.Do(t, http.MethodPut, subscriptionPath(room.RoomID, string(root.EventID)), bob.AccessToken, map[string]any{})
		testserver.WantStatus(t, "bob subscribes", status, body, http.StatusOK)
		reply := threadReply(t, alice, room.RoomID, root.EventID, "a reply")
		// Then an ordinary message after the reply, which notifies both:
		// once carol has it, push has evaluated the reply too (events
		// are evaluated in order).
		last, err := alice.SendText(ctx, room.RoomID, "main timeline")
		if err != nil {
			t.Fatal(err)
		}
		ids := func(c *mautrix.Client) map[string]bool {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/notifications?limit=50", c.AccessToken, nil)
				out := map[string]bool{}
				for _, n := range body["notifications"].([]any) {
					out[n.(map[string]any)["event"].(map[string]any)["event_id"].(string)] = true
				}
				if out[string(last.EventID)] || time.Now().After(deadline) {
					return out
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if got := ids(bob); !got[string(reply)] || !got[string(last.EventID)] {
			t.Fatalf("bob, subscribed, was notified of %v; want the reply %s", got, reply)
		}
		if got := ids(carol); got[string(reply)] || !got[string(last.EventID)] {
			t.Fatalf("carol, not subscribed, was notified of %v; not want the reply %s", got, reply)
		}
		// The rules are listed with the defaults.
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/pushrules/global/postcontent/.m.rule.subscribed_thread", carol.AccessToken, nil)
		testserver.WantStatus(t, "subscribed_thread rule", status, body, http.StatusOK)
		if conds, _ := body["conditions"].([]any); len(conds) != 1 || conds[0].(map[string]any)["subscribed"] != true {
			t.Fatalf("subscribed_thread rule = %v", body)
		}
	})
}

// TestRTCTransports: the configured MatrixRTC foci are published in the
// client well-known document (under the MSC's unstable key, which
// Element Call reads, and rtc_foci) and by /rtc/transports, which needs
// an access token; without any, none are listed. /versions advertises
// MSC4140, MSC4143 (only with foci) and MSC4306.
func TestRTCTransports(t *testing.T) {
	foci := []config.RTCFocus{{Type: "livekit", LiveKitServiceURL: "https://livekit-jwt.example.org"}}
	s := testserver.Start(t, "", func(c *config.Config) { c.WellKnown.RTCFoci = foci; c.Rooms.ThreadSubscriptions = true })
	alice := s.Register("alice", "pw-alice-1")
	status, wk := s.Do(t, http.MethodGet, "/.well-known/matrix/client", "", nil)
	testserver.WantStatus(t, "well-known", status, wk, http.StatusOK)
	for _, key := range []string{"org.matrix.msc4143.rtc_foci", "rtc_foci"} {
		list, _ := wk[key].([]any)
		if len(list) != 1 || list[0].(map[string]any)["type"] != "livekit" || list[0].(map[string]any)["livekit_service_url"] != "https://livekit-jwt.example.org" {
			t.Fatalf("well-known %s = %v", key, wk[key])
		}
	}
	for _, p := range []string{"/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", "/_matrix/client/v1/rtc/transports"} {
		status, body := s.Do(t, http.MethodGet, p, "", nil)
		testserver.WantError(t, "transports without a token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		status, body = s.Do(t, http.MethodGet, p, alice.AccessToken, nil)
		testserver.WantStatus(t, "transports", status, body, http.StatusOK)
		if list, _ := body["rtc_transports"].([]any); len(list) != 1 || list[0].(map[string]any)["livekit_service_url"] != "https://livekit-jwt.example.org" {
			t.Fatalf("%s = %v", p, body)
		}
	}
	_, v := s.Do(t, http.MethodGet, "/_matrix/client/versions", "", nil)
	if f, _ := v["unstable_features"].(map[string]any); f["org.matrix.msc4140"] != true || f["org.matrix.msc4143"] != true || f["org.matrix.msc4306"] != true {
		t.Fatalf("unstable_features = %v", f)
	}

	bare := testserver.Start(t, "", nil)
	_, v = bare.Do(t, http.MethodGet, "/_matrix/client/versions", "", nil)
	if f, _ := v["unstable_features"].(map[string]any); f["org.matrix.msc4306"] != false || f["org.matrix.msc4143"] != false {
		t.Fatalf("unstable_features with thread subscriptions and foci off = %v", f)
	}
	bob := bare.Register("bob", "pw-bob-1")
	_, wk = bare.Do(t, http.MethodGet, "/.well-known/matrix/client", "", nil)
	if _, has := wk["org.matrix.msc4143.rtc_foci"]; has {
		t.Fatalf("well-known without foci: %v", wk)
	}
	_, body := bare.Do(t, http.MethodGet, "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", bob.AccessToken, nil)
	if list, ok := body["rtc_transports"].([]any); !ok || len(list) != 0 {
		t.Fatalf("transports without foci = %v", body)
	}
}

// TestThreadRepliesNotifyWithoutSubscriptions: with thread subscriptions
// off (the default), the subscription endpoints are not served and a
// reply in a thread notifies as any message does, so that clients which
// never subscribe (Element Web) keep their thread notifications.
func TestThreadRepliesNotifyWithoutSubscriptions(t *testing.T) {
	s := testserver.Start(t, "", nil)
	ctx := context.Background()
	alice, carol := s.Register("alice", "pw-alice-1"), s.Register("carol", "pw-carol-1")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	root, err := alice.SendText(ctx, room.RoomID, "thread root")
	if err != nil {
		t.Fatal(err)
	}
	status, body := s.Do(t, http.MethodPut, subscriptionPath(room.RoomID, string(root.EventID)), carol.AccessToken, map[string]any{})
	testserver.WantError(t, "subscription while off", status, body, http.StatusNotFound, "M_UNRECOGNIZED")
	reply := threadReply(t, alice, room.RoomID, root.EventID, "a reply")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/notifications?limit=50", carol.AccessToken, nil)
		for _, n := range body["notifications"].([]any) {
			if n.(map[string]any)["event"].(map[string]any)["event_id"] == string(reply) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol was not notified of the thread reply %s: %v", reply, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
