package federation

import "github.com/myelin-chat/myelin/internal/httpapi"

// registerQueries is filled in by queries.go.
func (a *API) registerQueries(rt *httpapi.Router) {}
