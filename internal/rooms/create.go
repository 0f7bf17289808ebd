package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
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
	IsDirect           bool
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
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	if err != nil {
		return "", &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNSUPPORTED_ROOM_VERSION", Message: "Unsupported room version " + version}
	}
	createContent := map[string]json.RawMessage{}
	for k, v := range r.CreationContent {
		createContent[k] = v
	}
	createContent["room_version"], _ = json.Marshal(version)
	if !verImpl.PrivilegedCreators() && !isV11OrLater(verImpl) {
		createContent["creator"], _ = json.Marshal(r.Creator)
	}
	creators := []string{r.Creator}
	if raw, ok := createContent["additional_creators"]; ok {
		if !verImpl.PrivilegedCreators() {
			delete(createContent, "additional_creators")
		} else {
			var extra []string
			if err := json.Unmarshal(raw, &extra); err != nil {
				return "", mxerr.BadJSON("additional_creators must be a list of user IDs")
			}
			for _, u := range extra {
				if _, err := spec.NewUserID(u, true); err != nil {
					return "", mxerr.BadJSON("additional_creators: invalid user ID %q", u)
				}
			}
			creators = append(creators, extra...)
		}
	}

	roomID := ""
	if !verImpl.DomainlessRoomIDs() {
		roomID = "!" + randomString(18) + ":" + e.opts.ServerName
	}
	h := &roomHead{id: roomID, version: verImpl}
	h.mu.Lock()
	createKey := ""
	pdu, _, err := e.build(ctx, h, SendRequest{Sender: r.Creator, Type: spec.MRoomCreate, StateKey: &createKey, Content: createContent})
	if err != nil {
		h.mu.Unlock()
		return "", err
	}
	if roomID == "" {
		roomID = "!" + pdu.EventID()[1:]
	}
	h.id = roomID
	if _, err := e.persist(ctx, h, pdu, persistOpts{current: true, roomVersion: version}); err != nil {
		h.mu.Unlock()
		return "", err
	}
	h.loaded = true
	e.headsMu.Lock()
	e.heads[roomID] = h
	e.headsMu.Unlock()
	defer h.mu.Unlock()

	send := func(typ, stateKey string, content any) error {
		sk := stateKey
		_, err := e.sendLocked(ctx, h, SendRequest{RoomID: roomID, Sender: r.Creator, Type: typ, StateKey: &sk, Content: content})
		return err
	}
	join := map[string]any{"membership": spec.Join}
	for k, v := range r.CreatorContent {
		join[k] = v
	}
	if err := send(spec.MRoomMember, r.Creator, join); err != nil {
		return roomID, err
	}
	initial := map[[2]string]bool{}
	for _, s := range r.InitialState {
		initial[[2]string{s.Type, s.StateKey}] = true
	}
	preset := r.Preset
	if preset == "" {
		preset = PresetPrivateChat
	}
	pl, err := e.initialPowerLevels(verImpl, r, preset, creators)
	if err != nil {
		return roomID, err
	}
	if err := send(spec.MRoomPowerLevels, "", pl); err != nil {
		return roomID, err
	}
	if r.CanonicalAlias != "" && !initial[[2]string{"m.room.canonical_alias", ""}] {
		if err := send("m.room.canonical_alias", "", map[string]string{"alias": r.CanonicalAlias}); err != nil {
			return roomID, err
		}
	}
	joinRule, history, guest := spec.Invite, "shared", "can_join"
	if preset == PresetPublicChat {
		joinRule, guest = spec.Public, "forbidden"
	}
	for _, s := range []struct {
		typ     string
		content any
		skip    bool
	}{
		{spec.MRoomJoinRules, map[string]string{"join_rule": joinRule}, false},
		{spec.MRoomHistoryVisibility, map[string]string{"history_visibility": history}, false},
		{"m.room.guest_access", map[string]string{"guest_access": guest}, preset == PresetPublicChat},
	} {
		if s.skip || initial[[2]string{s.typ, ""}] {
			continue
		}
		if err := send(s.typ, "", s.content); err != nil {
			return roomID, err
		}
	}
	for _, s := range append(append([]StateEvent{}, r.InitialState...), r.ExtraState...) {
		if s.Type == spec.MRoomCreate || s.Type == spec.MRoomMember {
			continue
		}
		if err := send(s.Type, s.StateKey, s.Content); err != nil {
			return roomID, err
		}
	}
	if r.Name != nil {
		if err := send("m.room.name", "", map[string]string{"name": *r.Name}); err != nil {
			return roomID, err
		}
	}
	if r.Topic != nil {
		topic := map[string]any{"topic": *r.Topic, "m.topic": map[string]any{"m.text": []map[string]string{{"body": *r.Topic, "mimetype": "text/plain"}}}}
		if err := send("m.room.topic", "", topic); err != nil {
			return roomID, err
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
			return roomID, err
		}
	}
	return roomID, nil
}

// initialPowerLevels is Synapse's default power_levels content, with the
// preset's and the request's changes.
func (e *Engine) initialPowerLevels(v gomatrixserverlib.IRoomVersion, r CreateRequest, preset string, creators []string) (map[string]json.RawMessage, error) {
	users := map[string]int64{}
	if !v.PrivilegedCreators() {
		users[r.Creator] = 100
	}
	if preset == PresetTrustedPrivateChat {
		for _, u := range r.Invite {
			users[u] = 100
		}
	}
	for _, c := range creators {
		if v.PrivilegedCreators() {
			delete(users, c) // v12: creators may not appear in users
		}
	}
	base := map[string]any{
		"users": users, "users_default": 0,
		"events": map[string]int64{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
			"m.room.server_acl": 100, "m.room.encryption": 100,
		},
		"events_default": 0, "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
		"notifications": map[string]int64{"room": 50},
	}
	out := map[string]json.RawMessage{}
	for k, val := range base {
		out[k], _ = json.Marshal(val)
	}
	for k, val := range r.PowerLevelOverride {
		out[k] = val
	}
	return out, nil
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
