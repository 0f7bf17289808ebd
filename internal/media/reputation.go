package media

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// MediaScreen answers whether the server's reputation feeds list a
// server, or a room the media was posted in, whose media this server
// neither fetches nor serves (issue 16 item 5;
// reputation.Points.RefusesMedia).
type MediaScreen interface {
	RefusesMedia(ctx context.Context, server, mediaID string) bool
}

// refusedByReputation is the one check of the reputation feeds on media,
// made before media is looked up, so that it covers downloads and
// thumbnails alike: media of a listed server is not fetched, and the
// copies already stored are not served (404 M_NOT_FOUND, as for
// quarantined media). The copies are kept: removing the rule serves them
// again (issue 16 item 6). Media posted in a listed room is refused too,
// this server's own included: the reputation package's index records
// the rooms of the media events reference.
func (s *Service) refusedByReputation(ctx context.Context, server, mediaID string) error {
	if s.reputation != nil && s.reputation.RefusesMedia(ctx, server, mediaID) {
		return mxerr.NotFound("Not found")
	}
	return nil
}
