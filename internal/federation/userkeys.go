package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// UserKeys is the end-to-end encryption service behind the user key
// endpoints (server-server spec "End-to-End Encryption" and "Device
// Management").
type UserKeys interface {
	QueryLocal(ctx context.Context, want map[string][]string) (*keys.QueryResponse, error)
	ClaimLocal(ctx context.Context, want map[string]map[string]string) (*keys.ClaimResponse, error)
	UserDevices(ctx context.Context, userID string) (map[string]any, error)
	// The EDUs other servers send about their users' devices and
	// cross-signing keys, and to-device messages for local users.
	HandleDirectToDevice(ctx context.Context, origin string, content json.RawMessage) error
	HandleDeviceListUpdate(ctx context.Context, origin string, content json.RawMessage) error
	HandleSigningKeyUpdate(ctx context.Context, origin string, content json.RawMessage) error
}

func (a *API) registerUserKeys(rt *httpapi.Router) {
	if a.d.Keys == nil {
		return
	}
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/federation/v1/user/devices/{userId}", Handler: a.signed(a.userDevices)})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/_matrix/federation/v1/user/keys/query", Handler: a.signed(a.userKeysQuery)})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/_matrix/federation/v1/user/keys/claim", Handler: a.signed(a.userKeysClaim)})
}

// localUser refuses user IDs of other servers: a server only answers for
// its own users.
func (a *API) localUser(userID string) error {
	if !strings.HasPrefix(userID, "@") || !strings.HasSuffix(userID, ":"+a.d.ServerName) {
		return mxerr.InvalidParam("User %s is not a user of this server", userID)
	}
	return nil
}

func (a *API) userDevices(r *Request) (any, error) {
	userID := r.PathValue("userId")
	if err := a.localUser(userID); err != nil {
		return nil, err
	}
	exists, err := a.d.Store.UserExists(r.Context(), strings.TrimSuffix(strings.TrimPrefix(userID, "@"), ":"+a.d.ServerName))
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, mxerr.NotFound("Unknown user")
	}
	return a.d.Keys.UserDevices(r.Context(), userID)
}

func (a *API) userKeysQuery(r *Request) (any, error) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := httpapi.DecodeObject(r.Content, &req); err != nil {
		return nil, err
	}
	if req.DeviceKeys == nil {
		return nil, mxerr.MissingParam("Missing device_keys")
	}
	for u := range req.DeviceKeys {
		if err := a.localUser(u); err != nil {
			return nil, err
		}
	}
	resp, err := a.d.Keys.QueryLocal(r.Context(), req.DeviceKeys)
	if err != nil {
		return nil, err
	}
	// Federation answers carry no failures or user-signing keys.
	return map[string]any{"device_keys": resp.DeviceKeys, "master_keys": resp.MasterKeys, "self_signing_keys": resp.SelfSigningKeys}, nil
}

func (a *API) userKeysClaim(r *Request) (any, error) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := httpapi.DecodeObject(r.Content, &req); err != nil {
		return nil, err
	}
	if req.OneTimeKeys == nil {
		return nil, mxerr.MissingParam("Missing one_time_keys")
	}
	for u := range req.OneTimeKeys {
		if err := a.localUser(u); err != nil {
			return nil, err
		}
	}
	resp, err := a.d.Keys.ClaimLocal(r.Context(), req.OneTimeKeys)
	if err != nil {
		return nil, err
	}
	return map[string]any{"one_time_keys": resp.OneTimeKeys}, nil
}
