package accounts

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// RegistrationScreen answers whether the server's reputation feeds list
// the user ID a registration asks for (issue 16 item 5;
// reputation.Points.RefusesRegistration), e.g. through a glob rule
// "@spam*:example.org".
type RegistrationScreen interface {
	RefusesRegistration(ctx context.Context, localpart string) (reason string, refused bool)
}

// refuseListedLocalpart refuses a user's own registration of a listed
// user ID with 403 M_FORBIDDEN, as Synapse refuses a registration its
// spam checker denies (check_registration_for_spam), before anything is
// created. Only the client API's /register (and /register/available)
// ask: accounts an admin creates (shared-secret registration, the admin
// API, myelin create-account) are the admin's own decision.
func (s *Service) refuseListedLocalpart(ctx context.Context, lp string) error {
	if s.opts.Reputation == nil {
		return nil
	}
	if _, refused := s.opts.Reputation.RefusesRegistration(ctx, lp); refused {
		return mxerr.Forbidden("Registration of this user ID is blocked by this server's reputation feeds")
	}
	return nil
}
