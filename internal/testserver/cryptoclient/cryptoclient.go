//go:build goolm

// Package cryptoclient gives end-to-end tests Matrix clients that encrypt
// and decrypt as real ones do: mautrix-go's OlmMachine on the pure-Go olm
// implementation (build tag goolm, so no cgo or libolm) with in-memory
// stores. The machine uploads keys, follows device lists and one-time key
// counts from /sync, shares Megolm room keys over to-device Olm messages
// and decrypts room events, all through the server under test.
package cryptoclient

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// patience bounds every wait for something to arrive over /sync.
const patience = 30 * time.Second

// Client is a logged-in mautrix client with an Olm machine. Sync is
// driven by the test (Sync, SyncUntil), not by a background loop, so a
// test knows what the client has seen.
type Client struct {
	*mautrix.Client
	Machine *crypto.OlmMachine
	// Since is the next_batch of the last sync ("" before the first).
	Since string

	t         testing.TB
	mu        sync.Mutex
	encrypted map[id.EventID]*event.Event
	changed   map[id.UserID]bool
}

// New sets up end-to-end encryption for a logged-in client: an Olm
// account whose device keys and one-time keys are uploaded at once.
func New(t testing.TB, c *mautrix.Client) *Client {
	t.Helper()
	ctx := context.Background()
	state := mautrix.NewMemoryStateStore()
	c.StateStore = state
	log := zerolog.Nop()
	if os.Getenv("MYELIN_TEST_LOG") != "" {
		log = zerolog.New(zerolog.NewTestWriter(t)).With().Str("user", c.UserID.String()).Logger()
	}
	c.Log = log
	mach := crypto.NewOlmMachine(c, &log, crypto.NewMemoryStore(nil), state.(crypto.StateStore))
	if err := mach.Load(ctx); err != nil {
		t.Fatalf("cryptoclient: load %s: %v", c.UserID, err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("cryptoclient: upload keys of %s: %v", c.UserID, err)
	}
	cc := &Client{Client: c, Machine: mach, t: t, encrypted: map[id.EventID]*event.Event{}, changed: map[id.UserID]bool{}}
	syncer := mautrix.NewDefaultSyncer()
	// Wiring as mautrix's cryptohelper does: to-device messages, device
	// lists and key counts first, then room state into the state store
	// (the machine reads members and encryption settings from it).
	syncer.OnSync(func(_ context.Context, resp *mautrix.RespSync, _ string) bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		for _, u := range resp.DeviceLists.Changed {
			cc.changed[u] = true
		}
		return true
	})
	syncer.OnSync(mach.ProcessSyncResponse)
	syncer.OnEvent(c.StateStoreSyncHandler)
	syncer.OnEventType(event.StateMember, mach.HandleMemberEvent)
	syncer.OnEventType(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		cc.encrypted[evt.ID] = evt
	})
	c.Syncer = syncer
	return cc
}

// Sync runs one /sync from Since, waiting up to timeout for news, and
// hands the response to the machine and the state store.
func (c *Client) Sync(timeout time.Duration) (*mautrix.RespSync, error) {
	ctx := context.Background()
	resp, err := c.FullSyncRequest(ctx, mautrix.ReqSync{Since: c.Since, Timeout: int(timeout.Milliseconds())})
	if err != nil {
		return nil, err
	}
	if err := c.Syncer.ProcessResponse(ctx, resp, c.Since); err != nil {
		return nil, err
	}
	c.Since = resp.NextBatch
	return resp, nil
}

// SyncUntil syncs until done holds, failing the test after a deadline.
func (c *Client) SyncUntil(what string, done func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(patience)
	for !done() {
		if time.Now().After(deadline) {
			c.t.Fatalf("cryptoclient: %s: %s did not happen in time", c.UserID, what)
		}
		if _, err := c.Sync(time.Second); err != nil {
			c.t.Fatalf("cryptoclient: %s: sync: %v", c.UserID, err)
		}
	}
}

// SawDeviceListChange reports whether a sync since the last ForgetDeviceListChanges
// listed user in device_lists.changed.
func (c *Client) SawDeviceListChange(user id.UserID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed[user]
}

// ForgetDeviceListChanges clears what SawDeviceListChange remembers.
func (c *Client) ForgetDeviceListChanges() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.changed)
}

// Devices is how many devices of user the machine knows.
func (c *Client) Devices(user id.UserID) int {
	c.t.Helper()
	devices, err := c.Machine.CryptoStore.GetDevices(context.Background(), user)
	if err != nil {
		c.t.Fatalf("cryptoclient: devices of %s: %v", user, err)
	}
	return len(devices)
}

// Members is whom the client's state store has joined or invited in a
// room.
func (c *Client) Members(roomID id.RoomID) []id.UserID {
	c.t.Helper()
	users, err := c.StateStore.GetRoomJoinedOrInvitedMembers(context.Background(), roomID)
	if err != nil {
		c.t.Fatalf("cryptoclient: members of %s: %v", roomID, err)
	}
	return users
}

// Joined reports whether the client's state store has user joined to
// the room.
func (c *Client) Joined(roomID id.RoomID, user id.UserID) bool {
	return c.StateStore.IsMembership(context.Background(), roomID, user, event.MembershipJoin)
}

// SendText encrypts a text message with the room's Megolm session
// (sharing it first with every joined or invited member's devices, as
// Olm-encrypted to-device messages) and sends it.
func (c *Client) SendText(roomID id.RoomID, text string) id.EventID {
	c.t.Helper()
	ctx := context.Background()
	if err := c.Machine.ShareGroupSession(ctx, roomID, c.Members(roomID)); err != nil {
		c.t.Fatalf("cryptoclient: share room key of %s: %v", roomID, err)
	}
	content, err := c.Machine.EncryptMegolmEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
	if err != nil {
		c.t.Fatalf("cryptoclient: encrypt in %s: %v", roomID, err)
	}
	resp, err := c.SendMessageEvent(ctx, roomID, event.EventEncrypted, content)
	if err != nil {
		c.t.Fatalf("cryptoclient: send to %s: %v", roomID, err)
	}
	return resp.EventID
}

// Decrypt syncs until the encrypted event arrived and its room key with
// it, and returns the event decrypted.
func (c *Client) Decrypt(eventID id.EventID) *event.Event {
	c.t.Helper()
	var out *event.Event
	var lastErr error
	c.SyncUntil("decrypting "+eventID.String(), func() bool {
		c.mu.Lock()
		evt := c.encrypted[eventID]
		c.mu.Unlock()
		if evt == nil {
			return false
		}
		out, lastErr = c.Machine.DecryptMegolmEvent(context.Background(), evt)
		if lastErr != nil && !errors.Is(lastErr, crypto.ErrNoSessionFound) {
			c.t.Fatalf("cryptoclient: decrypt %s: %v", eventID, lastErr)
		}
		return lastErr == nil
	})
	return out
}

// EncryptedRoom has c create an encrypted private room (m.room.encryption
// in its initial state), invite other and other join (through via, for a
// user of another server); both sync until each sees the other joined,
// which is what their machines need to know whom to share room keys with.
func (c *Client) EncryptedRoom(other *Client, via ...string) id.RoomID {
	c.t.Helper()
	ctx := context.Background()
	created, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		c.t.Fatalf("cryptoclient: create room: %v", err)
	}
	roomID := created.RoomID
	if _, err := c.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: other.UserID}); err != nil {
		c.t.Fatalf("cryptoclient: invite %s: %v", other.UserID, err)
	}
	if _, err := other.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: via}); err != nil {
		c.t.Fatalf("cryptoclient: %s joins: %v", other.UserID, err)
	}
	c.SyncUntil(other.UserID.String()+"'s join", func() bool { return c.Joined(roomID, other.UserID) })
	other.SyncUntil("the room's state", func() bool { return other.Joined(roomID, c.UserID) })
	return roomID
}
