package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// The fuzzed requests come from origin.test, whose only key is fuzzKey,
// to fuzz.test.
const (
	fuzzOrigin = "origin.test"
	fuzzDest   = "fuzz.test"
	fuzzKeyID  = "ed25519:1"
	fuzzPath   = "/_matrix/federation/v1/send/t1"
)

var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))

// fuzzKeys is a key database that knows origin.test's key and nothing
// else; a key ring on it needs no network.
type fuzzKeys struct{}

func (fuzzKeys) FetcherName() string { return "fuzz" }

func (fuzzKeys) FetchKeys(_ context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	for r := range reqs {
		if r.ServerName == fuzzOrigin && r.KeyID == fuzzKeyID {
			out[r] = gomatrixserverlib.PublicKeyLookupResult{
				VerifyKey:    gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(fuzzKey.Public().(ed25519.PublicKey))},
				ExpiredTS:    gomatrixserverlib.PublicKeyNotExpired,
				ValidUntilTS: spec.AsTimestamp(time.Now().Add(time.Hour)),
			}
		}
	}
	return out, nil
}

func (fuzzKeys) StoreKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	return nil
}

func fuzzKeyRing() *gomatrixserverlib.KeyRing {
	return &gomatrixserverlib.KeyRing{KeyDatabase: fuzzKeys{}}
}

func quietLogs(f *testing.F) {
	// gomatrixserverlib logs every refused request through logrus.
	out := logrus.StandardLogger().Out
	logrus.SetOutput(io.Discard)
	f.Cleanup(func() { logrus.SetOutput(out) })
}

// signedAuthorization signs a PUT of body to fuzzPath as origin.test.
func signedAuthorization(t testing.TB, body any) string {
	req := fclient.NewFederationRequest(http.MethodPut, fuzzOrigin, fuzzDest, fuzzPath)
	if err := req.SetContent(body); err != nil {
		t.Fatal(err)
	}
	if err := req.Sign(fuzzOrigin, fuzzKeyID, fuzzKey); err != nil {
		t.Fatal(err)
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	return hreq.Header.Get("Authorization")
}

// FuzzXMatrix: the X-Matrix Authorization header and body of every
// signed federation request. A request is accepted only as origin.test
// and only with the body origin.test signed (the signature covers its
// canonical form); everything else is 401, never an error of the server.
func FuzzXMatrix(f *testing.F) {
	quietLogs(f)
	signedBody := `{"pdus":[],"edus":[{"edu_type":"m.typing","content":{}}]}`
	var signedContent map[string]any
	_ = json.Unmarshal([]byte(signedBody), &signedContent)
	good := signedAuthorization(f, signedContent)
	wantCanonical, _ := gomatrixserverlib.CanonicalJSON([]byte(signedBody))
	for _, h := range []string{good, strings.Replace(good, "origin.test", "evil.test", 1), strings.Replace(good, `sig="`, `sig="A`, 1),
		strings.Replace(good, fuzzDest, "other.test", 1), good + `,origin="evil.test"`, `X-Matrix origin=origin.test,key="ed25519:1",sig="x"`,
		`X-Matrix`, `X-Matrix `, `X-Matrix ,,,=,==`, `Bearer abc`, "X-Matrix origin=\"\x00\",key=\"\xff\",sig=\"\"",
		`X-Matrix origin="[::1]:8448",destination="fuzz.test",key="ed25519:1",sig="` + strings.Repeat("A", 86) + `"`} {
		f.Add(h, []byte(signedBody))
		f.Add(h, []byte(`{"pdus":[],"edus":[{"content":{},"edu_type":"m.typing"}]}`))
		f.Add(h, []byte(`{"pdus":[{}],"edus":[]}`))
		f.Add(h, []byte("{\"a\":\"\xff\"}"))
		f.Add(h, []byte(""))
	}
	a := &API{d: Deps{ServerName: fuzzDest, KeyRing: fuzzKeyRing()}, now: time.Now}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		req := httptest.NewRequest(http.MethodPut, fuzzPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header["Authorization"] = []string{header}
		fr, err := a.verify(req)
		if err != nil {
			var merr *mxerr.Error
			if !errors.As(err, &merr) || merr.Status != http.StatusUnauthorized {
				t.Fatalf("refused with %v, want a 401", err)
			}
			return
		}
		if fr.Origin != fuzzOrigin {
			t.Fatalf("accepted as %q", fr.Origin)
		}
		got, err := gomatrixserverlib.CanonicalJSON(fr.Content)
		if err != nil || !bytes.Equal(got, wantCanonical) {
			t.Fatalf("accepted a body origin.test did not sign: %q", fr.Content)
		}
	})
}

// FuzzTransaction: the body of PUT /send/{txnId} and the PDUs in it, as
// sendTransaction and receivePDU read them: the body must be an object
// of the expected shape, each PDU is parsed with every room version, and
// a PDU whose signatures verify is, once redacted, one origin.test
// signed (the signature covers the redacted event): the fuzzer cannot
// forge an event by changing what the signature covers.
func FuzzTransaction(f *testing.F) {
	quietLogs(f)
	ctx := context.Background()
	signed := map[string]bool{}
	var seeds [][]byte
	for n := 1; n <= 12; n++ {
		v := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(strconv.Itoa(n)))
		roomID := "!r:origin.test"
		if v.DomainlessRoomIDs() {
			roomID = "!" + strings.Repeat("A", 43)
		}
		pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
			SenderID: "@u:origin.test", RoomID: roomID, Type: "m.room.message", Content: []byte(`{"body":"hi","msgtype":"m.text"}`),
			PrevEvents: []string{"$" + strings.Repeat("B", 43)}, AuthEvents: []string{"$" + strings.Repeat("C", 43)}, Depth: 7,
		}).Build(time.UnixMilli(1700000000000), fuzzOrigin, fuzzKeyID, fuzzKey)
		if err != nil {
			f.Fatal(err)
		}
		signed[redactedForm(pdu)] = true
		seeds = append(seeds, pdu.JSON())
	}
	for _, raw := range seeds {
		f.Add([]byte(`{"origin":"origin.test","origin_server_ts":1,"pdus":[` + string(raw) + `],"edus":[]}`))
	}
	f.Add([]byte(`{"pdus":[{"room_id":"\u0000"}],"edus":[{"edu_type":"m.typing","content":null}]}`))
	f.Add([]byte(`{"pdus":{},"edus":"x"}`))
	f.Add([]byte(`{"pdus":[` + strings.Repeat(`{"room_id":"!a:b"},`, 60) + `{}]}`))
	f.Add([]byte(strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)))
	f.Fuzz(func(t *testing.T, body []byte) {
		var txn txnBody
		if err := httpapi.DecodeObject(body, &txn); err != nil {
			var merr *mxerr.Error
			if !errors.As(err, &merr) || merr.Status != http.StatusBadRequest {
				t.Fatalf("refused with %v, want a 400", err)
			}
			return
		}
		for _, raw := range txn.PDUs {
			var head struct {
				RoomID  string `json:"room_id"`
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(raw, &head)
			_ = remote.ServerOf(head.RoomID)
			for _, v := range fuzzVersions() {
				pdu, err := rooms.ParsePDU(v, raw)
				if err != nil {
					continue
				}
				_ = remote.ServerOf(string(pdu.SenderID()))
				if gomatrixserverlib.VerifyEventSignatures(ctx, pdu, fuzzKeyRing(), remote.UserIDForSender) == nil && !signed[redactedForm(pdu)] {
					t.Fatalf("v%s: a PDU origin.test did not sign verified: %s", v.Version(), pdu.JSON())
				}
			}
		}
	})
}

func fuzzVersions() []gomatrixserverlib.IRoomVersion {
	var out []gomatrixserverlib.IRoomVersion
	versions := rooms.Versions()
	slices.Sort(versions)
	for _, v := range versions {
		out = append(out, gomatrixserverlib.MustGetRoomVersion(v))
	}
	return out
}

// redactedForm is what an event's signatures cover: its redacted JSON
// without signatures and unsigned, canonical. Versions of one event
// format redact a message alike, so a seed may verify under several.
func redactedForm(pdu gomatrixserverlib.PDU) string {
	v := gomatrixserverlib.MustGetRoomVersion(pdu.Version())
	red, err := v.RedactEventJSON(pdu.JSON())
	if err != nil {
		return ""
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(red, &m)
	delete(m, "signatures")
	delete(m, "unsigned")
	// v1/v2 builders pick a random event ID (which the content hash
	// covers), different in each fuzzing process than in the one that
	// made the seeds; both are signed, so comparing the rest suffices.
	delete(m, "event_id")
	delete(m, "hashes")
	out, _ := json.Marshal(m)
	c, _ := gomatrixserverlib.CanonicalJSON(out)
	return string(c)
}

// TestVerifyPDURefusesInvalidRoomID: an event whose room_id is no room
// ID (found by FuzzTransaction) is refused where events from other
// servers are checked (transactions, get_missing_events answers),
// rather than panicking when its room is read, which in a transaction's
// goroutine took the whole server down.
func TestVerifyPDURefusesInvalidRoomID(t *testing.T) {
	a := &API{d: Deps{ServerName: fuzzDest, KeyRing: fuzzKeyRing()}, now: time.Now}
	for _, n := range []string{"1", "2", "10"} {
		v := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersion(n))
		for _, raw := range []string{`{"room_id":"!:","sender":"@:"}`, `{"room_id":"x","sender":"@u:origin.test","type":"m.room.message","content":{},"depth":1,"prev_events":[],"auth_events":[]}`} {
			if pdu, err := a.verifyPDU(context.Background(), fuzzOrigin, v, []byte(raw)); err == nil {
				t.Errorf("v%s: %s accepted as %v", n, raw, pdu.JSON())
			}
		}
	}
}
