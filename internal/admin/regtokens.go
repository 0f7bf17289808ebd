package admin

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/regtokens"
)

func (a *API) listTokens(r *http.Request, _ *httpapi.Caller) (any, error) {
	var valid *bool
	if v := r.URL.Query().Get("valid"); v != "" {
		want := v == "true"
		valid = &want
	}
	tokens, err := a.tokens.List(r.Context(), valid)
	if err != nil {
		return nil, err
	}
	return map[string]any{"registration_tokens": tokens}, nil
}

func (a *API) newToken(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req struct {
		Token       *string `json:"token"`
		UsesAllowed *int64  `json:"uses_allowed"`
		ExpiryTime  *int64  `json:"expiry_time"`
		Length      *int    `json:"length"`
	}
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	return a.tokens.Create(r.Context(), regtokens.NewToken{Token: req.Token, Length: req.Length, UsesAllowed: req.UsesAllowed, ExpiryTime: req.ExpiryTime})
}

func (a *API) getToken(r *http.Request, _ *httpapi.Caller) (any, error) {
	return a.tokens.Get(r.Context(), r.PathValue("token"))
}

func (a *API) updateToken(r *http.Request, _ *httpapi.Caller) (any, error) {
	// Absent fields keep their value; null clears the limit.
	var req map[string]json.RawMessage
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	return a.tokens.Update(r.Context(), r.PathValue("token"), func(cur *regtokens.Token) error {
		for key, dst := range map[string]**int64{"uses_allowed": &cur.UsesAllowed, "expiry_time": &cur.ExpiryTime} {
			raw, ok := req[key]
			if !ok {
				continue
			}
			var v *int64
			if err := json.Unmarshal(raw, &v); err != nil {
				return mxerr.InvalidParam("%s must be an integer or null", key)
			}
			*dst = v
		}
		return nil
	})
}

func (a *API) deleteToken(r *http.Request, _ *httpapi.Caller) (any, error) {
	return struct{}{}, a.tokens.Delete(r.Context(), r.PathValue("token"))
}
