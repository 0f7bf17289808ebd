package federation

import "github.com/myelin-chat/myelin/internal/httpapi"

// registerMembership is filled in by membership.go.
func (a *API) registerMembership(rt *httpapi.Router) {}
