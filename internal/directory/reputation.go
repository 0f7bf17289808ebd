package directory

import "context"

// RoomScreen answers whether the server's reputation feeds hide a room
// from listings (issue 16 item 5; reputation.Points.HidesRoom).
type RoomScreen interface {
	HidesRoom(ctx context.Context, roomID string) bool
}

// UserRoomScreen answers whether a user's own reputation filter
// (reputation.UserFilters, issue 16 item 7) lists a room: it is then
// hidden from that user's room directory, hierarchies and room
// summaries, as the server's feeds hide it from everyone.
type UserRoomScreen interface {
	HidesRoomFor(ctx context.Context, userID, roomID string) bool
}

// Option configures the listing service.
type Option func(*Service)

// WithReputation hides the rooms the server's reputation feeds list from
// the public room directory (this server's and what other servers ask of
// it), space hierarchies (the client's and federation's) and room
// summaries.
func WithReputation(r RoomScreen) Option {
	return func(s *Service) { s.reputation = r }
}

// hiddenRoom is the one rule of the listings above: a listed room is
// hidden from everyone but its joined members, who see it anyway (and,
// for other servers, from all of them). It is decided at each request,
// so that removing the rule lists the room again.
func (s *Service) hiddenRoom(ctx context.Context, roomID string) bool {
	return s.reputation != nil && s.reputation.HidesRoom(ctx, roomID)
}

// WithUserReputation hides the rooms a user's own reputation filter
// lists from that user's listings (the client's public room directory,
// space hierarchies and room summaries), for them alone.
func WithUserReputation(r UserRoomScreen) Option {
	return func(s *Service) { s.userReputation = r }
}

// HiddenFor reports whether a room is hidden from userID's listings:
// the server's feeds list it (hiddenRoom) or the user's own filter
// does. "" (an anonymous caller, another server) has no filter of its
// own. Like hiddenRoom, it is decided at each request.
func (s *Service) HiddenFor(ctx context.Context, userID, roomID string) bool {
	if s.hiddenRoom(ctx, roomID) {
		return true
	}
	return userID != "" && s.userReputation != nil && s.userReputation.HidesRoomFor(ctx, userID, roomID)
}
