package peer

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
)

// The peer as a policy server (MSC4284, spec v1.18): it signs every
// event of a room it holds with PolicyKey, unless the event's JSON
// content contains "spam", which it refuses with 400 M_FORBIDDEN as the spec's
// example does. Refuse(PolicySign, status) makes it unavailable.

// PolicyKeyID is the key ID of a policy server's signatures.
const PolicyKeyID gomatrixserverlib.KeyID = "ed25519:policy_server"

// PolicyRefusal is the error message of the peer's refusals.
const PolicyRefusal = "The message appears to contain possible spam"

// PolicyContent is the content of an m.room.policy state event naming
// the peer as the room's policy server.
func (p *Peer) PolicyContent() map[string]any {
	pub := p.PolicyKey.Public().(ed25519.PublicKey)
	return map[string]any{"via": p.Name, "public_keys": map[string]string{"ed25519": base64.RawStdEncoding.EncodeToString(pub)}}
}

// policySignature signs an event's redacted JSON with the policy key.
func (p *Peer) policySignature(v gomatrixserverlib.IRoomVersion, eventJSON []byte) (string, error) {
	redacted, err := v.RedactEventJSON(eventJSON)
	if err != nil {
		return "", err
	}
	signed, err := gomatrixserverlib.SignJSON(p.Name, PolicyKeyID, p.PolicyKey, redacted)
	if err != nil {
		return "", err
	}
	var out struct {
		Signatures map[string]map[gomatrixserverlib.KeyID]string `json:"signatures"`
	}
	if err := json.Unmarshal(signed, &out); err != nil {
		return "", err
	}
	return out.Signatures[p.Name][PolicyKeyID], nil
}

// WithPolicySignature returns an event of the room with the peer's
// policy-server signature added, as a server that asked before sending
// would send it.
func (r *Room) WithPolicySignature(t testing.TB, pdu gomatrixserverlib.PDU) gomatrixserverlib.PDU {
	t.Helper()
	sig, err := r.p.policySignature(r.Version, pdu.JSON())
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(pdu.JSON(), &ev); err != nil {
		t.Fatal(err)
	}
	sigs, _ := ev["signatures"].(map[string]any)
	mine, _ := sigs[r.p.Name].(map[string]any)
	mine[string(PolicyKeyID)] = sig
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err = gomatrixserverlib.CanonicalJSON(raw); err != nil {
		t.Fatal(err)
	}
	out, err := r.Version.NewEventFromTrustedJSONWithEventID(pdu.EventID(), raw, false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// servePolicySign answers POST /_matrix/policy/v1/sign: the signature
// alone, keyed by the peer's name, or a refusal.
func (p *Peer) servePolicySign(w http.ResponseWriter, r *request) {
	var head struct {
		RoomID  string          `json:"room_id"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(r.content, &head); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
		return
	}
	room := p.room(w, head.RoomID)
	if room == nil {
		return
	}
	if bytes.Contains(head.Content, []byte("spam")) {
		writeError(w, http.StatusBadRequest, "M_FORBIDDEN", PolicyRefusal)
		return
	}
	sig, err := p.policySignature(room.Version, r.content)
	if err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{p.Name: map[string]string{string(PolicyKeyID): sig}})
}
