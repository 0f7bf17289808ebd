package directory

import "context"

// RoomScreen answers whether the server's reputation feeds hide a room
// from listings (issue 16 item 5; reputation.Points.HidesRoom).
type RoomScreen interface {
	HidesRoom(ctx context.Context, roomID string) bool
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
