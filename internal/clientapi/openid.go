package clientapi

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerOpenID(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/user/{userId}/openid/request_token", Auth: httpapi.AuthRequired,
		AllowGuest: true, Handler: a.requestOpenIDToken})
}

// requestOpenIDToken issues a token a third party (an integration
// manager, a widget) checks with this server's /openid/userinfo to learn
// who the user is; it grants no access to the account.
func (a *API) requestOpenIDToken(r *http.Request, c *httpapi.Caller) (any, error) {
	if r.PathValue("userId") != c.UserID {
		return nil, mxerr.Forbidden("Cannot request OpenID tokens for other users")
	}
	if err := httpapi.ReadOptionalJSON(r, &struct{}{}); err != nil {
		return nil, err
	}
	token, lifetime, err := a.accounts.CreateOpenIDToken(r.Context(), c.Localpart)
	if err != nil {
		return nil, err
	}
	return map[string]any{"access_token": token, "token_type": "Bearer",
		"matrix_server_name": a.cfg.ServerName, "expires_in": int64(lifetime.Seconds())}, nil
}
