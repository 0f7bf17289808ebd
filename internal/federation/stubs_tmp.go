package federation

import "github.com/myelin-chat/myelin/internal/httpapi"

func (a *API) registerNotary(rt *httpapi.Router)       {}
func (a *API) registerTransactions(rt *httpapi.Router) {}
func (a *API) registerMembership(rt *httpapi.Router)   {}
func (a *API) registerEvents(rt *httpapi.Router)       {}
func (a *API) registerQueries(rt *httpapi.Router)      {}
