package search

import "context"

// UserScreen answers whether the server's reputation feeds hide a user
// from the user directory (issue 16 item 5; reputation.Points.HidesUser):
// the user or the user's server is listed.
type UserScreen interface {
	HidesUser(ctx context.Context, userID string) bool
}

// UsersOption configures the user directory.
type UsersOption func(*Users)

// WithReputation leaves the users the server's reputation feeds list out
// of every search, even for those who share a room with them. It is
// decided at each search, so that removing the rule finds them again.
func WithReputation(r UserScreen) UsersOption {
	return func(u *Users) { u.reputation = r }
}

// hiddenUser is the rule of WithReputation.
func (u *Users) hiddenUser(ctx context.Context, userID string) bool {
	return u.reputation != nil && u.reputation.HidesUser(ctx, userID)
}
