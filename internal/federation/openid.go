package federation

import (
	"context"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// OpenIDTokens resolves the OpenID tokens local users hand out.
type OpenIDTokens interface {
	OpenIDUser(ctx context.Context, token string) (string, error)
}

func (a *API) registerOpenID(rt *httpapi.Router) {
	if a.d.OpenID == nil {
		return
	}
	// Not X-Matrix signed: third parties, not servers, call it.
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: federationV1 + "/openid/userinfo", Handler: a.openIDUserInfo})
}

func (a *API) openIDUserInfo(r *http.Request, _ *httpapi.Caller) (any, error) {
	token := r.URL.Query().Get("access_token")
	if token == "" {
		return nil, mxerr.MissingToken("Missing access_token")
	}
	userID, err := a.d.OpenID.OpenIDUser(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return map[string]string{"sub": userID}, nil
}
