//go:build goolm

package appservice_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/cryptoclient"
)

// rawEvent is an ephemeral or to-device event as a transaction carries it.
type rawEvent struct {
	Type       string         `json:"type"`
	RoomID     string         `json:"room_id"`
	Sender     string         `json:"sender"`
	ToUserID   string         `json:"to_user_id"`
	ToDeviceID string         `json:"to_device_id"`
	Content    map[string]any `json:"content"`
}

type rawLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// rawTxn is a transaction read field by field, stable and unstable
// names apart, to check both.
type rawTxn struct {
	ID                string
	Events            []json.RawMessage                    `json:"events"`
	Ephemeral         []rawEvent                           `json:"ephemeral"`
	UEphemeral        []rawEvent                           `json:"de.sorunome.msc2409.ephemeral"`
	ToDevice          []rawEvent                           `json:"to_device"`
	UToDevice         []rawEvent                           `json:"de.sorunome.msc2409.to_device"`
	DeviceLists       *rawLists                            `json:"device_lists"`
	UDeviceLists      *rawLists                            `json:"org.matrix.msc3202.device_lists"`
	OTK               map[string]map[string]map[string]int `json:"device_one_time_keys_count"`
	UOTK              map[string]map[string]map[string]int `json:"org.matrix.msc3202.device_one_time_keys_count"`
	UOTKMSCSpelling   map[string]map[string]map[string]int `json:"org.matrix.msc3202.device_one_time_key_counts"`
	Fallback          map[string]map[string][]string       `json:"device_unused_fallback_key_types"`
	UFallback         map[string]map[string][]string       `json:"org.matrix.msc3202.device_unused_fallback_key_types"`
	eventsFieldExists bool
}

// rawService is an application service that records the transactions
// it is sent as JSON, to check each field as the MSCs name it.
type rawService struct {
	t     testing.TB
	reg   *mas.Registration
	as    *mas.AppService // for its intents (client side) only
	path  string
	txns  chan rawTxn
	fail  atomic.Bool // answer 500 to transactions
	tried atomic.Int64
	// failEphemeral answers 500 to transactions without room events;
	// those with room events go to events.
	failEphemeral atomic.Bool
	events        chan rawTxn
	srv           *http.Server
}

func newRawService(t testing.TB, server string, ephemeral, msc3202 bool) *rawService {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	esc := strings.ReplaceAll(server, ".", `\.`)
	reg := &mas.Registration{
		ID: "rawbridge", URL: "http://" + l.Addr().String(),
		AppToken: "as_token_raw", ServerToken: "hs_token_raw", SenderLocalpart: "rawbot",
		Namespaces:      mas.Namespaces{UserIDs: mas.NamespaceList{{Regex: "@puppet_.*:" + esc, Exclusive: true}}},
		EphemeralEvents: ephemeral, MSC3202: msc3202, MSC4190: true,
	}
	r := &rawService{t: t, reg: reg, path: filepath.Join(t.TempDir(), "raw.yaml"), txns: make(chan rawTxn, 256), events: make(chan rawTxn, 256)}
	if err := reg.Save(r.path); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnId}", func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+reg.ServerToken {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		r.tried.Add(1)
		if r.fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		body, _ := io.ReadAll(req.Body)
		var txn rawTxn
		if err := json.Unmarshal(body, &txn); err != nil {
			t.Errorf("transaction is not JSON: %v: %s", err, body)
		}
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(body, &fields)
		_, txn.eventsFieldExists = fields["events"]
		txn.ID = req.PathValue("txnId")
		if len(txn.Events) > 0 {
			r.events <- txn
		} else if r.failEphemeral.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		} else {
			r.txns <- txn
		}
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	r.srv = &http.Server{Handler: mux}
	go r.srv.Serve(l)
	t.Cleanup(func() { r.srv.Close() })
	r.as = mas.Create()
	r.as.Registration = reg
	r.as.HomeserverDomain = server
	return r
}

// next returns the next ephemeral transaction match accepts, checking
// every one on the way: the unstable names repeat the stable ones and
// events is present.
func (r *rawService) next(what string, match func(*rawTxn) bool) *rawTxn {
	r.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case txn := <-r.txns:
			if !txn.eventsFieldExists {
				r.t.Fatalf("transaction %s lacks the required events field", txn.ID)
			}
			if !reflect.DeepEqual(txn.Ephemeral, txn.UEphemeral) || !reflect.DeepEqual(txn.ToDevice, txn.UToDevice) ||
				!reflect.DeepEqual(txn.DeviceLists, txn.UDeviceLists) || !reflect.DeepEqual(txn.OTK, txn.UOTK) ||
				!reflect.DeepEqual(txn.OTK, txn.UOTKMSCSpelling) || !reflect.DeepEqual(txn.Fallback, txn.UFallback) {
				r.t.Fatalf("transaction %s: unstable fields differ from the stable ones: %+v", txn.ID, txn)
			}
			if match(&txn) {
				return &txn
			}
		case <-deadline:
			r.t.Fatalf("the service never received %s", what)
		}
	}
}

// startWithRawService starts a server on dbURL with a raw service
// registered, and registers the service's puppet_1 through it.
func startWithRawService(t *testing.T, dbURL string, ephemeral, msc3202 bool) (*rawService, *testserver.Server, id.UserID, *mas.IntentAPI) {
	t.Helper()
	r := newRawService(t, "hs1.test", ephemeral, msc3202)
	s := testserver.Start(t, dbURL, withFiles(r.path))
	if err := r.as.SetHomeserverURL(s.URL); err != nil {
		t.Fatal(err)
	}
	p1 := id.UserID(s.UserID("puppet_1"))
	puppet := r.as.Intent(p1)
	if err := puppet.EnsureRegistered(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, s, p1, puppet
}

// attempt runs send and waits until the server has tried a transaction
// since (answered or not), to know that what send changed went out.
func (r *rawService) attempt(what string, send func()) {
	r.t.Helper()
	before := r.tried.Load()
	send()
	for deadline := time.Now().Add(30 * time.Second); r.tried.Load() == before; {
		if time.Now().After(deadline) {
			r.t.Fatalf("no attempt to send %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (txn *rawTxn) find(typ string, ok func(rawEvent) bool) *rawEvent {
	for _, e := range txn.Ephemeral {
		if e.Type == typ && ok(e) {
			return &e
		}
	}
	return nil
}

// asDo is a request with the service's as_token, acting as user (and
// device, when set).
func (r *rawService) asDo(s *testserver.Server, method, path, user, device string, body any) (int, map[string]any) {
	r.t.Helper()
	q := url.Values{}
	if user != "" {
		q.Set("user_id", user)
	}
	if device != "" {
		q.Set("device_id", device)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if len(q) > 0 {
		path += sep + q.Encode()
	}
	return s.Do(r.t, method, path, r.reg.AppToken, body)
}

// TestAppServiceDeviceManagement covers device_id masquerading (spec
// v1.17, MSC4326, and MSC3202's unstable parameter) and device creation
// and deletion without UIA (MSC4190).
func TestAppServiceDeviceManagement(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		r := newRawService(t, "hs1.test", true, true)
		s := testserver.Start(t, dbURL, withFiles(r.path))
		if err := r.as.SetHomeserverURL(s.URL); err != nil {
			t.Fatal(err)
		}
		p1 := s.UserID("puppet_dev")
		if err := r.as.Intent(id.UserID(p1)).EnsureRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		// PUT creates (201), then updates (200).
		status, body := r.asDo(s, http.MethodPut, "/_matrix/client/v3/devices/PUPDEV", p1, "", map[string]any{"display_name": "Puppet phone"})
		testserver.WantStatus(t, "creating a device", status, body, http.StatusCreated)
		status, body = r.asDo(s, http.MethodPut, "/_matrix/client/v3/devices/PUPDEV", p1, "", map[string]any{"display_name": "Renamed"})
		testserver.WantStatus(t, "updating a device", status, body, http.StatusOK)
		status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/devices/PUPDEV", p1, "", nil)
		if status != http.StatusOK || body["display_name"] != "Renamed" {
			t.Fatalf("the device: %d %v", status, body)
		}
		// A normal user's PUT on a device they lack stays 404.
		alice := s.Register("alice", "password")
		status, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/devices/NEWDEV", alice.AccessToken, map[string]any{"display_name": "x"})
		testserver.WantError(t, "a user creating a device by PUT", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// Masquerading as the device, under both parameter names.
		for _, param := range []string{"device_id", "org.matrix.msc3202.device_id"} {
			status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami?user_id="+url.QueryEscape(p1)+"&"+param+"=PUPDEV", r.reg.AppToken, nil)
			if status != http.StatusOK || body["user_id"] != p1 || body["device_id"] != "PUPDEV" {
				t.Fatalf("whoami with %s: %d %v", param, status, body)
			}
		}
		// Unknown device, another user's device, the sender's without one.
		status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/account/whoami", p1, "NOPE", nil)
		testserver.WantError(t, "an unknown device", status, body, http.StatusBadRequest, "M_UNKNOWN_DEVICE")
		status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/account/whoami", "", "PUPDEV", nil)
		testserver.WantError(t, "the puppet's device as the sender", status, body, http.StatusBadRequest, "M_UNKNOWN_DEVICE")
		status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/account/whoami", p1, string(alice.DeviceID), nil)
		testserver.WantError(t, "alice's device as the puppet", status, body, http.StatusBadRequest, "M_UNKNOWN_DEVICE")
		for _, hostile := range []string{"A\x00B", "\xff\xfe", strings.Repeat("D", 1<<20)} {
			// The router refuses NUL and invalid UTF-8 in any parameter
			// (M_INVALID_PARAM); no device has the others.
			status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/account/whoami", p1, hostile, nil)
			if code := body["errcode"]; status != http.StatusBadRequest || (code != "M_UNKNOWN_DEVICE" && code != "M_INVALID_PARAM") {
				t.Fatalf("a hostile device_id (%d bytes): %d %v", len(hostile), status, body)
			}
		}

		// A device needs keys uploaded with it: without device_id there is none.
		status, body = r.asDo(s, http.MethodPost, "/_matrix/client/v3/keys/upload", p1, "PUPDEV", map[string]any{})
		if status != http.StatusOK || body["one_time_key_counts"] == nil {
			t.Fatalf("keys/upload as the device: %d %v", status, body)
		}

		// DELETE without UIA; /delete_devices too.
		for _, d := range []string{"TMP1", "TMP2"} {
			status, body = r.asDo(s, http.MethodPut, "/_matrix/client/v3/devices/"+d, p1, "", map[string]any{})
			testserver.WantStatus(t, "creating "+d, status, body, http.StatusCreated)
		}
		status, body = r.asDo(s, http.MethodDelete, "/_matrix/client/v3/devices/TMP1", p1, "", map[string]any{})
		testserver.WantStatus(t, "deleting a device without UIA", status, body, http.StatusOK)
		status, body = r.asDo(s, http.MethodPost, "/_matrix/client/v3/delete_devices", p1, "", map[string]any{"devices": []string{"TMP2"}})
		testserver.WantStatus(t, "delete_devices without UIA", status, body, http.StatusOK)
		for _, d := range []string{"TMP1", "TMP2"} {
			status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/devices/"+d, p1, "", nil)
			testserver.WantError(t, d+" after deletion", status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		// A user still needs UIA.
		status, body = s.Do(t, http.MethodDelete, "/_matrix/client/v3/devices/"+string(alice.DeviceID), alice.AccessToken, map[string]any{})
		testserver.WantStatus(t, "a user deleting without UIA", status, body, http.StatusUnauthorized)
		// Hostile device IDs.
		status, body = r.asDo(s, http.MethodPut, "/_matrix/client/v3/devices/"+url.PathEscape(strings.Repeat("D", 300)), p1, "", map[string]any{})
		testserver.WantError(t, "an over-long device ID", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = r.asDo(s, http.MethodPut, "/_matrix/client/v3/devices/A%00B", p1, "", map[string]any{})
		if status < 400 || status >= 500 {
			t.Fatalf("a device ID with NUL: %d %v", status, body)
		}
	})
}

func withFiles(paths ...string) func(*config.Config) {
	return func(c *config.Config) { c.AppServices.Files = paths }
}

// TestAppServiceEphemeral covers MSC2409 (spec v1.13) and MSC3202 field
// by field: typing, receipts and presence of rooms and users the service
// cares about and no others; to-device messages for its devices, kept
// until the service takes them, across a restart; device list changes
// of users sharing a room with its users; one-time key counts and
// unused fallback key types of its devices after an upload and a claim.
func TestAppServiceEphemeral(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		r, s, p1, puppet := startWithRawService(t, dbURL, true, true)
		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if err := puppet.EnsureJoined(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}

		// Typing: the room without puppets first, which must not come.
		if _, err := alice.UserTyping(ctx, other.RoomID, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.UserTyping(ctx, room.RoomID, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		txn := r.next("alice typing", func(txn *rawTxn) bool {
			if txn.find("m.typing", func(e rawEvent) bool { return e.RoomID == other.RoomID.String() }) != nil {
				t.Fatalf("typing in a room without the service's users was sent: %+v", txn.Ephemeral)
			}
			return txn.find("m.typing", func(e rawEvent) bool { return e.RoomID == room.RoomID.String() }) != nil
		})
		typingEv := txn.find("m.typing", func(e rawEvent) bool { return e.RoomID == room.RoomID.String() })
		if ids, _ := typingEv.Content["user_ids"].([]any); len(ids) != 1 || ids[0] != alice.UserID.String() {
			t.Fatalf("m.typing content = %v", typingEv.Content)
		}

		// Receipts: public ones only.
		sent, err := alice.SendText(ctx, room.RoomID, "read me")
		if err != nil {
			t.Fatal(err)
		}
		if err := puppet.SetReadMarkers(ctx, room.RoomID, &mautrix.ReqSetReadMarkers{Read: sent.EventID, ReadPrivate: sent.EventID}); err != nil {
			t.Fatal(err)
		}
		if err := alice.MarkRead(ctx, room.RoomID, sent.EventID); err != nil {
			t.Fatal(err)
		}
		var seenReceipts []rawEvent
		r.next("alice's receipt", func(txn *rawTxn) bool {
			for _, e := range txn.Ephemeral {
				if e.Type == "m.receipt" {
					if e.RoomID != room.RoomID.String() {
						t.Fatalf("m.receipt with room_id %q", e.RoomID)
					}
					seenReceipts = append(seenReceipts, e)
				}
			}
			return txn.find("m.receipt", func(e rawEvent) bool {
				byType, _ := e.Content[sent.EventID.String()].(map[string]any)
				read, _ := byType["m.read"].(map[string]any)
				return read[alice.UserID.String()] != nil
			}) != nil
		})
		for _, e := range seenReceipts {
			if byType, _ := e.Content[sent.EventID.String()].(map[string]any); byType["m.read.private"] != nil {
				t.Fatalf("a private receipt was sent: %v", e.Content)
			}
		}

		// Presence of a user sharing a room with a puppet.
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "bridging"}); err != nil {
			t.Fatal(err)
		}
		r.next("alice's presence", func(txn *rawTxn) bool {
			return txn.find("m.presence", func(e rawEvent) bool {
				return e.Sender == alice.UserID.String() && e.Content["status_msg"] == "bridging"
			}) != nil
		})

		// The puppet's device, its keys (an Olm machine's upload), a
		// fallback key: counts for that device.
		pcli := r.as.Client(p1)
		if err := pcli.CreateDeviceMSC4190(ctx, "PUPDEV", "puppet"); err != nil {
			t.Fatal(err)
		}
		log := zerolog.Nop()
		pstate := mautrix.NewMemoryStateStore()
		mach := crypto.NewOlmMachine(pcli, &log, crypto.NewMemoryStore(nil), pstate.(crypto.StateStore))
		if err := mach.Load(ctx); err != nil {
			t.Fatal(err)
		}
		// A fallback key alone changes no device list and wakes nothing:
		// the device keys' upload after it does.
		status, body := r.asDo(s, http.MethodPost, "/_matrix/client/v3/keys/upload", p1.String(), "PUPDEV", map[string]any{
			"fallback_keys": map[string]any{"signed_curve25519:FB1": map[string]any{"key": "ZmFsbGJhY2s", "fallback": true}}})
		testserver.WantStatus(t, "uploading a fallback key", status, body, http.StatusOK)
		if err := mach.ShareKeys(ctx, -1); err != nil {
			t.Fatal(err)
		}
		status, body = r.asDo(s, http.MethodPost, "/_matrix/client/v3/keys/upload", p1.String(), "PUPDEV", map[string]any{})
		testserver.WantStatus(t, "reading the key counts", status, body, http.StatusOK)
		uploaded := int(body["one_time_key_counts"].(map[string]any)["signed_curve25519"].(float64))
		if uploaded == 0 {
			t.Fatal("the machine uploaded no one-time keys")
		}
		r.next("the puppet device's key counts", func(txn *rawTxn) bool {
			c := txn.OTK[p1.String()]["PUPDEV"]
			return c != nil && c["signed_curve25519"] == uploaded && slices.Equal(txn.Fallback[p1.String()]["PUPDEV"], []string{"signed_curve25519"})
		})

		// Device lists: carol, sharing no room with a puppet, changes
		// first; then alice.
		carol := cryptoclient.New(t, s.Register("carol", "password"))
		_ = carol
		aliceC := cryptoclient.New(t, alice)
		r.next("alice's device list change", func(txn *rawTxn) bool {
			if txn.DeviceLists == nil {
				return false
			}
			if slices.Contains(txn.DeviceLists.Changed, carol.UserID.String()) {
				t.Fatalf("carol's device list was sent: %v", txn.DeviceLists)
			}
			if txn.DeviceLists.Left == nil {
				t.Fatalf("device_lists.left is null")
			}
			return slices.Contains(txn.DeviceLists.Changed, alice.UserID.String())
		})

		// Alice claims one of the device's keys: the count drops.
		claim, err := aliceC.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{p1: {"PUPDEV": id.KeyAlgorithmSignedCurve25519}}})
		if err != nil || len(claim.OneTimeKeys[p1]["PUPDEV"]) != 1 {
			t.Fatalf("claiming: %v %v", claim, err)
		}
		r.next("the count after a claim", func(txn *rawTxn) bool {
			c := txn.OTK[p1.String()]["PUPDEV"]
			return c != nil && c["signed_curve25519"] == uploaded-1
		})

		// To-device: delivered with its recipient, then gone from the inbox.
		sendToDevice := func(n int) {
			_, err := alice.SendToDevice(ctx, event.NewEventType("org.example.test"), &mautrix.ReqSendToDevice{
				Messages: map[id.UserID]map[id.DeviceID]*event.Content{p1: {"PUPDEV": {Raw: map[string]any{"n": n}}}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		toDevice := func(n int) func(*rawTxn) bool {
			return func(txn *rawTxn) bool {
				for _, e := range txn.ToDevice {
					if e.Type == "org.example.test" && e.Content["n"] == float64(n) {
						if e.Sender != alice.UserID.String() || e.ToUserID != p1.String() || e.ToDeviceID != "PUPDEV" {
							t.Fatalf("to-device event = %+v", e)
						}
						return true
					}
				}
				return false
			}
		}
		sendToDevice(1)
		r.next("to-device message 1", toDevice(1))

		// The service is down when message 2 comes, and Myelin restarts:
		// the message waits in the inbox and arrives once it is back.
		r.fail.Store(true)
		r.attempt("message 2", func() { sendToDevice(2) })
		s.Restart()
		s.Repoint(alice)
		r.fail.Store(false)
		got := r.next("to-device message 2 after a restart", toDevice(2))
		for _, e := range got.ToDevice {
			if e.Content["n"] == float64(1) {
				t.Fatal("message 1, taken before, was sent again")
			}
		}
		// More than a transaction's batch (100) waits while the service
		// is down: all arrive, in order, over several transactions.
		r.fail.Store(true)
		const many = 150
		for n := 1000; n < 1000+many; n++ {
			sendToDevice(n)
		}
		r.fail.Store(false)
		resumed := time.Now()
		next, txns := 1000, 0
		for next < 1000+many {
			r.next("to-device message "+strconv.Itoa(next), func(txn *rawTxn) bool {
				for _, e := range txn.ToDevice {
					n := int(e.Content["n"].(float64))
					if n < 1000 {
						continue
					}
					if n != next {
						t.Fatalf("to-device message %d arrived when %d was due", n, next)
					}
					next++
				}
				txns++
				return true
			})
		}
		// The inbox scan every 30 s would find the rest too: they must
		// come at once.
		if took := time.Since(resumed); took > 10*time.Second {
			t.Fatalf("the messages after the first batch took %v", took)
		}
		if txns < 2 {
			t.Fatalf("%d messages came in %d transaction(s), want batches of at most 100", many, txns)
		}

		// The service has them: the device's inbox empties (the messages
		// are deleted just after the service's answer).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/sync?timeout=0", p1.String(), "PUPDEV", nil)
			if status != http.StatusOK {
				t.Fatalf("sync as the puppet's device: %d %v", status, body)
			}
			td, _ := body["to_device"].(map[string]any)
			evs, _ := td["events"].([]any)
			if len(evs) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the inbox still holds %d messages", len(evs))
			}
		}
	})
}

// TestAppServiceEphemeralWithoutMSC3202: a service with receive_ephemeral
// alone (mautrix bridges whose bot device runs /sync) gets typing but
// none of the encryption parts, and its device's to-device messages stay
// in the inbox for that device's /sync.
func TestAppServiceEphemeralWithoutMSC3202(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		r, s, p1, puppet := startWithRawService(t, dbURL, true, false)
		status, body := r.asDo(s, http.MethodPut, "/_matrix/client/v3/devices/PUPDEV", p1.String(), "", map[string]any{})
		testserver.WantStatus(t, "creating a device", status, body, http.StatusCreated)
		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if err := puppet.EnsureJoined(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendToDevice(ctx, event.NewEventType("org.example.test"), &mautrix.ReqSendToDevice{
			Messages: map[id.UserID]map[id.DeviceID]*event.Content{p1: {"PUPDEV": {Raw: map[string]any{"n": 1}}}}}); err != nil {
			t.Fatal(err)
		}
		cryptoclient.New(t, alice) // a device list change of a room member
		if _, err := alice.UserTyping(ctx, room.RoomID, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		r.next("alice typing", func(txn *rawTxn) bool {
			if len(txn.ToDevice) > 0 || txn.DeviceLists != nil || txn.OTK != nil || txn.Fallback != nil {
				t.Fatalf("a service without org.matrix.msc3202 was sent encryption data: %+v", txn)
			}
			return txn.find("m.typing", func(e rawEvent) bool { return e.RoomID == room.RoomID.String() }) != nil
		})
		status, body = r.asDo(s, http.MethodGet, "/_matrix/client/v3/sync?timeout=0", p1.String(), "PUPDEV", nil)
		if status != http.StatusOK {
			t.Fatalf("sync as the puppet's device: %d %v", status, body)
		}
		td, _ := body["to_device"].(map[string]any)
		evs, _ := td["events"].([]any)
		if len(evs) != 1 {
			t.Fatalf("the device's /sync has to-device events %v, want the one message", evs)
		}

		// Ephemeral transactions failing hold up no room event.
		r.failEphemeral.Store(true)
		r.attempt("the typing change", func() {
			if _, err := alice.UserTyping(ctx, room.RoomID, false, 0); err != nil {
				t.Fatal(err)
			}
		})
		sent, err := alice.SendText(ctx, room.RoomID, "not held up")
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
	events:
		for {
			select {
			case txn := <-r.events:
				for _, raw := range txn.Events {
					if strings.Contains(string(raw), sent.EventID.String()) {
						break events
					}
				}
			case <-deadline:
				t.Fatal("a room event waited for failing ephemeral transactions")
			}
		}
		r.failEphemeral.Store(false)
		r.next("the typing change after the failures", func(txn *rawTxn) bool {
			return txn.find("m.typing", func(e rawEvent) bool {
				ids, _ := e.Content["user_ids"].([]any)
				return e.RoomID == room.RoomID.String() && len(ids) == 0
			}) != nil
		})
	})
}
