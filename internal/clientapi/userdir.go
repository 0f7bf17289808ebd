package clientapi

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/search"
)

// User directory (spec "User directory"); guests may not search it.

func (a *API) registerUserDirectory(rt *httpapi.Router) {
	if a.users == nil {
		return
	}
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/user_directory/search", Auth: httpapi.AuthRequired, Handler: a.searchUsers})
}

func (a *API) searchUsers(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.SearchTerm == nil {
		return nil, mxerr.MissingParam("Missing search_term")
	}
	limit := search.DirectoryDefaultLimit
	if req.Limit != nil {
		if *req.Limit < 0 {
			return nil, mxerr.InvalidParam("limit must not be negative")
		}
		limit = min(*req.Limit, search.DirectoryMaxLimit)
	}
	users, limited, err := a.users.Search(r.Context(), c.UserID, *req.SearchTerm, limit)
	if err != nil {
		return nil, err
	}
	return map[string]any{"results": users, "limited": limited}, nil
}
