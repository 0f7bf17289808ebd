package clientapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/uia"
)

// End-to-end encryption endpoints (client-server spec "End-to-End
// Encryption", "Send-to-Device messaging", "Server-side key backups");
// the work is done by the keys service.

func (a *API) registerKeys(rt *httpapi.Router) {
	if a.keys == nil {
		return
	}
	auth := func(method, path string, h httpapi.Handler) httpapi.Route {
		return httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, Handler: h}
	}
	// Guests may encrypt, as in Synapse: the key and to-device endpoints
	// allow them; cross-signing and backup need a full account.
	guest := func(r httpapi.Route) httpapi.Route { r.AllowGuest = true; return r }
	legacy(rt, guest(auth(http.MethodPost, "/keys/upload", a.uploadKeys)))
	legacy(rt, guest(auth(http.MethodPost, "/keys/query", a.queryKeys)))
	legacy(rt, guest(auth(http.MethodPost, "/keys/claim", a.claimKeys)))
	legacy(rt, guest(auth(http.MethodGet, "/keys/changes", a.keyChanges)))
	v3(rt, auth(http.MethodPost, "/keys/device_signing/upload", a.uploadCrossSigning))
	v3(rt, auth(http.MethodPost, "/keys/signatures/upload", a.uploadSignatures))
	legacy(rt, guest(auth(http.MethodPut, "/sendToDevice/{eventType}/{txnId}", a.sendToDevice)))
	legacy(rt, auth(http.MethodPost, "/room_keys/version", a.createBackup))
	legacy(rt, auth(http.MethodGet, "/room_keys/version", a.getBackup))
	legacy(rt, auth(http.MethodGet, "/room_keys/version/{version}", a.getBackup))
	legacy(rt, auth(http.MethodPut, "/room_keys/version/{version}", a.updateBackup))
	legacy(rt, auth(http.MethodDelete, "/room_keys/version/{version}", a.deleteBackup))
	for _, p := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		legacy(rt, auth(http.MethodGet, p, a.getBackupKeys))
		legacy(rt, auth(http.MethodPut, p, a.putBackupKeys))
		legacy(rt, auth(http.MethodDelete, p, a.deleteBackupKeys))
	}
}

func (a *API) uploadKeys(r *http.Request, c *httpapi.Caller) (any, error) {
	var req keys.UploadRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	counts, err := a.keys.Upload(r.Context(), c.UserID, c.DeviceID, req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"one_time_key_counts": counts}, nil
}

// timeoutOf reads the optional "timeout" (milliseconds) of query and claim.
func timeoutOf(ms *int64) time.Duration {
	if ms == nil || *ms <= 0 {
		return keys.DefaultTimeout
	}
	return time.Duration(*ms) * time.Millisecond
}

func (a *API) queryKeys(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
		Timeout    *int64              `json:"timeout"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.DeviceKeys == nil {
		return nil, mxerr.MissingParam("Missing device_keys")
	}
	return a.keys.Query(r.Context(), c.UserID, req.DeviceKeys, timeoutOf(req.Timeout))
}

func (a *API) claimKeys(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
		Timeout     *int64                       `json:"timeout"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.OneTimeKeys == nil {
		return nil, mxerr.MissingParam("Missing one_time_keys")
	}
	return a.keys.Claim(r.Context(), req.OneTimeKeys, timeoutOf(req.Timeout))
}

func (a *API) keyChanges(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	if q.Get("from") == "" || q.Get("to") == "" {
		return nil, mxerr.MissingParam("from and to are required")
	}
	from, err := clientsync.ParseToken(q.Get("from"))
	if err != nil {
		return nil, err
	}
	to, err := clientsync.ParseToken(q.Get("to"))
	if err != nil {
		return nil, err
	}
	changed, left, err := a.keys.DeviceListChanges(r.Context(), c.UserID, from.Events, min(to.Events, a.rooms.Stream().Current()))
	if err != nil {
		return nil, err
	}
	return map[string]any{"changed": changed, "left": left}, nil
}

func (a *API) uploadCrossSigning(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		keys.CrossSigningUpload
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	var sess *uia.Session
	err := a.keys.UploadCrossSigning(r.Context(), c.UserID, req.CrossSigningUpload, func() error {
		if c.AppService != "" {
			// MSC4190 as Synapse has it: a service replaces its users'
			// cross-signing keys without UIA (a bridge resetting its
			// bot's self-signing, mautrix's self_sign).
			return nil
		}
		var err error
		sess, err = a.withUIA(r, c, req.Auth)
		return err
	})
	if err != nil {
		return nil, err
	}
	if sess != nil {
		_ = a.uia.Finish(r.Context(), sess)
	}
	return empty, nil
}

func (a *API) uploadSignatures(r *http.Request, c *httpapi.Caller) (any, error) {
	var req map[string]map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	failures, err := a.keys.UploadSignatures(r.Context(), c.UserID, req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"failures": failures}, nil
}

func (a *API) sendToDevice(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	return empty, a.keys.SendToDevice(r.Context(), c.UserID, c.DeviceID, r.PathValue("eventType"), r.PathValue("txnId"), req.Messages)
}

type backupBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

func (a *API) createBackup(r *http.Request, c *httpapi.Caller) (any, error) {
	var req backupBody
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	v, err := a.keys.CreateBackup(r.Context(), c.UserID, req.Algorithm, req.AuthData)
	if err != nil {
		return nil, err
	}
	return map[string]string{"version": v}, nil
}

func (a *API) getBackup(r *http.Request, c *httpapi.Caller) (any, error) {
	return a.keys.Backup(r.Context(), c.UserID, r.PathValue("version"))
}

func (a *API) updateBackup(r *http.Request, c *httpapi.Caller) (any, error) {
	var req backupBody
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	return empty, a.keys.UpdateBackup(r.Context(), c.UserID, r.PathValue("version"), req.Algorithm, req.Version, req.AuthData)
}

func (a *API) deleteBackup(r *http.Request, c *httpapi.Caller) (any, error) {
	return empty, a.keys.DeleteBackup(r.Context(), c.UserID, r.PathValue("version"))
}

// putBackupKeys takes the body of whichever of the three paths was used:
// {rooms: ...}, one room's {sessions: ...}, or one session's data.
func (a *API) putBackupKeys(r *http.Request, c *httpapi.Caller) (any, error) {
	room, session := r.PathValue("roomId"), r.PathValue("sessionId")
	rooms := map[string]map[string]keys.SessionData{}
	switch {
	case session != "":
		var d keys.SessionData
		if err := httpapi.ReadJSON(r, &d); err != nil {
			return nil, err
		}
		rooms[room] = map[string]keys.SessionData{session: d}
	case room != "":
		var rs keys.RoomSessions
		if err := httpapi.ReadJSON(r, &rs); err != nil {
			return nil, err
		}
		rooms[room] = rs.Sessions
	default:
		var all struct {
			Rooms map[string]keys.RoomSessions `json:"rooms"`
		}
		if err := httpapi.ReadJSON(r, &all); err != nil {
			return nil, err
		}
		for id, rs := range all.Rooms {
			rooms[id] = rs.Sessions
		}
	}
	return a.keys.PutBackupKeys(r.Context(), c.UserID, r.URL.Query().Get("version"), rooms)
}

func (a *API) getBackupKeys(r *http.Request, c *httpapi.Caller) (any, error) {
	room, session := r.PathValue("roomId"), r.PathValue("sessionId")
	rooms, err := a.keys.BackupKeys(r.Context(), c.UserID, r.URL.Query().Get("version"), room, session)
	if err != nil {
		return nil, err
	}
	switch {
	case session != "":
		d, ok := rooms[room].Sessions[session]
		if !ok {
			return nil, mxerr.NotFound("No room key found for this session")
		}
		return d, nil
	case room != "":
		// A room without backed-up keys is an empty room, as in Synapse.
		if rs, ok := rooms[room]; ok {
			return rs, nil
		}
		return keys.RoomSessions{Sessions: map[string]keys.SessionData{}}, nil
	default:
		return map[string]any{"rooms": rooms}, nil
	}
}

func (a *API) deleteBackupKeys(r *http.Request, c *httpapi.Caller) (any, error) {
	return a.keys.DeleteBackupKeys(r.Context(), c.UserID, r.URL.Query().Get("version"), r.PathValue("roomId"), r.PathValue("sessionId"))
}
