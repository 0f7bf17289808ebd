package roomadmin

import (
	"context"

	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Hierarchy is a page of a space's walk as a server admin (Synapse's
// admin room hierarchy): every room this server knows below the root,
// whatever the admin's membership and the rooms' join rules, other
// servers not asked (Synapse's omit_remote_room_hierarchy). The root
// must be a room this server knows.
func (s *Service) Hierarchy(ctx context.Context, req directory.HierarchyRequest) ([]directory.HierarchyRoom, bool, error) {
	if s.o.Directory == nil {
		return nil, false, mxerr.NotFound("Room not found")
	}
	if _, err := s.currentState(ctx, req.Root); err != nil {
		return nil, false, err
	}
	req.Admin = true
	return directory.NewSpaces(s.o.Directory, s.o.ServerName, nil).Hierarchy(ctx, req)
}
