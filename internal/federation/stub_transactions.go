package federation

import "github.com/myelin-chat/myelin/internal/httpapi"

// registerTransactions is filled in by transactions.go.
func (a *API) registerTransactions(rt *httpapi.Router) {}
