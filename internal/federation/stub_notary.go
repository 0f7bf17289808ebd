package federation

import "github.com/myelin-chat/myelin/internal/httpapi"

// registerNotary is filled in by notary.go.
func (a *API) registerNotary(rt *httpapi.Router) {}
