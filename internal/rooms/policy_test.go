package rooms

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

func TestParsePolicy(t *testing.T) {
	key := strings.Repeat("A", 43) // 32 zero bytes, unpadded
	tests := []struct {
		content string
		ok      bool
		hasKey  bool
	}{
		{`{"via":"policy.example.org","public_keys":{"ed25519":"` + key + `"}}`, true, true},
		{`{"via":"policy.example.org:8448","public_keys":{"ed25519":"` + key + `=","other":"x"}}`, true, true},
		// The spec's own example key is URL-safe base64.
		{`{"via":"p.test","public_keys":{"ed25519":"6yhHGKhCiXTSEN2ksjV7kX_N6rBQZ3Xb-M7LlC6NS-s"}}`, true, true},
		// A string that is no key still enables the policy server: nothing verifies.
		{`{"via":"p.test","public_keys":{"ed25519":"not a key"}}`, true, false},
		{`{"via":"p.test","public_keys":{"ed25519":1}}`, false, false},
		{`{"via":"p.test","public_keys":{}}`, false, false},
		{`{"via":"p.test","public_keys":"x"}`, false, false},
		{`{"via":"p.test"}`, false, false},
		{`{"public_keys":{"ed25519":"` + key + `"}}`, false, false},
		{`{"via":1,"public_keys":{"ed25519":"` + key + `"}}`, false, false},
		{`{"via":"not a server/x","public_keys":{"ed25519":"` + key + `"}}`, false, false},
		{`{}`, false, false},
		{`[]`, false, false},
	}
	for _, tt := range tests {
		ps, ok := ParsePolicy([]byte(tt.content))
		if ok != tt.ok || (ps.Key != nil) != tt.hasKey {
			t.Errorf("ParsePolicy(%s) = %+v, %v; want ok %v, key %v", tt.content, ps, ok, tt.ok, tt.hasKey)
		}
	}
}

// TestPolicySignature: a policy server's signature added to an event
// keeps its ID and its other signatures, and verifies with the policy
// key only.
func TestPolicySignature(t *testing.T) {
	_, serverKey, _ := ed25519.GenerateKey(rand.Reader)
	policyPub, policyKey, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, v := range []gomatrixserverlib.IRoomVersion{gomatrixserverlib.MustGetRoomVersion("1"), gomatrixserverlib.MustGetRoomVersion("10")} {
		b := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
			SenderID: "@a:origin.test", RoomID: "!r:origin.test", Type: "m.room.message", PrevEvents: []string{}, AuthEvents: []string{},
			Depth: 3, Content: spec.RawJSON(`{"body":"hi"}`),
		})
		pdu, err := b.Build(time.Now(), "origin.test", "ed25519:a", serverKey)
		if err != nil {
			t.Fatal(err)
		}
		ps := PolicyServer{Name: "policy.test", Key: policyPub}
		if policySigned(pdu, v, ps) {
			t.Fatalf("v%s: unsigned event verifies", v.Version())
		}
		redacted, _ := v.RedactEventJSON(pdu.JSON())
		signedJSON, err := gomatrixserverlib.SignJSON("policy.test", policyKeyID, policyKey, redacted)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Signatures map[string]map[string]string `json:"signatures"`
		}
		_ = json.Unmarshal(signedJSON, &s)
		signed, err := withPolicySignature(pdu, v, "policy.test", s.Signatures["policy.test"][string(policyKeyID)])
		if err != nil {
			t.Fatal(err)
		}
		if signed.EventID() != pdu.EventID() || !policySigned(signed, v, ps) {
			t.Fatalf("v%s: signed %s (was %s), verifies %v", v.Version(), signed.EventID(), pdu.EventID(), policySigned(signed, v, ps))
		}
		if err := gomatrixserverlib.VerifyJSON("origin.test", "ed25519:a", serverKey.Public().(ed25519.PublicKey), mustRedact(t, v, signed)); err != nil {
			t.Fatalf("v%s: origin's signature lost: %v", v.Version(), err)
		}
		if policySigned(signed, v, PolicyServer{Name: "policy.test", Key: otherPub}) || policySigned(signed, v, PolicyServer{Name: "policy.test"}) {
			t.Fatalf("v%s: verifies with another key", v.Version())
		}
		if policySigned(signed, v, PolicyServer{Name: "other.test", Key: policyPub}) {
			t.Fatalf("v%s: verifies under another server name", v.Version())
		}
	}
}

func mustRedact(t *testing.T, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) []byte {
	t.Helper()
	r, err := v.RedactEventJSON(pdu.JSON())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// FuzzParsePolicy: m.room.policy content comes from any member allowed
// to send it, over federation too; a policy server it designates has a
// valid server name and a key that is an ed25519 key or none.
func FuzzParsePolicy(f *testing.F) {
	key := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	for _, s := range []string{
		`{"via":"p.test","public_keys":{"ed25519":"` + key + `"}}`, `{"via":"p.test","public_keys":{"ed25519":"` + key + `=="}}`,
		`{"via":"[::1]:8448","public_keys":{"ed25519":"6yhHGKhCiXTSEN2ksjV7kX_N6rBQZ3Xb-M7LlC6NS-s"}}`,
		`{"via":"p.test","public_keys":{"ed25519":null}}`, `{"via":"","public_keys":{"ed25519":""}}`, `{"via":null}`, `null`, `"x"`,
		`{"via":"a\u0000b","public_keys":{"ed25519":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		ps, ok := ParsePolicy(content)
		if !ok {
			return
		}
		if _, _, valid := spec.ParseAndValidateServerName(spec.ServerName(ps.Name)); !valid {
			t.Fatalf("policy server %q", ps.Name)
		}
		if ps.Key != nil && len(ps.Key) != ed25519.PublicKeySize {
			t.Fatalf("key of %d bytes", len(ps.Key))
		}
	})
}
