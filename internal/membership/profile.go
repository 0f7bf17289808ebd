package membership

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// ProfileChanged sends a fresh join event into every room a local user is
// joined to when their display name or avatar (field) changed, as Synapse
// does, so that member lists and timelines show the new profile. Other
// profile fields are not part of membership events.
func (s *Service) ProfileChanged(ctx context.Context, localpart, field string) error {
	if field != "displayname" && field != "avatar_url" {
		return nil
	}
	userID := "@" + localpart + ":" + s.serverName
	joined, err := s.JoinedRooms(ctx, userID)
	if err != nil {
		return err
	}
	content := s.MemberProfile(ctx, localpart)
	for _, roomID := range joined {
		_, err := s.rooms.SetMembership(ctx, rooms.MembershipRequest{
			Sender: userID, RoomID: roomID, Target: userID, Membership: spec.Join, Content: content,
		})
		if err != nil {
			// One room refusing the update (the user lost the right to
			// change their membership there) must not fail the others.
			if _, ok := mxerr.As(err); ok {
				continue
			}
			return err
		}
	}
	return nil
}

// MutualRooms is a page of the rooms two users are both joined to, by
// room ID after after (limit of them), and how many there are in all
// (MSC2666).
func (s *Service) MutualRooms(ctx context.Context, userA, userB, after string, limit int) (ids []string, count int64, err error) {
	if ids, err = s.store.MutualRooms(ctx, userA, userB, after, limit); err != nil {
		return nil, 0, err
	}
	count, err = s.store.CountMutualRooms(ctx, userA, userB)
	return ids, count, err
}
