package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Room presets of createRoom.
const (
	PresetPrivateChat        = "private_chat"
	PresetTrustedPrivateChat = "trusted_private_chat"
	PresetPublicChat         = "public_chat"
)

// StateEvent is a piece of initial state.
type StateEvent struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// CreateRequest is a createRoom request, already parsed.
type CreateRequest struct {
	Creator            string
	Version            string
	CreationContent    map[string]json.RawMessage
	PowerLevelOverride map[string]json.RawMessage
	Preset             string
	InitialState       []StateEvent
	Name, Topic        *string
	CanonicalAlias     string
	Invite             []string
	// Invitees are all the users the request invites, Invite and those
	// on other servers, invited through federation once the room exists:
	// trusted_private_chat gives every one of them the creator's power.
	Invitees []string
	IsDirect bool
	// CreatorContent and InviteContent add profile keys to the creator's
	// join and to each invite.
	CreatorContent map[string]any
	InviteContent  func(userID string) map[string]any
	// ExtraState is sent after the initial state (room upgrades carry state over).
	ExtraState []StateEvent
}

// CreateRoom creates a room and sends its initial events, in the order
// Synapse uses, all under the new room's lock.
func (e *Engine) CreateRoom(ctx context.Context, r CreateRequest) (string, error) {
	version := r.Version
	if version == "" {
		version = e.opts.DefaultVersion
	}
	verImpl, ok := Version(gomatrixserverlib.RoomVersion(version))
	if !ok {
		return "", &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNSUPPORTED_ROOM_VERSION", Message: "Unsupported room version " + version}
	}
	content, creators, err := createContent(verImpl, r)
	if err != nil {
		return "", err
	}
	pl := initialPowerLevels(verImpl, r, creators)
	// Refused before the room exists, as Synapse does, rather than
	// leaving a half-made room when the power levels event fails.
	if err := creatorsNotInUsers(verImpl, creators, pl["users"]); err != nil {
		return "", err
	}
	for _, s := range r.InitialState {
		if s.Type == spec.MRoomPowerLevels && s.StateKey == "" {
			var c struct {
				Users json.RawMessage `json:"users"`
			}
			_ = json.Unmarshal(s.Content, &c)
			if err := creatorsNotInUsers(verImpl, creators, c.Users); err != nil {
				return "", err
			}
		}
	}
	h, err := e.newRoom(ctx, verImpl, r.Creator, content)
	if err != nil {
		return "", err
	}
	defer e.unlockRoom(h)
	return h.id, e.sendInitialState(ctx, h, r, pl)
}

// creatorsNotInUsers refuses power levels naming a creator in users
// where the version makes creators infinitely powerful: room version 12
// (MSC4289) forbids it in its auth rules, and Synapse answers such a
// request 400 M_BAD_JSON rather than letting the auth check refuse it
// with 403.
func creatorsNotInUsers(v gomatrixserverlib.IRoomVersion, creators []string, users json.RawMessage) error {
	if !v.PrivilegedCreators() || len(users) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(users, &m) != nil {
		return nil // malformed power levels are the auth rules' to refuse
	}
	for _, c := range creators {
		if _, ok := m[c]; ok {
			return mxerr.BadJSON("Creator %s may not be in the power levels' users in room version %s", c, v.Version())
		}
	}
	return nil
}

// createContent is the m.room.create content for a request, and the
// room's creators (v12 gives additional_creators creator power).
func createContent(v gomatrixserverlib.IRoomVersion, r CreateRequest) (map[string]json.RawMessage, []string, error) {
	content := map[string]json.RawMessage{}
	for k, val := range r.CreationContent {
		content[k] = val
	}
	content["room_version"], _ = json.Marshal(string(v.Version()))
	if !v.PrivilegedCreators() && !isV11OrLater(v) {
		content["creator"], _ = json.Marshal(r.Creator)
	}
	creators := []string{r.Creator}
	raw, ok := content["additional_creators"]
	if !v.PrivilegedCreators() {
		delete(content, "additional_creators")
		return content, creators, nil
	}
	var extra []string
	if ok {
		if err := json.Unmarshal(raw, &extra); err != nil {
			return nil, nil, mxerr.BadJSON("additional_creators must be a list of user IDs")
		}
	}
	if r.preset() == PresetTrustedPrivateChat {
		// createRoom (v1.16): trusted_private_chat invitees get the
		// creator's power, which from v12 means being a creator.
		extra = append(extra, r.trusted()...)
	}
	seen := map[string]bool{r.Creator: true}
	additional := []string{}
	for _, u := range extra {
		if _, err := spec.NewUserID(u, true); err != nil {
			return nil, nil, mxerr.BadJSON("additional_creators: invalid user ID %q", u)
		}
		if !seen[u] {
			seen[u] = true
			additional = append(additional, u)
		}
	}
	if len(additional) == 0 {
		delete(content, "additional_creators")
		return content, creators, nil
	}
	content["additional_creators"], _ = json.Marshal(additional)
	return content, append(creators, additional...), nil
}

// trusted are the invitees trusted_private_chat raises: Invitees, or
// Invite when the caller gave only local ones.
func (r CreateRequest) trusted() []string {
	if len(r.Invitees) > 0 {
		return r.Invitees
	}
	return r.Invite
}

// preset is the request's preset, private_chat when none is given.
func (r CreateRequest) preset() string {
	if r.Preset == "" {
		return PresetPrivateChat
	}
	return r.Preset
}

// newRoom persists a new room's create event and returns its head,
// locked. Before v12 the room ID is random; from v12 it is the create
// event's reference hash, known only once the event is built.
func (e *Engine) newRoom(ctx context.Context, v gomatrixserverlib.IRoomVersion, creator string, content map[string]json.RawMessage) (*roomHead, error) {
	h := &roomHead{version: v}
	if !v.DomainlessRoomIDs() {
		h.id = "!" + randomString(18) + ":" + e.opts.ServerName
	}
	h.mu.Lock()
	createKey := ""
	// A v12 room ID is the create event's hash: the same creator creating
	// the same room twice in one millisecond would get the same ID, so a
	// clash is retried a millisecond later (Synapse does the same).
	for attempt := 0; ; attempt++ {
		pdu, _, err := e.buildAt(ctx, h, SendRequest{Sender: creator, Type: spec.MRoomCreate, StateKey: &createKey, Content: content},
			e.now().Add(time.Duration(attempt)*time.Millisecond))
		if err == nil {
			if v.DomainlessRoomIDs() {
				h.id = "!" + pdu.EventID()[1:]
			}
			_, err = e.persist(ctx, h, pdu, persistOpts{current: true, roomVersion: string(v.Version())})
		}
		if err == nil {
			break
		}
		if v.DomainlessRoomIDs() && errors.Is(err, store.ErrConflict) && attempt < 5 {
			h.id = ""
			continue
		}
		h.mu.Unlock()
		return nil, err
	}
	e.headsMu.Lock()
	h.refs = 1
	e.heads[h.id] = h
	e.headsMu.Unlock()
	return h, nil
}

// sendInitialState sends everything after the create event: the
// creator's join, power levels, canonical alias, the preset's rules,
// initial_state, name, topic and invites. initial_state overrides the
// preset's events of the same type.
func (e *Engine) sendInitialState(ctx context.Context, h *roomHead, r CreateRequest, powerLevels map[string]json.RawMessage) error {
	send := func(typ, stateKey string, content any) error {
		sk := stateKey
		_, err := e.sendLocked(ctx, h, SendRequest{RoomID: h.id, Sender: r.Creator, Type: typ, StateKey: &sk, Content: content})
		return err
	}
	join := map[string]any{"membership": spec.Join}
	for k, v := range r.CreatorContent {
		join[k] = v
	}
	if err := send(spec.MRoomMember, r.Creator, join); err != nil {
		return err
	}
	preset := r.preset()
	if err := send(spec.MRoomPowerLevels, "", powerLevels); err != nil {
		return err
	}
	initial := map[[2]string]bool{}
	for _, s := range r.InitialState {
		initial[[2]string{s.Type, s.StateKey}] = true
	}
	var state []StateEvent
	if r.CanonicalAlias != "" {
		state = append(state, stateOf("m.room.canonical_alias", map[string]string{"alias": r.CanonicalAlias}))
	}
	state = append(state, presetState(preset)...)
	kept := state[:0]
	for _, s := range state {
		if !initial[[2]string{s.Type, s.StateKey}] {
			kept = append(kept, s)
		}
	}
	state = append(append(append(kept, r.InitialState...), r.ExtraState...), nameAndTopic(r)...)
	for _, s := range state {
		if s.Type == spec.MRoomCreate || s.Type == spec.MRoomMember {
			continue
		}
		if err := send(s.Type, s.StateKey, s.Content); err != nil {
			return err
		}
	}
	for _, invitee := range r.Invite {
		content := map[string]any{"membership": spec.Invite}
		if r.IsDirect {
			content["is_direct"] = true
		}
		if r.InviteContent != nil {
			for k, v := range r.InviteContent(invitee) {
				content[k] = v
			}
		}
		if err := send(spec.MRoomMember, invitee, content); err != nil {
			return err
		}
	}
	return nil
}

func stateOf(typ string, content any) StateEvent {
	raw, _ := json.Marshal(content)
	return StateEvent{Type: typ, Content: raw}
}

// presetState is the join rules, history visibility and guest access a
// createRoom preset implies (Synapse's values).
func presetState(preset string) []StateEvent {
	joinRule := spec.Invite
	if preset == PresetPublicChat {
		joinRule = spec.Public
	}
	out := []StateEvent{
		stateOf(spec.MRoomJoinRules, map[string]string{"join_rule": joinRule}),
		stateOf(spec.MRoomHistoryVisibility, map[string]string{"history_visibility": "shared"}),
	}
	if preset != PresetPublicChat {
		out = append(out, stateOf("m.room.guest_access", map[string]string{"guest_access": "can_join"}))
	}
	return out
}

// nameAndTopic are the m.room.name and m.room.topic events of the
// request's name and topic; the topic carries both the plain "topic" and
// the v1.15 "m.topic" text block.
func nameAndTopic(r CreateRequest) []StateEvent {
	var out []StateEvent
	if r.Name != nil {
		out = append(out, stateOf("m.room.name", map[string]string{"name": *r.Name}))
	}
	if r.Topic != nil {
		out = append(out, stateOf("m.room.topic", map[string]any{"topic": *r.Topic,
			"m.topic": map[string]any{"m.text": []map[string]string{{"body": *r.Topic, "mimetype": "text/plain"}}}}))
	}
	return out
}

// initialPowerLevels is Synapse's default power_levels content, with the
// preset's and the request's changes.
func initialPowerLevels(v gomatrixserverlib.IRoomVersion, r CreateRequest, creators []string) map[string]json.RawMessage {
	preset := r.preset()
	users := map[string]int64{}
	if !v.PrivilegedCreators() {
		users[r.Creator] = 100
	}
	if preset == PresetTrustedPrivateChat {
		for _, u := range r.trusted() {
			users[u] = 100
		}
	}
	// From v12 creators may not appear in users, and upgrading must need
	// more than the ordinary admin level 100 (createRoom, v1.16: "set to
	// 150 instead of 100"), as Synapse's default.
	tombstone := int64(100)
	if v.PrivilegedCreators() {
		for _, c := range creators {
			delete(users, c)
		}
		tombstone = 150
	}
	base := map[string]any{
		"users": users, "users_default": 0,
		"events": map[string]int64{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": tombstone,
			"m.room.server_acl": 100, "m.room.encryption": 100,
		},
		"events_default": 0, "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 50,
		"notifications": map[string]int64{"room": 50},
	}
	if preset != PresetPublicChat {
		// Synapse's private presets let any member invite.
		base["invite"] = 0
	}
	out := map[string]json.RawMessage{}
	for k, val := range base {
		out[k], _ = json.Marshal(val)
	}
	for k, val := range r.PowerLevelOverride {
		out[k] = val
	}
	return out
}

func isV11OrLater(v gomatrixserverlib.IRoomVersion) bool {
	_, yes := redactsInContent(v)
	return yes
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
