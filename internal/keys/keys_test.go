package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:hs1.test"
)

type fixture struct {
	db      *store.DB
	svc     *Service
	mu      sync.Mutex
	changed []string // DeviceUpdate changes: user/device/deleted
	woken   []string
}

func newFixture(t testing.TB, dbURL string) *fixture {
	t.Helper()
	env := roomtest.New(t, dbURL, "")
	b := env.Bus
	f := &fixture{db: env.DB, svc: New(Options{ServerName: roomtest.ServerName, Store: env.DB, Stream: env.Stream, Bus: b})}
	b.Subscribe("federation", func(_ context.Context, c bus.Change) {
		d := c.(DeviceUpdate)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.changed = append(f.changed, fmt.Sprintf("%s/%s/%v", d.UserID, d.DeviceID, d.Deleted))
	}, TopicDevice)
	b.Subscribe("sync", func(_ context.Context, c bus.Change) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.woken = append(f.woken, c.(Changed).UserID)
	}, TopicChanged)
	return f
}

func (f *fixture) device(t *testing.T, localpart, deviceID string) {
	t.Helper()
	// The user may exist already (a second device): the conflict is fine.
	_ = f.db.CreateUser(context.Background(), store.User{Localpart: localpart, UserID: "@" + localpart + ":hs1.test"})
	if err := f.db.CreateSession(context.Background(), store.NewSession{Localpart: localpart, DeviceID: deviceID,
		AccessHash: "hash-" + localpart + deviceID, NowTS: 1}); err != nil {
		t.Fatal(err)
	}
}

// signedDeviceKeys is a device_keys object for user and device, signed by
// signer (the device's own key unless another is given).
func signedDeviceKeys(t *testing.T, user, device string, pub ed25519.PublicKey, signer ed25519.PrivateKey, extra map[string]any) json.RawMessage {
	t.Helper()
	obj := map[string]any{
		"user_id": user, "device_id": device, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]string{
			"ed25519:" + device:    base64.RawStdEncoding.EncodeToString(pub),
			"curve25519:" + device: "curvekey",
		},
	}
	for k, v := range extra {
		obj[k] = v
	}
	raw, _ := json.Marshal(obj)
	signed, err := gomatrixserverlib.SignJSON(user, gomatrixserverlib.KeyID("ed25519:"+device), signer, raw)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func TestKeyObjects(t *testing.T) {
	for _, tc := range []struct {
		name, raw, code string
	}{
		{"signed_curve25519:AAAA", `{"key":"k","signatures":{}}`, ""},
		{"curve25519:AAAB", `"plainkey"`, ""},
		{"no_colon", `"k"`, "M_BAD_JSON"},
		{":AAAA", `"k"`, "M_BAD_JSON"},
		{"curve25519:", `"k"`, "M_BAD_JSON"},
		{"curve25519:N", `5`, "M_BAD_JSON"},
		{"curve25519:L", `["k"]`, "M_BAD_JSON"},
		{"curve25519:U", `null`, "M_BAD_JSON"},
		{"signed_curve25519:NOKEY", `{"signatures":{}}`, "M_BAD_JSON"},
		{"signed_curve25519:NUMKEY", `{"key":5}`, "M_BAD_JSON"},
	} {
		keys, err := keyObjects(map[string]json.RawMessage{tc.name: json.RawMessage(tc.raw)})
		if tc.code == "" {
			if err != nil || len(keys) != 1 {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			alg, id, _ := strings.Cut(tc.name, ":")
			if keys[0].Algorithm != alg || keys[0].KeyID != id || keys[0].JSON != tc.raw {
				t.Errorf("%s: %+v", tc.name, keys[0])
			}
			continue
		}
		if e, ok := mxerr.As(err); !ok || e.Code != tc.code {
			t.Errorf("%s = %s: %v, want %s", tc.name, tc.raw, err, tc.code)
		}
	}
}

func TestBetterBackupSession(t *testing.T) {
	s := func(verified bool, first, fwd int64) store.BackupSession {
		return store.BackupSession{IsVerified: verified, FirstMessageIndex: first, ForwardedCount: fwd}
	}
	for _, tc := range []struct {
		what     string
		old, new store.BackupSession
		want     bool
	}{
		{"verified beats unverified", s(false, 0, 0), s(true, 9, 9), true},
		{"unverified never beats verified", s(true, 9, 9), s(false, 0, 0), false},
		{"lower first_message_index", s(false, 5, 0), s(false, 4, 9), true},
		{"higher first_message_index", s(false, 4, 0), s(false, 5, 0), false},
		{"lower forwarded_count", s(false, 4, 2), s(false, 4, 1), true},
		{"equal: the stored one stays", s(true, 4, 1), s(true, 4, 1), false},
	} {
		if got := better(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: %v", tc.what, got)
		}
	}
}

func TestCanonicalEqual(t *testing.T) {
	if !canonicalEqual(`{"b":1,"a":"x"}`, `{ "a": "x", "b": 1 }`) {
		t.Error("the same object in another key order differs")
	}
	if canonicalEqual(`{"a":1}`, `{"a":2}`) || canonicalEqual(`{"a":1}`, `not json`) || canonicalEqual(`x`, `x`) {
		t.Error("different or invalid JSON compared equal")
	}
}

// TestUploadDeviceKeys: device keys must be for the uploading user and
// device and have the spec's fields; their self-signature is not
// checked (Synapse stores keys whose signature it cannot verify); new
// identity keys for a device replace the old ones, as Synapse stores
// them; re-uploading the same keys is no change, new signatures are;
// each change is announced once.
func TestUploadDeviceKeys(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		f.device(t, "alice", "DEV1")
		pub, priv, _ := ed25519.GenerateKey(nil)
		_, other, _ := ed25519.GenerateKey(nil)
		upload := func(dk json.RawMessage) error {
			_, err := f.svc.Upload(ctx, alice, "DEV1", UploadRequest{DeviceKeys: dk})
			return err
		}
		wantCode(t, "another user's keys", upload(signedDeviceKeys(t, bob, "DEV1", pub, priv, nil)), "M_INVALID_PARAM")
		wantCode(t, "another device's keys", upload(signedDeviceKeys(t, alice, "DEV2", pub, priv, nil)), "M_INVALID_PARAM")
		wantCode(t, "malformed", upload(json.RawMessage(`{"user_id":5}`)), "M_BAD_JSON")
		wantCode(t, "keys not strings", upload(json.RawMessage(`{"user_id":"`+alice+`","device_id":"DEV1","algorithms":[],"keys":{"a":1},"signatures":{}}`)), "M_BAD_JSON")
		wantCode(t, "no signatures", upload(json.RawMessage(`{"user_id":"`+alice+`","device_id":"DEV1","algorithms":[],"keys":{}}`)), "M_BAD_JSON")
		if len(f.changed) != 0 {
			t.Fatalf("refused uploads announced changes: %v", f.changed)
		}

		if err := upload(signedDeviceKeys(t, alice, "DEV1", pub, other, nil)); err != nil {
			t.Fatalf("keys whose self-signature does not verify: %v", err)
		}
		good := signedDeviceKeys(t, alice, "DEV1", pub, priv, nil)
		if err := upload(good); err != nil {
			t.Fatal(err)
		}
		if err := upload(good); err != nil {
			t.Fatalf("the same keys again: %v", err)
		}
		if len(f.changed) != 2 || f.changed[1] != alice+"/DEV1/false" {
			t.Fatalf("changes announced: %v, want two", f.changed)
		}
		// A cross-signing signature added by the user: a change.
		resigned := signedDeviceKeys(t, alice, "DEV1", pub, priv, nil)
		var withSig map[string]any
		_ = json.Unmarshal(resigned, &withSig)
		withSig["signatures"].(map[string]any)[alice].(map[string]any)["ed25519:master"] = "sig"
		raw, _ := json.Marshal(withSig)
		if err := upload(raw); err != nil {
			t.Fatalf("new signatures: %v", err)
		}
		if len(f.changed) != 3 {
			t.Fatalf("changes announced: %v, want three", f.changed)
		}
		// New identity keys for the same device replace the old ones and
		// are announced like any change.
		pub2, priv2, _ := ed25519.GenerateKey(nil)
		if err := upload(signedDeviceKeys(t, alice, "DEV1", pub2, priv2, nil)); err != nil {
			t.Fatalf("new identity keys: %v", err)
		}
		rows, err := f.db.DeviceKeys(ctx, alice, "alice", []string{"DEV1"})
		if err != nil || len(rows) != 1 || !strings.Contains(rows[0].KeyJSON, base64.RawStdEncoding.EncodeToString(pub2)) {
			t.Fatalf("stored keys after new identity keys: %+v %v", rows, err)
		}
		if len(f.changed) != 4 {
			t.Fatalf("changes announced: %v, want four", f.changed)
		}
	})
}

// TestOneTimeAndFallbackKeys: counts always name signed_curve25519, and
// the counts an upload answers include it even when counts were read
// (and cached) before, as every /sync does; a
// one-time key ID re-uploaded with other content is refused, with the
// same content accepted; a claim hands each one-time key out once, then
// the fallback key (repeatedly, marked used); devices without keys and
// remote users without federation are a failure or nothing, not an
// error.
func TestOneTimeAndFallbackKeys(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		f.device(t, "alice", "DEV1")
		counts, err := f.svc.OneTimeKeyCounts(ctx, alice, "DEV1")
		if err != nil || len(counts) != 1 || counts["signed_curve25519"] != 0 {
			t.Fatalf("counts of a device without keys: %v %v", counts, err)
		}
		otks := map[string]json.RawMessage{
			"signed_curve25519:A": json.RawMessage(`{"key":"a"}`),
			"signed_curve25519:B": json.RawMessage(`{"key":"b"}`),
		}
		counts, err = f.svc.Upload(ctx, alice, "DEV1", UploadRequest{OneTimeKeys: otks,
			FallbackKeys: map[string]json.RawMessage{"signed_curve25519:F": json.RawMessage(`{"key":"f","fallback":true}`)}})
		if err != nil || counts["signed_curve25519"] != 2 {
			t.Fatalf("upload: %v %v", counts, err)
		}
		if _, err := f.svc.Upload(ctx, alice, "DEV1", UploadRequest{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:A": json.RawMessage(`{ "key": "a" }`)}}); err != nil {
			t.Fatalf("the same key again: %v", err)
		}
		_, err = f.svc.Upload(ctx, alice, "DEV1", UploadRequest{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:A": json.RawMessage(`{"key":"other"}`)}})
		wantCode(t, "a key ID with other content", err, "M_INVALID_PARAM")
		if types, err := f.svc.UnusedFallbackKeyTypes(ctx, alice, "DEV1"); err != nil || len(types) != 1 || types[0] != "signed_curve25519" {
			t.Fatalf("unused fallback types: %v %v", types, err)
		}

		claim := func() string {
			t.Helper()
			resp, err := f.svc.Claim(ctx, map[string]map[string]string{alice: {"DEV1": "signed_curve25519"}}, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for name := range resp.OneTimeKeys[alice]["DEV1"] {
				return name
			}
			return ""
		}
		got := []string{claim(), claim()}
		sort.Strings(got)
		if got[0] != "signed_curve25519:A" || got[1] != "signed_curve25519:B" {
			t.Fatalf("claims handed out %v", got)
		}
		if counts, _ := f.svc.OneTimeKeyCounts(ctx, alice, "DEV1"); counts["signed_curve25519"] != 0 {
			t.Fatalf("count after claiming all: %v", counts)
		}
		for i := range 2 {
			if name := claim(); name != "signed_curve25519:F" {
				t.Fatalf("claim %d with no one-time keys left: %q, want the fallback key", i, name)
			}
		}
		if types, _ := f.svc.UnusedFallbackKeyTypes(ctx, alice, "DEV1"); len(types) != 0 {
			t.Fatalf("fallback key still unused after a claim: %v", types)
		}

		resp, err := f.svc.Claim(ctx, map[string]map[string]string{
			alice: {"NODEV": "signed_curve25519"}, "@carol:hs2.test": {"D": "signed_curve25519"},
		}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.OneTimeKeys) != 0 || resp.Failures["hs2.test"] == nil {
			t.Fatalf("claim of an unknown device and a remote user without federation: %+v", resp)
		}
		// Federation answers local users only.
		local, err := f.svc.ClaimLocal(ctx, map[string]map[string]string{"@carol:hs2.test": {"D": "signed_curve25519"}})
		if err != nil || len(local.OneTimeKeys) != 0 || len(local.Failures) != 0 {
			t.Fatalf("ClaimLocal of a remote user: %+v %v", local, err)
		}
	})
}

// TestClaimInUploadOrder: one-time keys are handed out in the order
// they were uploaded (spec v1.13), whatever their key IDs, across
// uploads made between claims; the fallback key only when none is left.
func TestClaimInUploadOrder(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		f.device(t, "alice", "DEV1")
		upload := func(ids ...string) {
			t.Helper()
			otks := map[string]json.RawMessage{}
			for _, id := range ids {
				otks["signed_curve25519:"+id] = json.RawMessage(`{"key":"` + id + `"}`)
			}
			req := UploadRequest{OneTimeKeys: otks}
			if len(ids) == 0 {
				req.FallbackKeys = map[string]json.RawMessage{"signed_curve25519:FB": json.RawMessage(`{"key":"fb","fallback":true}`)}
			}
			if _, err := f.svc.Upload(ctx, alice, "DEV1", req); err != nil {
				t.Fatal(err)
			}
		}
		claim := func() string {
			t.Helper()
			resp, err := f.svc.Claim(ctx, map[string]map[string]string{alice: {"DEV1": "signed_curve25519"}}, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for name := range resp.OneTimeKeys[alice]["DEV1"] {
				return strings.TrimPrefix(name, "signed_curve25519:")
			}
			return ""
		}
		upload() // the fallback key first: it must still come last
		upload("Z9", "Z8")
		upload("A1")
		first := []string{claim()}
		upload("M5")
		first = append(first, claim())
		sort.Strings(first)
		if first[0] != "Z8" || first[1] != "Z9" {
			t.Fatalf("the first upload's keys came out as %v", first)
		}
		for _, want := range []string{"A1", "M5", "FB", "FB"} {
			if got := claim(); got != want {
				t.Fatalf("claimed %q, want %q", got, want)
			}
		}
	})
}

// TestToDevice: messages reach the named devices ("*": all of the
// user's), not devices the user lacks; a repeated transaction ID is
// delivered once; acked messages are gone.
func TestToDevice(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		f.device(t, "bob", "B1")
		f.device(t, "bob", "B2")
		send := func(txn string, devices map[string]json.RawMessage) error {
			return f.svc.SendToDevice(ctx, alice, "A1", "m.test", txn, map[string]map[string]json.RawMessage{bob: devices})
		}
		if err := send("t1", map[string]json.RawMessage{"B1": json.RawMessage(`{"n":1}`), "GONE": json.RawMessage(`{"n":0}`)}); err != nil {
			t.Fatal(err)
		}
		if err := send("t1", map[string]json.RawMessage{"B1": json.RawMessage(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
		if err := send("t2", map[string]json.RawMessage{"*": json.RawMessage(`{"n":2}`)}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "content not an object", send("t3", map[string]json.RawMessage{"B1": json.RawMessage(`[1]`)}), "M_BAD_JSON")

		b1, next, err := f.svc.ToDeviceMessages(ctx, bob, "B1", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(b1) != 2 || string(b1[0].Content) != `{"n":1}` || string(b1[1].Content) != `{"n":2}` || b1[0].Sender != alice || b1[0].Type != "m.test" {
			t.Fatalf("B1 got %+v", b1)
		}
		b2, _, err := f.svc.ToDeviceMessages(ctx, bob, "B2", 0, 100)
		if err != nil || len(b2) != 1 || string(b2[0].Content) != `{"n":2}` {
			t.Fatalf("B2 got %+v %v", b2, err)
		}
		if err := f.svc.Ack(ctx, bob, "B1", next); err != nil {
			t.Fatal(err)
		}
		if b1, _, err = f.svc.ToDeviceMessages(ctx, bob, "B1", 0, 100); err != nil || len(b1) != 0 {
			t.Fatalf("after ack: %+v %v", b1, err)
		}
		// A user ID without a server is refused.
		if err := f.svc.SendToDevice(ctx, alice, "A1", "m.test", "t4", map[string]map[string]json.RawMessage{"noserver": {"D": json.RawMessage(`{}`)}}); err == nil {
			t.Fatal("a user ID without a server was accepted")
		}

		// Over federation: only from the sender's own server.
		edu := func(sender, msgID string) json.RawMessage {
			raw, _ := json.Marshal(map[string]any{"sender": sender, "type": "m.test", "message_id": msgID,
				"messages": map[string]any{bob: map[string]any{"B2": map[string]any{"n": 3}}}})
			return raw
		}
		wantCode(t, "a sender of another server", f.svc.HandleDirectToDevice(ctx, "evil.test", edu("@carol:hs2.test", "m1")), "M_FORBIDDEN")
		wantCode(t, "no message_id", f.svc.HandleDirectToDevice(ctx, "hs2.test", edu("@carol:hs2.test", "")), "M_MISSING_PARAM")
		for range 2 {
			if err := f.svc.HandleDirectToDevice(ctx, "hs2.test", edu("@carol:hs2.test", "m1")); err != nil {
				t.Fatal(err)
			}
		}
		if b2, _, _ = f.svc.ToDeviceMessages(ctx, bob, "B2", 0, 100); len(b2) != 2 || b2[1].Sender != "@carol:hs2.test" {
			t.Fatalf("B2 after a repeated EDU: %+v", b2)
		}
	})
}

// TestBackup: versions, the current version's write check
// (M_WRONG_ROOM_KEYS_VERSION naming the current one), the spec's rule
// for which session copy is kept, and the count and etag moving.
func TestBackup(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
		_, err := f.svc.Backup(ctx, alice, "")
		wantCode(t, "no backup yet", err, "M_NOT_FOUND")
		_, err = f.svc.CreateBackup(ctx, alice, "", json.RawMessage(`{}`))
		wantCode(t, "no algorithm", err, "M_MISSING_PARAM")
		_, err = f.svc.CreateBackup(ctx, alice, alg, json.RawMessage(`[]`))
		wantCode(t, "auth_data not an object", err, "M_MISSING_PARAM")
		v1, err := f.svc.CreateBackup(ctx, alice, alg, json.RawMessage(`{"public_key":"k1"}`))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := f.svc.CreateBackup(ctx, alice, alg, json.RawMessage(`{"public_key":"k2"}`))
		if err != nil || v2 == v1 {
			t.Fatalf("second version %q (first %q): %v", v2, v1, err)
		}
		cur, err := f.svc.Backup(ctx, alice, "")
		if err != nil || cur.Version != v2 || cur.Count != 0 {
			t.Fatalf("current version: %+v %v", cur, err)
		}
		for _, bad := range []string{"x", "0", "-1", "99"} {
			_, err := f.svc.Backup(ctx, alice, bad)
			wantCode(t, "version "+bad, err, "M_NOT_FOUND")
		}
		if _, err := f.svc.Backup(ctx, bob, v2); err == nil {
			t.Fatal("bob read alice's backup version")
		}

		session := func(verified bool, first int64, data string) map[string]map[string]SessionData {
			return map[string]map[string]SessionData{"!r:hs1.test": {"s1": {FirstMessageIndex: first, IsVerified: verified, SessionData: json.RawMessage(data)}}}
		}
		_, err = f.svc.PutBackupKeys(ctx, alice, v1, session(false, 0, `{"v":1}`))
		wantCode(t, "writing an old version", err, "M_WRONG_ROOM_KEYS_VERSION")
		if e, _ := mxerr.As(err); e.Extra["current_version"] != v2 || e.Status != 403 {
			t.Fatalf("wrong version error: %+v", e)
		}
		_, err = f.svc.PutBackupKeys(ctx, alice, v2, session(false, 0, `"str"`))
		wantCode(t, "session_data not an object", err, "M_BAD_JSON")

		st1, err := f.svc.PutBackupKeys(ctx, alice, v2, session(false, 5, `{"v":"first"}`))
		if err != nil || st1.Count != 1 {
			t.Fatalf("first put: %+v %v", st1, err)
		}
		// A worse copy (higher first_message_index) is not kept.
		if _, err := f.svc.PutBackupKeys(ctx, alice, v2, session(false, 9, `{"v":"worse"}`)); err != nil {
			t.Fatal(err)
		}
		// A verified copy beats it.
		st2, err := f.svc.PutBackupKeys(ctx, alice, v2, session(true, 9, `{"v":"verified"}`))
		if err != nil || st2.Count != 1 || st2.Etag == st1.Etag {
			t.Fatalf("better put: %+v (before %+v) %v", st2, st1, err)
		}
		keys, err := f.svc.BackupKeys(ctx, alice, v2, "", "")
		if err != nil || string(keys["!r:hs1.test"].Sessions["s1"].SessionData) != `{"v":"verified"}` {
			t.Fatalf("stored session: %+v %v", keys, err)
		}
		if err := f.svc.UpdateBackup(ctx, alice, v2, "other.alg", "", json.RawMessage(`{}`)); err == nil {
			t.Fatal("the algorithm of a version changed")
		}
		wantCode(t, "mismatched body version", f.svc.UpdateBackup(ctx, alice, v2, alg, v1, json.RawMessage(`{}`)), "M_INVALID_PARAM")
		if err := f.svc.UpdateBackup(ctx, alice, v2, alg, v2, json.RawMessage(`{"public_key":"k3"}`)); err != nil {
			t.Fatal(err)
		}
		st3, err := f.svc.DeleteBackupKeys(ctx, alice, v2, "!r:hs1.test", "")
		if err != nil || st3.Count != 0 {
			t.Fatalf("after deleting the room's keys: %+v %v", st3, err)
		}
		if err := f.svc.DeleteBackup(ctx, alice, v2); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "deleting it again", f.svc.DeleteBackup(ctx, alice, v2), "M_NOT_FOUND")
	})
}

// csKey is a cross-signing key of user for usage, signed by signer when
// given.
func csKey(t *testing.T, user, usage string, pub ed25519.PublicKey, signerPub ed25519.PublicKey, signer ed25519.PrivateKey) json.RawMessage {
	t.Helper()
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	raw, _ := json.Marshal(map[string]any{"user_id": user, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + b64: b64}})
	if signer == nil {
		return raw
	}
	signed, err := gomatrixserverlib.SignJSON(user, gomatrixserverlib.KeyID("ed25519:"+base64.RawStdEncoding.EncodeToString(signerPub)), signer, raw)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestUploadCrossSigning: each key must name the user, its usage and one
// ed25519 key; the self- and user-signing keys must be signed by the
// master key; the first master key and a repeat of the stored keys need
// no further auth, replacing keys does (spec, MSC3967).
func TestUploadCrossSigning(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		mPub, mPriv, _ := ed25519.GenerateKey(nil)
		sPub, _, _ := ed25519.GenerateKey(nil)
		oPub, oPriv, _ := ed25519.GenerateKey(nil)
		authorized := 0
		noAuth := func() error { authorized++; return mxerr.Unauthorized("auth needed") }
		upload := func(u CrossSigningUpload) error { return f.svc.UploadCrossSigning(ctx, alice, u, noAuth) }

		wantCode(t, "no master key", upload(CrossSigningUpload{SelfSigningKey: csKey(t, alice, selfSigning, sPub, mPub, mPriv)}), "M_MISSING_PARAM")
		wantCode(t, "another user's master key", upload(CrossSigningUpload{MasterKey: csKey(t, bob, master, mPub, nil, nil)}), "M_INVALID_PARAM")
		wantCode(t, "wrong usage", upload(CrossSigningUpload{MasterKey: csKey(t, alice, selfSigning, mPub, nil, nil)}), "M_INVALID_PARAM")
		mismatched, _ := json.Marshal(map[string]any{"user_id": alice, "usage": []string{master},
			"keys": map[string]string{"ed25519:other": base64.RawStdEncoding.EncodeToString(mPub)}})
		wantCode(t, "key ID not the key", upload(CrossSigningUpload{MasterKey: mismatched}), "M_INVALID_PARAM")
		wantCode(t, "self-signing key signed by another key", upload(CrossSigningUpload{
			MasterKey: csKey(t, alice, master, mPub, nil, nil), SelfSigningKey: csKey(t, alice, selfSigning, sPub, oPub, oPriv)}), "M_INVALID_SIGNATURE")
		if stored, _ := f.db.CrossSigningKeys(ctx, alice); len(stored) != 0 {
			t.Fatalf("refused uploads stored keys: %v", stored)
		}

		first := CrossSigningUpload{MasterKey: csKey(t, alice, master, mPub, nil, nil), SelfSigningKey: csKey(t, alice, selfSigning, sPub, mPub, mPriv)}
		if err := upload(first); err != nil {
			t.Fatalf("first upload: %v", err)
		}
		if err := upload(first); err != nil || authorized != 0 {
			t.Fatalf("repeating the stored keys: %v, auth asked %d times", err, authorized)
		}
		// A self-signing key alone is checked against the stored master key.
		wantCode(t, "self-signing key not signed by the stored master", upload(CrossSigningUpload{
			SelfSigningKey: csKey(t, alice, selfSigning, oPub, oPub, oPriv)}), "M_INVALID_SIGNATURE")
		// Replacing the master key needs auth; refused, nothing changes.
		wantCode(t, "replacing without auth", upload(CrossSigningUpload{MasterKey: csKey(t, alice, master, oPub, nil, nil)}), "M_UNAUTHORIZED")
		if authorized != 1 {
			t.Fatalf("auth asked %d times, want 1", authorized)
		}
		stored, _ := f.db.CrossSigningKeys(ctx, alice)
		if !strings.Contains(stored[master], base64.RawStdEncoding.EncodeToString(mPub)) {
			t.Fatalf("the master key changed without auth: %s", stored[master])
		}
		if err := f.svc.UploadCrossSigning(ctx, alice, CrossSigningUpload{MasterKey: csKey(t, alice, master, oPub, nil, nil)}, func() error { return nil }); err != nil {
			t.Fatalf("replacing with auth: %v", err)
		}
		if stored, _ = f.db.CrossSigningKeys(ctx, alice); !strings.Contains(stored[master], base64.RawStdEncoding.EncodeToString(oPub)) {
			t.Fatalf("the master key was not replaced: %s", stored[master])
		}
	})
}
