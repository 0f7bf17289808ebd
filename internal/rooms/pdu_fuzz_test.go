package rooms

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// fuzzVersions are the room versions Myelin serves (1 to 12): each
// event format (v1/v2 event IDs in the event, v3 hashes, v4+ URL-safe
// hashes, v11 and v12 create events) is fuzzed.
var fuzzVersions = func() []gomatrixserverlib.IRoomVersion {
	var out []gomatrixserverlib.IRoomVersion
	for n := 1; n <= 12; n++ {
		out = append(out, gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(strconv.Itoa(n))))
	}
	return out
}()

// fuzzPDUSeeds signs a small room's events in every version, plus hostile
// variants of them.
func fuzzPDUSeeds(t testing.TB) map[int][][]byte {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	out := map[int][][]byte{}
	for i, v := range fuzzVersions {
		sender := "@alice:a.test"
		build := func(roomID, typ string, stateKey *string, content string, prevs, auth []string, depth int64) gomatrixserverlib.PDU {
			pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
				SenderID: sender, RoomID: roomID, Type: typ, StateKey: stateKey, Content: []byte(content),
				PrevEvents: prevs, AuthEvents: auth, Depth: depth,
			}).Build(time.UnixMilli(1700000000000), "a.test", "ed25519:1", key)
			if err != nil {
				t.Fatalf("v%s %s: %v", v.Version(), typ, err)
			}
			return pdu
		}
		empty := ""
		createContent := `{"creator":"@alice:a.test","room_version":"` + string(v.Version()) + `"}`
		roomID := "!room:a.test"
		if v.DomainlessRoomIDs() {
			createContent = `{"room_version":"` + string(v.Version()) + `"}`
			roomID = ""
		}
		create := build(roomID, spec.MRoomCreate, &empty, createContent, []string{}, []string{}, 1)
		if v.DomainlessRoomIDs() {
			roomID = "!" + create.EventID()[1:]
		}
		authCreate := []string{create.EventID()}
		if v.DomainlessRoomIDs() {
			authCreate = []string{}
		}
		join := build(roomID, spec.MRoomMember, &sender, `{"membership":"join","displayname":"A\u0000"}`, []string{create.EventID()}, authCreate, 2)
		auth := append(append([]string{}, authCreate...), join.EventID())
		pl := build(roomID, spec.MRoomPowerLevels, &empty, `{"users":{"@alice:a.test":100},"events_default":9007199254740991,"notifications":{"room":50}}`,
			[]string{join.EventID()}, auth, 3)
		acl := build(roomID, "m.room.server_acl", &empty, `{"allow":["*"],"deny":["*.evil","[::1]"],"allow_ip_literals":false}`, []string{pl.EventID()}, auth, 4)
		msg := build(roomID, "m.room.message", nil, `{"msgtype":"m.text","body":"hi","url":"mxc://a.test/x","m.relates_to":{"rel_type":"m.thread","event_id":"$x"}}`,
			[]string{acl.EventID()}, auth, 5)
		redaction := build(roomID, spec.MRoomRedaction, nil, `{"redacts":"`+msg.EventID()+`"}`, []string{msg.EventID()}, auth, 6)
		for _, p := range []gomatrixserverlib.PDU{create, join, pl, acl, msg, redaction} {
			out[i] = append(out[i], p.JSON())
		}
		msgJSON := string(msg.JSON())
		out[i] = append(out[i],
			[]byte(strings.Replace(msgJSON, `"hi"`, `"h\u0000i"`, 1)),
			[]byte(strings.Replace(msgJSON, `"hi"`, "\"h\xffi\"", 1)),
			[]byte(strings.Replace(msgJSON, `"depth":5`, `"depth":9007199254740993`, 1)),
			[]byte(strings.Replace(msgJSON, `"hi"`, strings.Repeat("[", 200)+strings.Repeat("]", 200), 1)),
			[]byte(strings.Replace(msgJSON, `"m.room.message"`, `"`+strings.Repeat("t", 300)+`"`, 1)),
		)
	}
	return out
}

// FuzzPDU: every PDU another server sends is parsed with its room's
// version and then read by the engine (auth rules, relations,
// redactions). Whatever parses keeps its event ID through a re-parse
// and through redaction (the reference hash covers the redacted form),
// redacts to the same JSON twice, has a well-formed v3+ event ID (URL-safe
// from v4), and is read by the engine's helpers and auth rules without
// failing them.
func FuzzPDU(f *testing.F) {
	for i, raws := range fuzzPDUSeeds(f) {
		for _, raw := range raws {
			f.Add(uint8(i), raw)
		}
	}
	f.Fuzz(func(t *testing.T, vi uint8, raw []byte) {
		v := fuzzVersions[int(vi)%len(fuzzVersions)]
		pdu, err := ParsePDU(v, raw)
		if err != nil {
			return
		}
		id := pdu.EventID()
		if v.EventFormat() != gomatrixserverlib.EventFormatV1 {
			if len(id) != 44 || id[0] != '$' {
				t.Fatalf("v%s event ID %q", v.Version(), id)
			}
			if v.EventIDFormat() == gomatrixserverlib.EventIDFormatV2 && strings.ContainsAny(id, "-_") ||
				v.EventIDFormat() == gomatrixserverlib.EventIDFormatV3 && strings.ContainsAny(id, "+/") {
				t.Fatalf("v%s event ID %q in the wrong alphabet", v.Version(), id)
			}
		}
		again, err := ParsePDU(v, pdu.JSON())
		if err != nil {
			t.Fatalf("v%s: its own JSON does not parse: %v\n%s", v.Version(), err, pdu.JSON())
		}
		if again.EventID() != id || again.Type() != pdu.Type() || again.RoomID() != pdu.RoomID() ||
			again.SenderID() != pdu.SenderID() || !bytes.Equal(again.Content(), pdu.Content()) {
			t.Fatalf("v%s: re-parse changed the event: %s\n-> %s", v.Version(), pdu.JSON(), again.JSON())
		}
		red := redactedCopy(pdu, v)
		if red.EventID() != id {
			t.Fatalf("v%s: redaction changed the event ID %s -> %s", v.Version(), id, red.EventID())
		}
		if red2 := redactedCopy(red, v); !bytes.Equal(red2.JSON(), red.JSON()) {
			t.Fatalf("v%s: redacting twice: %s\n-> %s", v.Version(), red.JSON(), red2.JSON())
		}
		// The engine's readers of an event's content.
		_ = ContentString(pdu.Content(), "membership")
		_ = relationOf(pdu)
		_ = ContainsURL(pdu)
		_ = redactsOf(pdu)
		ev := &Event{PDU: pdu}
		_, _ = ev.Membership()
		_, _ = ev.HistoryVisibility()
		if pdu.Type() == "m.room.server_acl" {
			_ = ACLAllows(pdu.Content(), "b.test:8448")
		}
		// The auth rules, with the event as its own (only) auth event and
		// with none: any verdict, never a panic.
		_ = authStateNeeded(pdu)
		_ = authAllowed(pdu, mustAuthEvents(nil))
		if auth := mustAuthEvents([]gomatrixserverlib.PDU{pdu}); auth != nil {
			_ = authAllowed(pdu, auth)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(pdu.JSON(), &obj) != nil {
			t.Fatalf("v%s: event JSON is not an object: %s", v.Version(), pdu.JSON())
		}
	})
}

// FuzzACLAllows: m.room.server_acl content comes from room members and
// is applied to every server that sends into the room. Matching agrees
// with the spec's globs ("*" any run of characters, "?" one character,
// case-insensitive, the port ignored) for every server name of the
// grammar, and a malformed ACL is ignored.
func FuzzACLAllows(f *testing.F) {
	for _, s := range [][2]string{
		{`{"allow":["*"],"deny":["*.evil.org"]}`, "a.evil.org:8448"},
		{`{"allow":["*"],"deny":["evil.org"],"allow_ip_literals":false}`, "[::1]:8448"},
		{`{"allow":["a?c.org"]}`, "abc.org"},
		{`{"allow":["[a-z]*"]}`, "b.org"},
		{`{"allow":["\\*"]}`, "x"},
		{`{"allow":["*"],"deny":["*.*.*.*.*.*.*.*.*.*.*.*.x"]}`, strings.Repeat("a.", 100) + "y"},
		{`{"allow":[1,null,{"x":1},"*"]}`, "b.test"},
		{`{"allow":"*"}`, "b.test"},
		{`{"allow":["*"],"deny":["1.2.3.*"]}`, "1.2.3.4:80"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, content, server string) {
		got := ACLAllows([]byte(content), server)
		var acl struct {
			Allow           []any `json:"allow"`
			Deny            []any `json:"deny"`
			AllowIPLiterals *bool `json:"allow_ip_literals"`
		}
		if json.Unmarshal([]byte(content), &acl) != nil {
			if !got {
				t.Fatalf("malformed ACL %q refused %q", content, server)
			}
			return
		}
		if !serverNameRE.MatchString(server) {
			return
		}
		host := strings.ToLower(serverNameRE.FindStringSubmatch(server)[1])
		matches := func(globs []any) bool {
			for _, g := range globs {
				s, ok := g.(string)
				if !ok || !utf8.ValidString(s) {
					continue
				}
				var re strings.Builder
				re.WriteString("^(?s)")
				for _, r := range strings.ToLower(s) {
					switch r {
					case '*':
						re.WriteString(".*")
					case '?':
						re.WriteString(".")
					default:
						re.WriteString(regexp.QuoteMeta(string(r)))
					}
				}
				if regexp.MustCompile(re.String() + "$").MatchString(host) {
					return true
				}
			}
			return false
		}
		isIP := net.ParseIP(strings.Trim(host, "[]")) != nil
		want := !(acl.AllowIPLiterals != nil && !*acl.AllowIPLiterals && isIP) && !matches(acl.Deny) && matches(acl.Allow)
		if got != want && !hasInvalidUTF8(acl.Allow, acl.Deny) {
			t.Fatalf("ACLAllows(%s, %q) = %v, want %v", content, server, got, want)
		}
	})
}

// serverNameRE is the spec's server name grammar: host, then the port.
var serverNameRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(:[0-9]{1,5})?$`)

func hasInvalidUTF8(lists ...[]any) bool {
	for _, l := range lists {
		for _, g := range l {
			if s, ok := g.(string); ok && !utf8.ValidString(s) {
				return true
			}
		}
	}
	return false
}
