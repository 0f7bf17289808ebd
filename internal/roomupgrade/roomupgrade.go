// Package roomupgrade carries out room upgrades (client-server spec
// "Room Upgrades", server behaviour as Synapse does it): it checks that
// the user may upgrade, plans the replacement room from the old room's
// current state, creates it, tombstones the old room and moves its
// aliases and directory entry.
package roomupgrade

import (
	"context"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Service upgrades rooms.
type Service struct {
	serverName string
	rooms      *rooms.Engine
	aliases    *aliases.Service
	dir        *directory.Service
	profile    func(ctx context.Context, localpart string) map[string]any
}

// Options are the services an upgrade uses. Profile is the upgrading
// user's member event content (displayname, avatar_url) in the new room.
type Options struct {
	ServerName string
	Rooms      *rooms.Engine
	Aliases    *aliases.Service
	Directory  *directory.Service
	Profile    func(ctx context.Context, localpart string) map[string]any
}

// New makes the upgrade service.
func New(o Options) *Service {
	return &Service{serverName: o.ServerName, rooms: o.Rooms, aliases: o.Aliases, dir: o.Directory, profile: o.Profile}
}

// Upgrader is the local user upgrading a room.
type Upgrader struct {
	UserID    string
	Localpart string
}

// Upgrade replaces roomID by a new room of version newVersion and returns
// the replacement's ID. additionalCreators are the new room's further
// creators where the version has privileged creators.
func (s *Service) Upgrade(ctx context.Context, c Upgrader, roomID, newVersion string, additionalCreators []string) (string, error) {
	version, ok := rooms.Version(gomatrixserverlib.RoomVersion(newVersion))
	if !ok {
		return "", &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNSUPPORTED_ROOM_VERSION", Message: "Your homeserver does not support this room version"}
	}
	u, err := s.plan(ctx, roomID, c, newVersion, additionalCreators, version)
	if err != nil {
		return "", err
	}
	return s.perform(ctx, u)
}
