package federation

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
)

func (a *API) serverVersion(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{"server": map[string]string{"name": "Myelin", "version": a.d.Version}}, nil
}

// serverKeys answers with the server's verify keys, signed by itself,
// re-signed when the previous answer is half-way through its validity.
func (a *API) serverKeys(*http.Request, *httpapi.Caller) (any, error) {
	now := a.now()
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	if a.keys != nil && now.Before(a.keysTill) {
		return json.RawMessage(a.keys), nil
	}
	body, err := json.Marshal(map[string]any{
		"server_name": a.d.ServerName,
		"verify_keys": map[string]any{
			a.d.Key.ID: map[string]string{"key": base64.RawStdEncoding.EncodeToString(a.d.Key.Public())},
		},
		"old_verify_keys": a.oldVerifyKeys(),
		"valid_until_ts":  now.Add(remote.KeyValidity).UnixMilli(),
	})
	if err != nil {
		return nil, err
	}
	signed, err := gomatrixserverlib.SignJSON(a.d.ServerName, gomatrixserverlib.KeyID(a.d.Key.ID), a.d.Key.Private, body)
	if err != nil {
		return nil, err
	}
	a.keys, a.keysTill = signed, now.Add(remote.KeyValidity/2)
	return json.RawMessage(signed), nil
}

func (a *API) oldVerifyKeys() map[string]any {
	out := map[string]any{}
	for _, k := range a.d.OldKeys {
		out[k.ID] = map[string]any{"key": base64.RawStdEncoding.EncodeToString(k.Public), "expired_ts": k.ExpiredTS}
	}
	return out
}
