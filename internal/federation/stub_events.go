package federation

import "github.com/myelin-chat/myelin/internal/httpapi"

// registerEvents is filled in by events.go.
func (a *API) registerEvents(rt *httpapi.Router) {}
