//go:build goolm

package appservice_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/cryptoclient"
)

// cryptoBridge is a bridge whose bot encrypts as mautrix bridges do in
// "appservice mode": an Olm machine on a device made with MSC4190,
// acting with the as_token and device_id, fed to-device messages, device
// list changes and key counts by transactions (MSC2409, MSC3202), never
// by /sync.
type cryptoBridge struct {
	*bridge
	bot  *mautrix.Client
	mach *crypto.OlmMachine
	ep   *mas.EventProcessor
	// machMu serialises the machine's use: the event processor calls its
	// handlers on goroutines of their own, and mautrix's OlmMachine and
	// memory store are not safe against the test's own calls meanwhile
	// (the race detector finds writes under read locks in mautrix). A
	// bridge's crypto helper serialises them likewise.
	machMu sync.Mutex

	mu        sync.Mutex
	encrypted []*event.Event
	otks      []mautrix.OTKCount
	lists     []mautrix.DeviceLists
}

func startCryptoBridge(t *testing.T, b *bridge, hsURL string) *cryptoBridge {
	t.Helper()
	ctx := context.Background()
	b.start(hsURL)
	cb := &cryptoBridge{bridge: b}
	cb.ep = mas.NewEventProcessor(b.as)
	cb.bot = b.as.BotClient()
	if err := cb.bot.CreateDeviceMSC4190(ctx, "", "Test bridge"); err != nil {
		t.Fatalf("creating the bot's device (MSC4190): %v", err)
	}
	log := zerolog.Nop()
	if os.Getenv("MYELIN_TEST_LOG") != "" {
		log = zerolog.New(zerolog.NewTestWriter(t)).With().Str("bridge", "bot").Logger()
	}
	cb.mach = crypto.NewOlmMachine(cb.bot, &log, crypto.NewMemoryStore(nil), b.as.StateStore.(crypto.StateStore))
	if err := cb.mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cb.mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("uploading the bot's keys: %v", err)
	}
	// The listeners of OlmMachine.AddAppserviceListener, as bridgev2's
	// crypto helper in appservice mode registers them, each under machMu.
	toDevice := func(ctx context.Context, evt *event.Event) {
		cb.machMu.Lock()
		defer cb.machMu.Unlock()
		cb.mach.HandleToDeviceEvent(ctx, evt)
	}
	for _, typ := range []event.Type{event.ToDeviceEncrypted, event.ToDeviceRoomKeyRequest, event.ToDeviceRoomKeyWithheld,
		event.ToDeviceBeeperRoomKeyAck, event.ToDeviceOrgMatrixRoomKeyWithheld, event.ToDeviceVerificationRequest,
		event.ToDeviceVerificationStart, event.ToDeviceVerificationAccept, event.ToDeviceVerificationKey,
		event.ToDeviceVerificationMAC, event.ToDeviceVerificationCancel} {
		cb.ep.On(typ, toDevice)
	}
	cb.ep.OnOTK(func(ctx context.Context, c *mautrix.OTKCount) {
		cb.machMu.Lock()
		defer cb.machMu.Unlock()
		cb.mach.HandleOTKCounts(ctx, c)
	})
	// One handler for both uses of a device list: mautrix runs each
	// handler in its own goroutine with the same *DeviceLists, and the
	// machine's FetchKeys filters dl.Changed in place (MemoryStore's
	// FilterTrackedUsers), which raced with the copy recorded below.
	cb.ep.OnDeviceList(func(ctx context.Context, dl *mautrix.DeviceLists, since string) {
		cb.mu.Lock()
		cb.lists = append(cb.lists, mautrix.DeviceLists{Changed: slices.Clone(dl.Changed), Left: slices.Clone(dl.Left)})
		cb.mu.Unlock()
		cb.machMu.Lock()
		defer cb.machMu.Unlock()
		cb.mach.HandleDeviceLists(ctx, dl, since)
	})
	cb.ep.On(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		cb.mu.Lock()
		defer cb.mu.Unlock()
		cb.encrypted = append(cb.encrypted, evt)
	})
	cb.ep.OnOTK(func(_ context.Context, c *mautrix.OTKCount) {
		cb.mu.Lock()
		defer cb.mu.Unlock()
		cb.otks = append(cb.otks, *c)
	})
	evCtx, cancel := context.WithCancel(ctx)
	cb.ep.Start(evCtx)
	t.Cleanup(func() {
		cancel()
		cb.ep.Stop()
	})
	return cb
}

// waitFor polls cond until it holds, failing the test after a bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen in time", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decrypt waits for the encrypted event to reach the bridge and for its
// room key to reach the bot's machine (over to-device in a transaction),
// and returns it decrypted.
func (cb *cryptoBridge) decrypt(t *testing.T, eventID id.EventID) *event.Event {
	t.Helper()
	var out *event.Event
	var lastErr error
	waitFor(t, "the bridge decrypting "+eventID.String(), func() bool {
		cb.mu.Lock()
		i := slices.IndexFunc(cb.encrypted, func(e *event.Event) bool { return e.ID == eventID })
		var evt *event.Event
		if i >= 0 {
			evt = cb.encrypted[i]
		}
		cb.mu.Unlock()
		if evt == nil {
			return false
		}
		cb.machMu.Lock()
		out, lastErr = cb.mach.DecryptMegolmEvent(context.Background(), evt)
		cb.machMu.Unlock()
		if lastErr != nil && !errors.Is(lastErr, crypto.ErrNoSessionFound) {
			t.Fatalf("the bridge decrypting %s: %v", eventID, lastErr)
		}
		return lastErr == nil
	})
	return out
}

// TestAppServiceEncryptedBridge: a mautrix-go bridge with its Olm
// machine in appservice mode and a user's real Olm/Megolm client hold an
// encrypted conversation. The user's room key reaches the bot's device
// as an Olm to-device message in a transaction; the bot's reply is
// shared with the user's device by keys it fetched and claimed as that
// device; the user's claim of the bot's one-time key comes back as the
// bot device's count; the user's new device comes as a device list
// change, after which the bot's messages reach that device too.
func TestAppServiceEncryptedBridge(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		b := newBridge(t, "hs1.test")
		b.as.Registration.EphemeralEvents = true
		b.as.Registration.MSC3202 = true
		b.as.Registration.MSC4190 = true
		if err := b.as.Registration.Save(b.path); err != nil {
			t.Fatal(err)
		}
		s := testserver.Start(t, dbURL, withBridge(b))
		cb := startCryptoBridge(t, b, s.URL)
		botID := b.as.BotMXID()

		alice := cryptoclient.New(t, s.Register("alice", "password"))
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "private_chat",
			Invite: []id.UserID{botID},
			InitialState: []*event.Event{{
				Type:    event.StateEncryption,
				Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		if err := b.as.BotIntent().EnsureJoined(ctx, roomID); err != nil {
			t.Fatalf("the bot joining: %v", err)
		}
		// The bridge learns the room's state as bridges do on joining.
		if _, err := cb.bot.State(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		if enc, err := b.as.StateStore.IsEncrypted(ctx, roomID); err != nil || !enc {
			t.Fatalf("the bridge does not know the room is encrypted (%v)", err)
		}
		alice.SyncUntil("the bot's join", func() bool { return alice.Joined(roomID, botID) })

		// Alice -> bridge.
		sent := alice.SendText(roomID, "hello, bridge")
		got := cb.decrypt(t, sent)
		if body := got.Content.AsMessage().Body; body != "hello, bridge" || got.Sender != alice.UserID {
			t.Fatalf("the bridge decrypted %q from %s", body, got.Sender)
		}

		// Alice claimed one of the bot device's one-time keys to reach
		// it: the bridge is told the lower count for its device.
		waitFor(t, "the bot device's key count", func() bool {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			for _, c := range cb.otks {
				if c.UserID == botID && c.DeviceID == cb.bot.DeviceID && c.SignedCurve25519 > 0 {
					return true
				}
			}
			return false
		})

		// Bridge -> alice: the bot's machine fetches alice's device keys,
		// claims one of her one-time keys and sends her the room key.
		bridgeSend := func(text string) id.EventID {
			t.Helper()
			cb.machMu.Lock()
			err := cb.mach.ShareGroupSession(ctx, roomID, []id.UserID{alice.UserID, botID})
			var content *event.EncryptedEventContent
			if err == nil {
				content, err = cb.mach.EncryptMegolmEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
			}
			cb.machMu.Unlock()
			if err != nil {
				t.Fatalf("the bot sharing its room key or encrypting: %v", err)
			}
			resp, err := cb.bot.SendMessageEvent(ctx, roomID, event.EventEncrypted, content)
			if err != nil {
				t.Fatal(err)
			}
			return resp.EventID
		}
		reply := bridgeSend("hello from the other network")
		if body := alice.Decrypt(reply).Content.AsMessage().Body; body != "hello from the other network" {
			t.Fatalf("alice decrypted %q", body)
		}

		// The bot cross-signs its device as mautrix's self_sign does, and
		// resets its keys: no UIA for a service (MSC4190).
		for i := range 2 {
			cb.machMu.Lock()
			_, err := cb.mach.GenerateAndVerifyWithRecoveryKey(ctx)
			cb.machMu.Unlock()
			if err != nil {
				t.Fatalf("cross-signing the bot's device (%d): %v", i, err)
			}
		}

		// Alice's new device: a device list change in a transaction; the
		// bot's machine refetches her keys and its next room key reaches
		// the laptop.
		laptop := cryptoclient.New(t, s.Login("alice", "password"))
		waitFor(t, "alice's device list change", func() bool {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			for _, dl := range cb.lists {
				if slices.Contains(dl.Changed, alice.UserID) {
					return true
				}
			}
			return false
		})
		waitFor(t, "the bot's machine knowing the laptop", func() bool {
			cb.machMu.Lock()
			defer cb.machMu.Unlock()
			devs, err := cb.mach.CryptoStore.GetDevices(ctx, alice.UserID)
			return err == nil && devs[laptop.DeviceID] != nil
		})
		second := bridgeSend("now to both devices")
		if body := laptop.Decrypt(second).Content.AsMessage().Body; body != "now to both devices" {
			t.Fatalf("the laptop decrypted %q", body)
		}
		if body := alice.Decrypt(second).Content.AsMessage().Body; body != "now to both devices" {
			t.Fatalf("alice's first device decrypted %q", body)
		}
	})
}
