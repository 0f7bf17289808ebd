// Package federation serves the server-server API. So far: the server's
// signing keys and its version.
package federation

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/signing"
)

// keyValidity is how long other servers may cache our key answer before
// asking again (Synapse's key_refresh_interval default).
const keyValidity = 24 * time.Hour

// API is the server-server API.
type API struct {
	serverName string
	key        signing.Key
	version    string
	now        func() time.Time

	mu       sync.Mutex
	keys     []byte
	keysTill time.Time
}

// New makes the server-server API.
func New(serverName string, key signing.Key, version string) *API {
	return &API{serverName: serverName, key: key, version: version, now: time.Now}
}

// Register adds the server-server routes.
func (a *API) Register(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/federation/v1/version", Handler: a.serverVersion})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/key/v2/server", Handler: a.serverKeys})
	// The key ID suffix is deprecated but still sent by old servers.
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/key/v2/server/{keyId}", Handler: a.serverKeys})
}

func (a *API) serverVersion(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{"server": map[string]string{"name": "Myelin", "version": a.version}}, nil
}

// serverKeys answers with the server's verify keys, signed by itself,
// re-signed when the previous answer is half-way through its validity.
func (a *API) serverKeys(*http.Request, *httpapi.Caller) (any, error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys != nil && now.Before(a.keysTill) {
		return json.RawMessage(a.keys), nil
	}
	body, err := json.Marshal(map[string]any{
		"server_name": a.serverName,
		"verify_keys": map[string]any{
			a.key.ID: map[string]string{"key": base64.RawStdEncoding.EncodeToString(a.key.Public())},
		},
		"old_verify_keys": map[string]any{},
		"valid_until_ts":  now.Add(keyValidity).UnixMilli(),
	})
	if err != nil {
		return nil, err
	}
	signed, err := gomatrixserverlib.SignJSON(a.serverName, gomatrixserverlib.KeyID(a.key.ID), a.key.Private, body)
	if err != nil {
		return nil, err
	}
	a.keys, a.keysTill = signed, now.Add(keyValidity/2)
	return json.RawMessage(signed), nil
}
