package rooms

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// Policy servers (MSC4284, spec v1.18): a room whose current state has a
// valid m.room.policy naming a server with a joined member "uses" that
// policy server. Every event of such a room but the m.room.policy state
// event itself (state key "") must carry the policy server's signature
// (signatures[via][ed25519:policy_server], checked with the key in the
// state event, not a published one). This server asks for it before an
// event of its users goes anywhere, and asks again for a received event
// that lacks a valid one; without one a local event is refused and a
// received one soft-failed (server-server spec "Validating Policy Server
// signatures", check 7 on receipt of a PDU).

// MRoomPolicy is the state event naming a room's policy server.
const MRoomPolicy = "m.room.policy"

// policyKeyID is the key ID of every policy server signature.
const policyKeyID gomatrixserverlib.KeyID = "ed25519:policy_server"

// policyTimeout bounds one request to a policy server. The room's input
// waits on it; Synapse settled on 30s after 3s timed out policy servers
// that scan media.
const policyTimeout = 30 * time.Second

// PolicySigner asks a policy server to sign an event (POST
// /_matrix/policy/v1/sign). It returns the unpadded base64 signature; a
// *mxerr.Error is the policy server's refusal, to be given to the
// client verbatim; any other error means no answer could be had, which
// Options.PolicyFailOpen decides about.
type PolicySigner interface {
	SignEvent(ctx context.Context, server string, pdu json.RawMessage) (string, error)
}

// PolicyServer is the policy server an m.room.policy event designates.
type PolicyServer struct {
	Name string
	// Key is the ed25519 key its signatures verify with; nil when the
	// state event's key does not decode to one, so that no signature
	// verifies (the room still uses the policy server: the spec asks only
	// for a string).
	Key ed25519.PublicKey
}

// ParsePolicy reads the content of an m.room.policy state event: valid
// when it has a string "via" naming a server and an object
// "public_keys" with a string "ed25519" (spec "Determining if a Policy
// Server is enabled in a room"); ok is false otherwise.
func ParsePolicy(content []byte) (ps PolicyServer, ok bool) {
	var c struct {
		Via        *string `json:"via"`
		PublicKeys *struct {
			Ed25519 *string `json:"ed25519"`
		} `json:"public_keys"`
	}
	if json.Unmarshal(content, &c) != nil || c.Via == nil || c.PublicKeys == nil || c.PublicKeys.Ed25519 == nil {
		return PolicyServer{}, false
	}
	if _, _, valid := spec.ParseAndValidateServerName(spec.ServerName(*c.Via)); !valid {
		return PolicyServer{}, false
	}
	return PolicyServer{Name: *c.Via, Key: decodePolicyKey(*c.PublicKeys.Ed25519)}, true
}

// decodePolicyKey decodes an unpadded base64 ed25519 key; the spec's own
// example uses the URL-safe alphabet, so both are accepted.
func decodePolicyKey(s string) ed25519.PublicKey {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b)
		}
	}
	return nil
}

// policyExempt: the m.room.policy state event with an empty state key is
// never sent to the policy server, so that a room can always change or
// drop a policy server that is down; every other event, state or not,
// is checked.
func policyExempt(pdu gomatrixserverlib.PDU) bool {
	return pdu.Type() == MRoomPolicy && pdu.StateKey() != nil && *pdu.StateKey() == ""
}

// policyServerOf returns the policy server a room's state designates;
// ok is false when the room uses none: no valid m.room.policy, its
// server without a joined member, or this server named (which, as
// Synapse, is not a policy server), or no PolicySigner configured (a
// server without federation).
func (e *Engine) policyServerOf(ctx context.Context, state StateMap) (PolicyServer, bool, error) {
	if e.opts.Policy == nil {
		return PolicyServer{}, false, nil
	}
	nid, ok := state[roommodel.StateKey{Type: MRoomPolicy, StateKey: ""}]
	if !ok {
		return PolicyServer{}, false, nil
	}
	evs, err := e.EventsByNID(ctx, []int64{nid})
	if err != nil || len(evs) == 0 {
		return PolicyServer{}, false, err
	}
	ps, ok := ParsePolicy(evs[0].Content())
	if !ok || ps.Name == e.opts.ServerName {
		return PolicyServer{}, false, nil
	}
	joined, err := e.serverJoinedIn(ctx, state, ps.Name)
	return ps, joined, err
}

// serverJoinedIn reports whether a server has a joined member in a state.
func (e *Engine) serverJoinedIn(ctx context.Context, state StateMap, server string) (bool, error) {
	var nids []int64
	for k, n := range state {
		if k.Type != spec.MRoomMember {
			continue
		}
		if _, s, _ := strings.Cut(k.StateKey, ":"); s == server {
			nids = append(nids, n)
		}
	}
	if len(nids) == 0 {
		return false, nil
	}
	evs, err := e.EventsByNID(ctx, nids)
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		if m, _ := ev.Membership(); m == spec.Join {
			return true, nil
		}
	}
	return false, nil
}

// policySigned reports whether an event carries a valid signature of
// the policy server.
func policySigned(pdu gomatrixserverlib.PDU, v gomatrixserverlib.IRoomVersion, ps PolicyServer) bool {
	if ps.Key == nil {
		return false
	}
	redacted, err := v.RedactEventJSON(pdu.JSON())
	if err != nil {
		return false
	}
	return gomatrixserverlib.VerifyJSON(ps.Name, policyKeyID, ps.Key, redacted) == nil
}

// withPolicySignature adds the policy server's signature to an event,
// keeping every signature it has (the policy server may be the event's
// origin, whose own signature it need not return). Signatures are
// outside the reference hash: the event ID does not change.
func withPolicySignature(pdu gomatrixserverlib.PDU, v gomatrixserverlib.IRoomVersion, server, sig string) (gomatrixserverlib.PDU, error) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(pdu.JSON(), &ev); err != nil {
		return nil, err
	}
	sigs := map[string]map[string]json.RawMessage{}
	if raw, ok := ev["signatures"]; ok {
		if err := json.Unmarshal(raw, &sigs); err != nil {
			return nil, err
		}
	}
	if sigs[server] == nil {
		sigs[server] = map[string]json.RawMessage{}
	}
	quoted, err := json.Marshal(sig)
	if err != nil {
		return nil, err
	}
	sigs[server][string(policyKeyID)] = quoted
	raw, err := json.Marshal(sigs)
	if err != nil {
		return nil, err
	}
	ev["signatures"] = raw
	out, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	if out, err = gomatrixserverlib.CanonicalJSON(out); err != nil {
		return nil, err
	}
	return v.NewEventFromTrustedJSONWithEventID(pdu.EventID(), out, pdu.Redacted())
}

// askPolicy asks the policy server to sign an event and returns the
// event with a signature that verifies with the room's key. A signature
// that does not verify (the server rotated its key without the room
// following) is a refusal, as the spec expects.
func (e *Engine) askPolicy(ctx context.Context, pdu gomatrixserverlib.PDU, v gomatrixserverlib.IRoomVersion, ps PolicyServer) (gomatrixserverlib.PDU, error) {
	cctx, cancel := context.WithTimeout(ctx, policyTimeout)
	defer cancel()
	sig, err := e.opts.Policy.SignEvent(cctx, ps.Name, pdu.JSON())
	if err != nil {
		return nil, err
	}
	signed, err := withPolicySignature(pdu, v, ps.Name, sig)
	if err != nil || !policySigned(signed, v, ps) {
		return nil, mxerr.Forbidden("The policy server's signature does not verify with the key of the room's m.room.policy")
	}
	return signed, nil
}

// policySign gives an event of a local user the signature of its room's
// policy server before it is stored or sent anywhere. A refusal is the
// client's answer, verbatim; a policy server that cannot be reached
// refuses the event too (502), unless the admin chose fail-open
// (federation.policy_server_fail_open), which sends it unsigned: other
// servers then ask the policy server themselves.
func (e *Engine) policySign(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error) {
	if policyExempt(pdu) {
		return pdu, nil
	}
	ps, ok, err := e.policyServerOf(ctx, h.state)
	if err != nil || !ok {
		return pdu, err
	}
	signed, err := e.askPolicy(ctx, pdu, h.version, ps)
	switch {
	case err == nil:
		if len(signed.JSON()) > maxEventBytes {
			return nil, mxerr.TooLarge("Event is larger than %d bytes with the policy server's signature", maxEventBytes)
		}
		return signed, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	if refusal, ok := mxerr.As(err); ok {
		return nil, refusal
	}
	if e.opts.PolicyFailOpen {
		return pdu, nil
	}
	return nil, mxerr.Unknown("The room's policy server %s could not be reached", ps.Name).WithStatus(http.StatusBadGateway)
}

// policyVerdict is the last check on receipt of an event accepted so far
// (check 7): in a room using a policy server, an event without its valid
// signature is asked to be signed again (the key may have changed since)
// and soft-failed when it still has none. The event is returned with
// the signature it gained. An unreachable policy server soft-fails the
// event, as Synapse does, unless the admin chose fail-open. An error is a
// failure to check (database, the caller's context), not a verdict.
func (e *Engine) policyVerdict(ctx context.Context, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU, current StateMap) (gomatrixserverlib.PDU, roommodel.Status, error) {
	if policyExempt(pdu) {
		return pdu, roommodel.Accepted, nil
	}
	ps, ok, err := e.policyServerOf(ctx, current)
	if err != nil {
		return nil, 0, err
	}
	if !ok || policySigned(pdu, v, ps) {
		return pdu, roommodel.Accepted, nil
	}
	signed, err := e.askPolicy(ctx, pdu, v, ps)
	switch {
	case err == nil:
		return signed, roommodel.Accepted, nil
	case ctx.Err() != nil:
		return nil, 0, ctx.Err()
	}
	if _, refused := mxerr.As(err); !refused && e.opts.PolicyFailOpen {
		return pdu, roommodel.Accepted, nil
	}
	return pdu, roommodel.SoftFailed, nil
}
