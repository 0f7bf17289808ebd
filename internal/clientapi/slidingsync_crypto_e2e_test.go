//go:build goolm

package clientapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/cryptoclient"
)

// slidingCrypto drives a client's Olm machine from sliding sync alone,
// as matrix-rust-sdk does for Element X: to-device messages from the
// to_device extension (with its own since), device list changes, key
// counts and fallback key types from the e2ee extension, room state
// from required_state, encrypted events from the timeline.
type slidingCrypto struct {
	t         *testing.T
	s         *testserver.Server
	c         *cryptoclient.Client
	pos       string
	since     string
	changed   map[id.UserID]bool
	encrypted map[id.EventID]*event.Event
}

type slidingCryptoResp struct {
	Pos   string `json:"pos"`
	Rooms map[id.RoomID]struct {
		RequiredState []*event.Event `json:"required_state"`
		Timeline      []*event.Event `json:"timeline"`
	} `json:"rooms"`
	Extensions struct {
		ToDevice *struct {
			NextBatch string         `json:"next_batch"`
			Events    []*event.Event `json:"events"`
		} `json:"to_device"`
		E2EE *struct {
			DeviceLists mautrix.DeviceLists `json:"device_lists"`
			OTKCount    mautrix.OTKCount    `json:"device_one_time_keys_count"`
			Fallback    []id.KeyAlgorithm   `json:"device_unused_fallback_key_types"`
		} `json:"e2ee"`
	} `json:"extensions"`
}

// sync makes one request (long-polling when the connection has a pos)
// and hands what it brought to the machine and the state store.
func (sc *slidingCrypto) sync() {
	sc.t.Helper()
	ctx := context.Background()
	td := map[string]any{"enabled": true}
	if sc.since != "" {
		td["since"] = sc.since
	}
	body := map[string]any{"conn_id": "encryption-and-rooms",
		"lists":      map[string]any{"all": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 10, "required_state": [][]string{{"*", "*"}}}},
		"extensions": map[string]any{"to_device": td, "e2ee": map[string]any{"enabled": true}}}
	q := url.Values{"timeout": {"0"}}
	if sc.pos != "" {
		q.Set("pos", sc.pos)
		q.Set("timeout", "5000")
	}
	r := testserver.Send(sc.t, nil, http.MethodPost, sc.s.URL+ssPath+"?"+q.Encode(), sc.c.AccessToken, body)
	if r.Status != http.StatusOK {
		sc.t.Fatalf("sliding sync: %d %s", r.Status, r.Raw)
	}
	var resp slidingCryptoResp
	if err := json.Unmarshal(r.Raw, &resp); err != nil {
		sc.t.Fatalf("sliding sync answer: %v", err)
	}
	for roomID, room := range resp.Rooms {
		for _, evt := range room.RequiredState {
			evt.RoomID, evt.Type.Class = roomID, event.StateEventType
			if err := evt.Content.ParseRaw(evt.Type); err == nil || errors.Is(err, event.ErrUnsupportedContentType) {
				sc.c.StateStoreSyncHandler(ctx, evt)
			}
		}
		for _, evt := range room.Timeline {
			evt.RoomID = roomID
			if evt.Type == event.EventEncrypted {
				evt.Type.Class = event.MessageEventType
				if err := evt.Content.ParseRaw(evt.Type); err != nil {
					sc.t.Fatalf("encrypted event %s: %v", evt.ID, err)
				}
				sc.encrypted[evt.ID] = evt
			}
		}
	}
	sync := &mautrix.RespSync{}
	if td := resp.Extensions.ToDevice; td != nil {
		sync.ToDevice.Events = td.Events
		sc.since = td.NextBatch
	}
	if e := resp.Extensions.E2EE; e != nil {
		sync.DeviceLists, sync.DeviceOTKCount, sync.FallbackKeys = e.DeviceLists, e.OTKCount, e.Fallback
		for _, u := range e.DeviceLists.Changed {
			sc.changed[u] = true
		}
	}
	sc.c.Machine.ProcessSyncResponse(ctx, sync, sc.pos)
	sc.pos = resp.Pos
}

func (sc *slidingCrypto) syncUntil(what string, done func() bool) {
	sc.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !done(); sc.sync() {
		if time.Now().After(deadline) {
			sc.t.Fatalf("sliding sync: never got %s", what)
		}
	}
}

// decrypt syncs until an encrypted event and its room key came.
func (sc *slidingCrypto) decrypt(eventID id.EventID) *event.Event {
	sc.t.Helper()
	var out *event.Event
	sc.syncUntil("the room key of "+eventID.String(), func() bool {
		evt := sc.encrypted[eventID]
		if evt == nil {
			return false
		}
		var err error
		out, err = sc.c.Machine.DecryptMegolmEvent(context.Background(), evt)
		if err != nil && !errors.Is(err, crypto.ErrNoSessionFound) {
			sc.t.Fatalf("decrypting %s: %v", eventID, err)
		}
		return err == nil
	})
	return out
}

// TestSlidingSyncEncryptedConversation: an end-to-end encrypted
// conversation between a /sync client (alice) and a client whose Olm
// machine lives on sliding sync's to_device and e2ee extensions (bob,
// as Element X): alice's room key reaches bob as a to-device message,
// bob's reply reaches alice, and alice's new device arrives as a device
// list change, after which bob's next room key reaches it.
func TestSlidingSyncEncryptedConversation(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := cryptoclient.New(t, s.Register("alice", "pw"))
		bob := &slidingCrypto{t: t, s: s, c: cryptoclient.New(t, s.Register("bob", "pw")),
			changed: map[id.UserID]bool{}, encrypted: map[id.EventID]*event.Event{}}
		bob.sync()

		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.c.UserID},
			InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		if _, err := bob.c.JoinRoom(ctx, roomID.String(), nil); err != nil {
			t.Fatal(err)
		}
		alice.SyncUntil("bob's join", func() bool { return alice.Joined(roomID, bob.c.UserID) })
		bob.syncUntil("the room's state", func() bool {
			enc, _ := bob.c.StateStore.IsEncrypted(ctx, roomID)
			return enc && slices.Contains(bob.c.Members(roomID), alice.UserID)
		})

		sent := alice.SendText(roomID, "hello over sliding sync")
		if got := bob.decrypt(sent); got.Content.AsMessage().Body != "hello over sliding sync" || got.Sender != alice.UserID {
			t.Fatalf("bob decrypted %q from %s", got.Content.AsMessage().Body, got.Sender)
		}

		send := func(text string) id.EventID {
			t.Helper()
			mach := bob.c.Machine
			if err := mach.ShareGroupSession(ctx, roomID, bob.c.Members(roomID)); err != nil {
				t.Fatalf("bob sharing his room key: %v", err)
			}
			content, err := mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := bob.c.SendMessageEvent(ctx, roomID, event.EventEncrypted, content)
			if err != nil {
				t.Fatal(err)
			}
			return resp.EventID
		}
		reply := send("hello from sliding sync")
		if body := alice.Decrypt(reply).Content.AsMessage().Body; body != "hello from sliding sync" {
			t.Fatalf("alice decrypted %q", body)
		}

		// alice's new device: a device list change in bob's e2ee
		// extension; his machine refetches her keys, and his next room
		// key reaches the laptop too.
		bob.changed = map[id.UserID]bool{}
		laptop := cryptoclient.New(t, s.Login("alice", "pw"))
		bob.syncUntil("alice's device list change", func() bool { return bob.changed[alice.UserID] })
		second := send("to both of alice's devices")
		if body := laptop.Decrypt(second).Content.AsMessage().Body; body != "to both of alice's devices" {
			t.Fatalf("the laptop decrypted %q", body)
		}
		if body := alice.Decrypt(second).Content.AsMessage().Body; body != "to both of alice's devices" {
			t.Fatalf("alice's first device decrypted %q", body)
		}
	})
}
