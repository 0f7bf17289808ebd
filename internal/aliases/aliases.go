// Package aliases owns room aliases: their syntax, who may create and
// delete them, resolving this server's aliases, moving them on a room
// upgrade, and the rule that a room's m.room.canonical_alias names only
// local aliases that point at the room. Other servers' aliases are
// resolved by the caller through federation.
package aliases

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"unicode"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the alias table and the membership list alias answers read.
type Store interface {
	CreateAlias(ctx context.Context, alias, roomID, creator string) error
	ResolveAlias(ctx context.Context, alias string) (roomID, creator string, err error)
	DeleteAlias(ctx context.Context, alias string) error
	RoomAliases(ctx context.Context, roomID string) ([]string, error)
	MoveAliases(ctx context.Context, fromRoom, toRoom string) error
	RoomMembers(ctx context.Context, roomID string) ([]store.RoomMembership, error)
}

// Service manages this server's room aliases.
type Service struct {
	serverName string
	st         Store
	rooms      *rooms.Engine
	dir        *directory.Service
}

// New makes the alias service. dir decides who may delete others'
// aliases (the same rule as editing the room's directory entry).
func New(serverName string, st Store, engine *rooms.Engine, dir *directory.Service) *Service {
	return &Service{serverName: serverName, st: st, rooms: engine, dir: dir}
}

// MaxLength is Synapse's limit on room aliases.
const MaxLength = 255

// Check validates a room alias, returning its server name.
func Check(alias string) (string, error) {
	local, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || local == "" || server == "" {
		return "", mxerr.InvalidParam("Room alias invalid")
	}
	if strings.ContainsFunc(local, unicode.IsSpace) {
		return "", mxerr.InvalidParam("Invalid characters in room alias")
	}
	if config.ValidateServerName(server) != nil {
		return "", mxerr.InvalidParam("Room alias invalid: bad server name")
	}
	return server, nil
}

// Local reports whether alias belongs to this server.
func (s *Service) Local(server string) bool { return server == s.serverName }

func notFound(alias string) error { return mxerr.NotFound("Room alias %s not found", alias) }

// Resolve is the room a local alias points at, and who created the
// alias; M_NOT_FOUND if none.
func (s *Service) Resolve(ctx context.Context, alias string) (roomID, creator string, err error) {
	roomID, creator, err = s.st.ResolveAlias(ctx, alias)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", notFound(alias)
	}
	return roomID, creator, err
}

// Taken reports whether a local alias exists.
func (s *Service) Taken(ctx context.Context, alias string) (bool, error) {
	_, _, err := s.st.ResolveAlias(ctx, alias)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Lookup resolves a local alias to its room and the servers of the
// room's joined members, this server first (the spec's "servers").
func (s *Service) Lookup(ctx context.Context, alias string) (roomID string, servers []string, err error) {
	roomID, _, err = s.Resolve(ctx, alias)
	if err != nil {
		return "", nil, err
	}
	members, err := s.st.RoomMembers(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	seen := map[string]bool{s.serverName: true}
	var others []string
	for _, m := range members {
		if m.Membership != spec.Join {
			continue
		}
		if _, server, ok := strings.Cut(m.RoomID, ":"); ok && !seen[server] { // RoomID holds the user ID here
			seen[server] = true
			others = append(others, server)
		}
	}
	sort.Strings(others)
	return roomID, append([]string{s.serverName}, others...), nil
}

// Create adds a local alias for a room on behalf of userID. Unless the
// user is a server admin they must be joined to the room (Synapse's
// require_membership_for_aliases, on by default).
func (s *Service) Create(ctx context.Context, userID string, isAdmin bool, alias, roomID string) error {
	server, err := Check(alias)
	if err != nil {
		return err
	}
	if len(alias) > MaxLength {
		return mxerr.InvalidParam("Can't create aliases longer than %d characters", MaxLength)
	}
	if server != s.serverName {
		return mxerr.InvalidParam("Room alias must be local")
	}
	if _, err := s.rooms.RoomVersion(ctx, roomID); err != nil {
		return err
	}
	if !isAdmin {
		if m, err := s.rooms.MembershipOf(ctx, roomID, userID); err != nil {
			return err
		} else if m != spec.Join {
			return mxerr.Forbidden("You must be in the room to create an alias for it")
		}
	}
	return s.add(ctx, alias, roomID, userID)
}

// add stores an alias; an existing one answers 409.
func (s *Service) add(ctx context.Context, alias, roomID, creator string) error {
	err := s.st.CreateAlias(ctx, alias, roomID, creator)
	if errors.Is(err, store.ErrConflict) {
		return &mxerr.Error{Status: http.StatusConflict, Code: "M_UNKNOWN", Message: "Room alias " + alias + " already exists"}
	}
	return err
}

// ReserveForNewRoom checks that the alias a new room asks for
// (room_alias_name) is free: M_ROOM_IN_USE if not. It returns the full
// alias, "" when no name is given.
func (s *Service) ReserveForNewRoom(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	if strings.ContainsAny(name, ":# \t\n") {
		return "", mxerr.InvalidParam("Invalid characters in room_alias_name")
	}
	alias := "#" + name + ":" + s.serverName
	taken, err := s.Taken(ctx, alias)
	if err != nil {
		return "", err
	}
	if taken {
		return "", &mxerr.Error{Status: http.StatusBadRequest, Code: "M_ROOM_IN_USE", Message: "Room alias already taken"}
	}
	return alias, nil
}

// AddForNewRoom stores the alias a new room was created with.
func (s *Service) AddForNewRoom(ctx context.Context, alias, roomID, creator string) error {
	return s.add(ctx, alias, roomID, creator)
}

// Delete removes a local alias. Its creator, server admins and members
// who may change the room's directory entry may; the room's canonical
// alias event then loses the alias when the user may send it, and the
// alias is deleted all the same when they may not, as the spec
// recommends.
func (s *Service) Delete(ctx context.Context, userID string, isAdmin bool, alias string) error {
	if _, err := Check(alias); err != nil {
		return err
	}
	roomID, creator, err := s.Resolve(ctx, alias)
	if err != nil {
		return err
	}
	if creator != userID {
		ok, err := s.dir.MayEditListing(ctx, userID, isAdmin, roomID)
		if err != nil {
			return err
		}
		if !ok {
			return mxerr.Forbidden("You don't have permission to delete the alias")
		}
	}
	if err := s.st.DeleteAlias(ctx, alias); errors.Is(err, store.ErrNotFound) {
		return notFound(alias)
	} else if err != nil {
		return err
	}
	if err := s.dropCanonical(ctx, userID, roomID, alias); err != nil {
		if _, ok := mxerr.As(err); !ok {
			return err
		}
	}
	return nil
}

// dropCanonical removes an alias from the room's m.room.canonical_alias
// event (alias and alt_aliases), sending the change as userID.
func (s *Service) dropCanonical(ctx context.Context, userID, roomID, alias string) error {
	state, err := s.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return err
	}
	ev, err := s.rooms.StateEvent(ctx, state, "m.room.canonical_alias", "")
	if err != nil || ev == nil {
		return err
	}
	content := map[string]json.RawMessage{}
	if json.Unmarshal(ev.Content(), &content) != nil {
		return nil
	}
	changed := false
	var cur string
	if json.Unmarshal(content["alias"], &cur) == nil && cur == alias {
		delete(content, "alias")
		changed = true
	}
	var alt []string
	if raw, ok := content["alt_aliases"]; ok && json.Unmarshal(raw, &alt) == nil {
		kept := alt[:0:0]
		for _, al := range alt {
			if al != alias {
				kept = append(kept, al)
			}
		}
		if len(kept) != len(alt) {
			changed = true
			if len(kept) == 0 {
				delete(content, "alt_aliases")
			} else {
				content["alt_aliases"], _ = json.Marshal(kept)
			}
		}
	}
	if !changed {
		return nil
	}
	raw, _ := json.Marshal(content)
	key := ""
	_, err = s.rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: userID, Type: "m.room.canonical_alias", StateKey: &key, Content: json.RawMessage(raw)})
	return err
}

// ForRoom lists a room's local aliases.
func (s *Service) ForRoom(ctx context.Context, roomID string) ([]string, error) {
	return s.st.RoomAliases(ctx, roomID)
}

// Move points every alias of one room at another (room upgrades).
func (s *Service) Move(ctx context.Context, fromRoom, toRoom string) error {
	return s.st.MoveAliases(ctx, fromRoom, toRoom)
}

// CheckCanonical applies Synapse's rule that a room's canonical aliases
// must be local aliases that point at the room (M_BAD_ALIAS). Other
// servers' aliases are only checked for shape (as Synapse does, including
// the server name): verifying them would take a federation query.
func (s *Service) CheckCanonical(ctx context.Context, roomID string, content map[string]json.RawMessage) error {
	var list []string
	var alias string
	if raw, ok := content["alias"]; ok {
		if err := json.Unmarshal(raw, &alias); err != nil {
			return mxerr.BadJSON("alias must be a string")
		}
		if alias != "" {
			list = append(list, alias)
		}
	}
	if raw, ok := content["alt_aliases"]; ok {
		var alt []string
		if err := json.Unmarshal(raw, &alt); err != nil {
			return mxerr.BadJSON("alt_aliases must be a list of strings")
		}
		list = append(list, alt...)
	}
	for _, al := range list {
		// Synapse's RoomAlias.is_valid: a sigil, a colon and a valid
		// server name. Unlike Check it allows any localpart: an alias
		// another server made is not ours to judge.
		_, server, ok := strings.Cut(al, ":")
		if !strings.HasPrefix(al, "#") || !ok || config.ValidateServerName(server) != nil {
			return mxerr.InvalidParam("Invalid alias %q", al)
		}
		if !strings.HasSuffix(al, ":"+s.serverName) {
			continue
		}
		target, _, err := s.st.ResolveAlias(ctx, al)
		if errors.Is(err, store.ErrNotFound) || err == nil && target != roomID {
			return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_BAD_ALIAS", Message: "Alias " + al + " does not point to this room"}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
