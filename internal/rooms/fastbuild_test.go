package rooms

import (
	"crypto/ed25519"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// TestFastBuildMatchesBuilder: for every room version, event type and
// content a client may send, fastBuild either declines or produces
// exactly the bytes, event ID and signature of gomatrixserverlib's
// EventBuilder.Build; and it does take the common messages in the
// versions rooms are created with.
func TestFastBuildMatchesBuilder(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	const origin, keyID = spec.ServerName("example.org"), gomatrixserverlib.KeyID("ed25519:a_bcd")
	now := time.UnixMilli(1733580000123)
	contents := []string{
		`{"msgtype":"m.text","body":"a message"}`,
		`{}`,
		` { "body" : "spaced",  "msgtype":"m.text" } `,
		`{"z":1,"a":{"y":[1,2,{"b":null,"a":true}],"x":"s"},"m":-5}`,
		`{"body":"h\u00e9llo \u2603 \u2028 <&> \"q\" \\ \u0001 \ud83d\ude00 é"}`,
		`{"body":"ok","n":9007199254740991,"neg":-9007199254740991}`,
		`{"body":"too big","n":9007199254740992}`,
		`{"body":"float","n":1.5}`,
		`{"body":"exp","n":1e3}`,
		`{"\u00e9":"1","e":"2","~":"3","a":"4"}`,
		`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$x","key":"👍"}}`,
		`{"a":1,"a":2}`,
		`{"deep":[[[[[[{"x":[{}]}]]]]]],"t":true,"f":false,"z":null,"s":"\/"}`,
		`{"body":"` + strings.Repeat("x", 65200) + `"}`,
		`{"body":"` + strings.Repeat("y", 70000) + `"}`,
		`not json`,
		`[1,2]`,
	}
	types := []string{"m.room.message", "m.room.encrypted", "m.reaction", "m.sticker", "com.example.custom",
		"m.room.member", "m.room.redaction", "m.room.create", "m.room.power_levels", "m.room.topic",
		"type with \"quote", "tÿpe", ""}
	versions := make([]string, 0)
	for v := range gomatrixserverlib.RoomVersions() {
		versions = append(versions, string(v))
	}
	sort.Strings(versions)
	fast := map[string]int{}
	for _, ver := range versions {
		v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(ver))
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range types {
			for _, content := range contents {
				for _, stateKey := range []*string{nil, ptr(""), ptr("@u:example.org")} {
					for _, redacts := range []string{"", "$redacted"} {
						proto := gomatrixserverlib.ProtoEvent{SenderID: "@alice:example.org", RoomID: "!room:example.org", Type: typ,
							StateKey: stateKey, Redacts: redacts, Depth: 12, PrevEvents: []string{"$prev1", "$prev2"}, Content: spec.RawJSON(content)}
						eb := v.NewEventBuilderFromProtoEvent(&proto)
						eb.AuthEvents = []string{"$create", "$power", "$member"}
						if v.EventFormat() == gomatrixserverlib.EventFormatV1 {
							eb.AuthEvents, eb.PrevEvents = nil, nil
						}
						copyEB := *eb
						got, ok, gotErr := fastBuild(eb, v, now, origin, keyID, key)
						if !ok {
							continue
						}
						want, wantErr := copyEB.Build(now, origin, keyID, key)
						fast[ver]++
						name := ver + " " + typ + " " + content
						if (wantErr == nil) != (gotErr == nil) {
							t.Fatalf("%s: Build err %v, fastBuild err %v", name, wantErr, gotErr)
						}
						if wantErr != nil {
							continue
						}
						if string(got.JSON()) != string(want.JSON()) {
							t.Fatalf("%s:\n fast  %s\n build %s", name, got.JSON(), want.JSON())
						}
						if got.EventID() != want.EventID() {
							t.Fatalf("%s: event ID %s, Build's %s", name, got.EventID(), want.EventID())
						}
					}
				}
			}
		}
	}
	t.Logf("events built fast, by room version: %v", fast)
	for _, ver := range []string{"10", "11", "12"} {
		if fast[ver] == 0 {
			t.Errorf("fastBuild declined every event of room version %s", ver)
		}
	}
}

func ptr(s string) *string { return &s }

// FuzzFastBuild: whatever content and type a client sends, fastBuild
// declines or agrees with Build byte for byte.
func FuzzFastBuild(f *testing.F) {
	for _, seed := range []struct{ typ, content string }{
		{"m.room.message", `{"msgtype":"m.text","body":"hi"}`},
		{"m.reaction", `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e","key":"x"}}`},
		{"m.room.encrypted", `{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgA"}`},
		{"com.example", `{"n":-0,"u":"\ud800","e":"\u00e9"}`},
	} {
		f.Add(seed.typ, seed.content)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion("11"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ, content string) {
		proto := gomatrixserverlib.ProtoEvent{SenderID: "@alice:example.org", RoomID: "!room:example.org", Type: typ,
			Depth: 3, PrevEvents: []string{"$prev"}, Content: spec.RawJSON(content)}
		eb := v.NewEventBuilderFromProtoEvent(&proto)
		eb.AuthEvents = []string{"$create"}
		copyEB := *eb
		now := time.UnixMilli(1733580000123)
		got, ok, gotErr := fastBuild(eb, v, now, "example.org", "ed25519:a", key)
		if !ok {
			return
		}
		want, wantErr := copyEB.Build(now, "example.org", "ed25519:a", key)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("Build err %v, fastBuild err %v", wantErr, gotErr)
		}
		if wantErr == nil && (string(got.JSON()) != string(want.JSON()) || got.EventID() != want.EventID()) {
			t.Fatalf("fast  %s %s\nbuild %s %s", got.EventID(), got.JSON(), want.EventID(), want.JSON())
		}
	})
}
