package remote

import (
	"context"
	"net/http"
	"net/url"

	"github.com/myelin-chat/myelin/internal/directory"
)

// RoomHierarchy asks another server for a room's entry in a space
// hierarchy, its children and the children it will not describe to this
// server (GET /_matrix/federation/v1/hierarchy/{roomId}), for the client
// /hierarchy and /room_summary of rooms this server is not in. The
// answer is read up to maxQueryAnswer bytes; a longer one fails as a
// server that could not be reached (502), so that the walk treats the
// server as down.
func (f *Service) RoomHierarchy(ctx context.Context, server, roomID string, suggestedOnly bool) (*directory.RemoteHierarchy, error) {
	path := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(roomID)
	if suggestedOnly {
		path += "?suggested_only=true"
	}
	var out directory.RemoteHierarchy
	if err := f.boundedRequest(ctx, server, http.MethodGet, path, nil, &out, maxQueryAnswer); err != nil {
		return nil, f.remoteError(ctx, server, err)
	}
	return &out, nil
}
