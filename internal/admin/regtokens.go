package admin

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func (a *API) listTokens(r *http.Request, _ *httpapi.Caller) (any, error) {
	tokens, err := a.store.ListRegistrationTokens(r.Context())
	if err != nil {
		return nil, err
	}
	if v := r.URL.Query().Get("valid"); v != "" {
		want := v == "true"
		now := a.now().UnixMilli()
		kept := tokens[:0]
		for _, t := range tokens {
			if t.Valid(now) == want {
				kept = append(kept, t)
			}
		}
		tokens = kept
	}
	return map[string]any{"registration_tokens": tokens}, nil
}

// tokenAlphabet is the spec's registration token alphabet.
const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"

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
	t := store.RegistrationToken{UsesAllowed: req.UsesAllowed, ExpiryTime: req.ExpiryTime}
	if err := checkLimits(req.UsesAllowed, req.ExpiryTime, a.now().UnixMilli()); err != nil {
		return nil, err
	}
	if req.Token != nil {
		t.Token = *req.Token
		if len(t.Token) == 0 || len(t.Token) > 64 || !onlyAlphabet(t.Token) {
			return nil, mxerr.InvalidParam("token must consist only of [A-Za-z0-9._~-] and be at most 64 characters")
		}
	} else {
		n := 16
		if req.Length != nil {
			if *req.Length < 1 || *req.Length > 64 {
				return nil, mxerr.InvalidParam("length must be between 1 and 64")
			}
			n = *req.Length
		}
		t.Token = randomToken(n)
	}
	if err := a.store.CreateRegistrationToken(r.Context(), t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, &mxerr.Error{Status: http.StatusBadRequest, Code: "M_INVALID_PARAM", Message: "Token already exists"}
		}
		return nil, err
	}
	return t, nil
}

func checkLimits(uses, expiry *int64, now int64) error {
	if uses != nil && *uses < 0 {
		return mxerr.InvalidParam("uses_allowed must be a non-negative integer or null")
	}
	if expiry != nil && *expiry < now {
		return mxerr.InvalidParam("expiry_time must not be in the past")
	}
	return nil
}

func onlyAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(tokenAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = tokenAlphabet[int(b[i])%len(tokenAlphabet)]
	}
	return string(b)
}

func (a *API) getToken(r *http.Request, _ *httpapi.Caller) (any, error) {
	t, err := a.store.GetRegistrationToken(r.Context(), r.PathValue("token"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("No such registration token: %s", strconv.Quote(r.PathValue("token")))
	}
	return t, err
}

func (a *API) updateToken(r *http.Request, c *httpapi.Caller) (any, error) {
	// Absent fields keep their value; null clears the limit.
	var req map[string]json.RawMessage
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	cur, err := a.store.GetRegistrationToken(r.Context(), r.PathValue("token"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("No such registration token")
	}
	if err != nil {
		return nil, err
	}
	for key, dst := range map[string]**int64{"uses_allowed": &cur.UsesAllowed, "expiry_time": &cur.ExpiryTime} {
		raw, ok := req[key]
		if !ok {
			continue
		}
		var v *int64
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, mxerr.InvalidParam("%s must be an integer or null", key)
		}
		*dst = v
	}
	if err := checkLimits(cur.UsesAllowed, cur.ExpiryTime, a.now().UnixMilli()); err != nil {
		return nil, err
	}
	if err := a.store.UpdateRegistrationToken(r.Context(), cur.Token, cur.UsesAllowed, cur.ExpiryTime); err != nil {
		return nil, err
	}
	return a.getToken(r, c)
}

func (a *API) deleteToken(r *http.Request, _ *httpapi.Caller) (any, error) {
	err := a.store.DeleteRegistrationToken(r.Context(), r.PathValue("token"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("No such registration token")
	}
	return struct{}{}, err
}
