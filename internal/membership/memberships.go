package membership

import "context"

// Memberships is every room a user has a membership in, by room ID
// (Synapse's admin API GET /users/{userId}/memberships).
func (s *Service) Memberships(ctx context.Context, userID string) (map[string]string, error) {
	ms, err := s.store.MembershipsOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		out[m.RoomID] = m.Membership
	}
	return out, nil
}
