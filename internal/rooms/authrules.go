package rooms

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// authAllowed checks an event against its auth events under its room
// version's authorisation rules. gomatrixserverlib implements the rules;
// this corrects the places where it departs from the spec (each one is a
// case of auth_test.go):
//   - m.room.aliases: gomatrixserverlib applies the v1-5 special case to
//     every version; from v6 they are ordinary state events.
//   - third-party invites: it ignores a banned target, the sender of the
//     m.room.third_party_invite and its single public_key property.
//   - unbans: it only checks the ban level; the spec also requires the
//     kick level and a level above the target's.
//   - join rules a version does not know (knock before v7,
//     knock_restricted before v10) must reject joins and knocks.
//   - notification levels (v6+): it forbids changing an entry equal to
//     the sender's level, and ignores v12 creators' infinite power.
func authAllowed(pdu gomatrixserverlib.PDU, auth *gomatrixserverlib.AuthEvents) error {
	v, err := gomatrixserverlib.GetRoomVersion(pdu.Version())
	if err != nil {
		return err
	}
	switch pdu.Type() {
	case spec.MRoomAliases:
		if !aliasesSpecialCase(v) {
			return ordinaryStateAllowed(pdu, auth, v)
		}
	case spec.MRoomMember:
		var c struct {
			Membership       string          `json:"membership"`
			ThirdPartyInvite json.RawMessage `json:"third_party_invite"`
		}
		if json.Unmarshal(pdu.Content(), &c) == nil && c.Membership == spec.Invite && c.ThirdPartyInvite != nil && string(c.ThirdPartyInvite) != "null" {
			return thirdPartyInviteAllowed(pdu, auth, c.ThirdPartyInvite)
		}
	case spec.MRoomPowerLevels:
		if notificationsChecked(v) {
			return powerLevelsAllowed(pdu, auth, v)
		}
	}
	if err := gomatrixserverlib.Allowed(pdu, auth, userIDForSender); err != nil {
		return err
	}
	if pdu.Type() == spec.MRoomMember {
		return membershipAllowed(pdu, auth, v)
	}
	return nil
}

func notAllowed(format string, args ...any) error {
	return &gomatrixserverlib.NotAllowed{Message: fmt.Sprintf(format, args...)}
}

// aliasesSpecialCase: rule "If type is m.room.aliases" exists in v1-5.
func aliasesSpecialCase(v gomatrixserverlib.IRoomVersion) bool {
	switch v.Version() {
	case "1", "2", "3", "4", "5":
		return true
	}
	return false
}

// notificationsChecked: v6 added notifications to the power level rules.
func notificationsChecked(v gomatrixserverlib.IRoomVersion) bool {
	return !aliasesSpecialCase(v)
}

// joinRuleKnown reports whether a room version's auth rules know a join rule.
func joinRuleKnown(v gomatrixserverlib.IRoomVersion, rule string) bool {
	knock := v.CheckKnockingAllowed(string(v.Version()), "@a:x", "@a:x", spec.Knock, spec.Leave) == nil
	restricted := v.CheckRestrictedJoinsAllowed() == nil
	switch rule {
	case spec.Public, spec.Invite:
		return true
	case spec.Knock:
		return knock
	case spec.Restricted:
		return restricted
	case spec.KnockRestricted:
		switch v.Version() {
		case "1", "2", "3", "4", "5", "6", "7", "8", "9":
			return false
		}
		return knock && restricted
	}
	return false
}

// createChecks are the rules every non-create event passes first: a
// create event of the same room among the auth events, and m.federate.
func createChecks(pdu gomatrixserverlib.PDU, auth *gomatrixserverlib.AuthEvents) (gomatrixserverlib.PDU, error) {
	create, _ := auth.Create()
	if create == nil || create.RoomID().String() != pdu.RoomID().String() {
		return nil, notAllowed("no create event for room %s among the auth events", pdu.RoomID().String())
	}
	var c struct {
		Federate *bool `json:"m.federate"`
	}
	_ = json.Unmarshal(create.Content(), &c)
	if c.Federate != nil && !*c.Federate && serverOf(string(pdu.SenderID())) != serverOf(string(create.SenderID())) {
		return nil, notAllowed("room is unfederatable")
	}
	return create, nil
}

// membershipIn is a user's membership in the auth events ("leave" when none).
func membershipIn(auth *gomatrixserverlib.AuthEvents, userID string) string {
	ev, _ := auth.Member(spec.SenderID(userID))
	if ev == nil {
		return spec.Leave
	}
	m, err := ev.Membership()
	if err != nil {
		return spec.Leave
	}
	return m
}

// powerLevelsIn is the power levels content of the auth events, with
// defaults.
func powerLevelsIn(auth *gomatrixserverlib.AuthEvents, create gomatrixserverlib.PDU) (gomatrixserverlib.PowerLevelContent, error) {
	return gomatrixserverlib.NewPowerLevelContentFromAuthEvents(auth, string(create.SenderID()))
}

// userLevel is a user's power level, counting v12 creators as infinitely
// powerful (as gomatrixserverlib's auth checks do).
func userLevel(auth *gomatrixserverlib.AuthEvents, create gomatrixserverlib.PDU, v gomatrixserverlib.IRoomVersion, pl gomatrixserverlib.PowerLevelContent, userID string) int64 {
	if v.PrivilegedCreators() && slices.Contains(gomatrixserverlib.CreatorsFromCreateEvent(create), userID) {
		return gomatrixserverlib.CreatorPowerLevel
	}
	if ev, _ := auth.PowerLevels(); ev == nil {
		if userID == string(create.SenderID()) {
			return gomatrixserverlib.CreatorPowerLevel - 1
		}
		return 0
	}
	return pl.UserLevel(spec.SenderID(userID))
}

// ordinaryStateAllowed applies the rules for ordinary state events (from
// "If the sender's current membership state is not join" on).
func ordinaryStateAllowed(pdu gomatrixserverlib.PDU, auth *gomatrixserverlib.AuthEvents, v gomatrixserverlib.IRoomVersion) error {
	create, err := createChecks(pdu, auth)
	if err != nil {
		return err
	}
	sender := string(pdu.SenderID())
	if membershipIn(auth, sender) != spec.Join {
		return notAllowed("sender %q not in room", sender)
	}
	pl, err := powerLevelsIn(auth, create)
	if err != nil {
		return err
	}
	if lvl, need := userLevel(auth, create, v, pl, sender), pl.EventLevel(pdu.Type(), pdu.StateKey() != nil); lvl < need {
		return notAllowed("sender %q is not allowed to send event. %d < %d", sender, lvl, need)
	}
	if sk := pdu.StateKey(); sk != nil && strings.HasPrefix(*sk, "@") && *sk != sender {
		return notAllowed("sender %q is not allowed to modify the state belonging to %q", sender, *sk)
	}
	return nil
}

// thirdPartyInviteAllowed is the rule for an invite with a
// third_party_invite property.
func thirdPartyInviteAllowed(pdu gomatrixserverlib.PDU, auth *gomatrixserverlib.AuthEvents, raw json.RawMessage) error {
	if _, err := createChecks(pdu, auth); err != nil {
		return err
	}
	target := *pdu.StateKey()
	if membershipIn(auth, target) == spec.Ban {
		return notAllowed("%q is banned", target)
	}
	var tpi struct {
		Signed json.RawMessage `json:"signed"`
	}
	var signed struct {
		MXID       *string                      `json:"mxid"`
		Token      *string                      `json:"token"`
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if json.Unmarshal(raw, &tpi) != nil || tpi.Signed == nil || json.Unmarshal(tpi.Signed, &signed) != nil || signed.MXID == nil || signed.Token == nil {
		return notAllowed("third_party_invite needs signed.mxid and signed.token")
	}
	if *signed.MXID != target {
		return notAllowed("third_party_invite is for %q, not %q", *signed.MXID, target)
	}
	invite, _ := auth.ThirdPartyInvite(*signed.Token)
	if invite == nil {
		return notAllowed("no m.room.third_party_invite for the token")
	}
	if invite.SenderID() != pdu.SenderID() {
		return notAllowed("%q did not send the m.room.third_party_invite", pdu.SenderID())
	}
	var keys struct {
		PublicKey  string `json:"public_key"`
		PublicKeys []struct {
			PublicKey string `json:"public_key"`
		} `json:"public_keys"`
	}
	_ = json.Unmarshal(invite.Content(), &keys)
	candidates := []string{keys.PublicKey}
	for _, k := range keys.PublicKeys {
		candidates = append(candidates, k.PublicKey)
	}
	for _, c := range candidates {
		var pub spec.Base64Bytes
		if c == "" || pub.Decode(c) != nil {
			continue
		}
		for server, sigs := range signed.Signatures {
			for keyID := range sigs {
				if strings.HasPrefix(keyID, "ed25519:") &&
					gomatrixserverlib.VerifyJSON(server, gomatrixserverlib.KeyID(keyID), []byte(pub), tpi.Signed) == nil {
					return nil
				}
			}
		}
	}
	return notAllowed("no valid signature on the third-party invite for %q", target)
}

// powerLevelsAllowed runs gomatrixserverlib's power level rules on a copy
// of the event whose notifications are unchanged, then the spec's
// notifications rules.
func powerLevelsAllowed(pdu gomatrixserverlib.PDU, auth *gomatrixserverlib.AuthEvents, v gomatrixserverlib.IRoomVersion) error {
	newPL, err := gomatrixserverlib.NewPowerLevelContentFromEvent(pdu)
	if err != nil {
		return notAllowed("%v", err)
	}
	prev, _ := auth.PowerLevels()
	var prevNotif json.RawMessage
	if prev != nil {
		var pc map[string]json.RawMessage
		_ = json.Unmarshal(prev.Content(), &pc)
		prevNotif = pc["notifications"]
	}
	var ev map[string]json.RawMessage
	var content map[string]json.RawMessage
	if json.Unmarshal(pdu.JSON(), &ev) != nil || json.Unmarshal(ev["content"], &content) != nil {
		return notAllowed("invalid power levels event")
	}
	if prevNotif != nil {
		content["notifications"] = prevNotif
	} else {
		delete(content, "notifications")
	}
	ev["content"], _ = json.Marshal(content)
	js, _ := json.Marshal(ev)
	same, err := v.NewEventFromTrustedJSON(js, false)
	if err != nil {
		return err
	}
	if err := gomatrixserverlib.Allowed(same, auth, userIDForSender); err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	create, err := createChecks(pdu, auth)
	if err != nil {
		return err
	}
	oldPL, err := gomatrixserverlib.NewPowerLevelContentFromEvent(prev)
	if err != nil {
		return err
	}
	sender := userLevel(auth, create, v, oldPL, string(pdu.SenderID()))
	for _, pair := range []struct{ from, to map[string]int64 }{{oldPL.Notifications, newPL.Notifications}, {newPL.Notifications, oldPL.Notifications}} {
		for k, a := range pair.from {
			b, ok := pair.to[k]
			if ok && a == b {
				continue
			}
			if a > sender || (ok && b > sender) {
				return notAllowed("sender with level %d may not change the %q notification level", sender, k)
			}
		}
	}
	return nil
}

// membershipAllowed adds the spec's membership rules gomatrixserverlib
// misses to an event it allowed.
func membershipAllowed(pdu gomatrixserverlib.PDU, auth *gomatrixserverlib.AuthEvents, v gomatrixserverlib.IRoomVersion) error {
	membership, err := pdu.Membership()
	if err != nil {
		return err
	}
	create, err := createChecks(pdu, auth)
	if err != nil {
		return err
	}
	sender, target := string(pdu.SenderID()), *pdu.StateKey()
	joinRule := spec.Invite
	if jr, _ := auth.JoinRules(); jr != nil {
		if r, err := jr.JoinRule(); err == nil {
			joinRule = r
		}
	}
	switch membership {
	case spec.Knock:
		if !joinRuleKnown(v, joinRule) {
			return notAllowed("room version %s does not support knocking on rooms with join rule %q", v.Version(), joinRule)
		}
	case spec.Join:
		prevs := pdu.PrevEventIDs()
		creatorFirstJoin := target == string(create.SenderID()) && len(prevs) == 1 && prevs[0] == create.EventID()
		if !creatorFirstJoin && !joinRuleKnown(v, joinRule) {
			return notAllowed("join rule %q is unknown to room version %s", joinRule, v.Version())
		}
	case spec.Leave:
		if sender != target && membershipIn(auth, target) == spec.Ban {
			pl, err := powerLevelsIn(auth, create)
			if err != nil {
				return err
			}
			s, t := userLevel(auth, create, v, pl, sender), userLevel(auth, create, v, pl, target)
			if s < pl.Kick || t >= s {
				return notAllowed("sender has insufficient power to unban (sender level %d, target level %d, kick level %d)", s, t, pl.Kick)
			}
		}
	}
	return nil
}

// authStateNeeded is the auth events selection for an event:
// gomatrixserverlib's, with withAliasesNeeds.
func authStateNeeded(pdu gomatrixserverlib.PDU) gomatrixserverlib.StateNeeded {
	return withAliasesNeeds(gomatrixserverlib.StateNeededForAuth([]gomatrixserverlib.PDU{pdu}), pdu.Type(), string(pdu.SenderID()))
}

// withAliasesNeeds adds the power levels and the sender's membership for
// m.room.aliases events: the spec selects them for every event, but
// gomatrixserverlib only selects the create event there.
func withAliasesNeeds(n gomatrixserverlib.StateNeeded, typ, sender string) gomatrixserverlib.StateNeeded {
	if typ == spec.MRoomAliases {
		n.Create, n.PowerLevels = true, true
		if !slices.Contains(n.Member, sender) {
			n.Member = append(n.Member, sender)
		}
	}
	return n
}

// authEventRefs are the auth_events of a new event: the selection's
// events in the state, without the create event in v12.
func authEventRefs(needed gomatrixserverlib.StateNeeded, auth *gomatrixserverlib.AuthEvents, roomID string, v gomatrixserverlib.IRoomVersion) ([]string, error) {
	refs, err := needed.AuthEventReferences(auth)
	if err != nil || !v.DomainlessRoomIDs() {
		return refs, err
	}
	return slices.DeleteFunc(refs, func(id string) bool { return id == "$"+roomID[1:] }), nil
}

// badAuthEventList checks the auth_events list of a received event: no
// two entries for one state key, nothing the selection would not choose,
// and in v12 no create event.
func badAuthEventList(pdu gomatrixserverlib.PDU, authEvs []*Event, v gomatrixserverlib.IRoomVersion) bool {
	ids := pdu.AuthEventIDs()
	if v.EventFormat() != gomatrixserverlib.EventFormatV1 {
		var raw struct {
			AuthEvents []string `json:"auth_events"`
		}
		if json.Unmarshal(pdu.JSON(), &raw) != nil {
			return true
		}
		ids = raw.AuthEvents
	}
	allowed := map[gomatrixserverlib.StateKeyTuple]bool{}
	for _, t := range authStateNeeded(pdu).Tuples() {
		allowed[t] = true
	}
	if v.DomainlessRoomIDs() {
		delete(allowed, gomatrixserverlib.StateKeyTuple{EventType: spec.MRoomCreate})
	}
	seen := map[gomatrixserverlib.StateKeyTuple]bool{}
	for _, id := range ids {
		i := slices.IndexFunc(authEvs, func(ev *Event) bool { return ev.EventID() == id })
		if i < 0 || authEvs[i].StateKey() == nil {
			return true
		}
		k := gomatrixserverlib.StateKeyTuple{EventType: authEvs[i].Type(), StateKey: *authEvs[i].StateKey()}
		if seen[k] || !allowed[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

// Redacts is the event a redaction redacts, wherever its room version
// puts it (see redactsOf).
func (e *Event) Redacts() string { return redactsOf(e.PDU) }

// redactsOf is the event a redaction redacts: from v11 the "redacts"
// content property (gomatrixserverlib only reads the top-level key,
// which v11 events built by other servers need not carry), before it
// the top-level one.
func redactsOf(pdu gomatrixserverlib.PDU) string {
	if v, err := gomatrixserverlib.GetRoomVersion(pdu.Version()); err == nil && isV11OrLater(v) {
		var c struct {
			Redacts string `json:"redacts"`
		}
		if json.Unmarshal(pdu.Content(), &c) == nil && c.Redacts != "" {
			return c.Redacts
		}
		return ""
	}
	return pdu.Redacts()
}
