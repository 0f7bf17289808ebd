package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Account data and tags are among the endpoints the spec lets guests use.
func (a *API) registerAccountData(rt *httpapi.Router) {
	for _, r := range []httpapi.Route{
		{Method: http.MethodGet, Path: "/user/{userId}/account_data/{type}", Handler: a.getAccountData},
		{Method: http.MethodPut, Path: "/user/{userId}/account_data/{type}", Handler: a.putAccountData},
		{Method: http.MethodGet, Path: "/user/{userId}/rooms/{roomId}/account_data/{type}", Handler: a.getAccountData},
		{Method: http.MethodPut, Path: "/user/{userId}/rooms/{roomId}/account_data/{type}", Handler: a.putAccountData},
		{Method: http.MethodGet, Path: "/user/{userId}/rooms/{roomId}/tags", Handler: a.getTags},
		{Method: http.MethodPut, Path: "/user/{userId}/rooms/{roomId}/tags/{tag}", Handler: a.putTag},
		{Method: http.MethodDelete, Path: "/user/{userId}/rooms/{roomId}/tags/{tag}", Handler: a.deleteTag},
	} {
		r.Auth, r.AllowGuest = httpapi.AuthRequired, true
		legacy(rt, r)
	}
}

// accountDataScope checks that the caller acts for themselves and that
// a room scope names a room ID; it returns the room ID ("" for global).
func accountDataScope(r *http.Request, c *httpapi.Caller) (string, error) {
	if r.PathValue("userId") != c.UserID {
		return "", mxerr.Forbidden("Cannot access account data of other users")
	}
	roomID := r.PathValue("roomId")
	if roomID != "" {
		if _, err := spec.NewRoomID(roomID); err != nil {
			return "", mxerr.InvalidParam("%q is not a valid room ID", roomID)
		}
	}
	return roomID, nil
}

func (a *API) getAccountData(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := accountDataScope(r, c)
	if err != nil {
		return nil, err
	}
	return a.accountData.Get(r.Context(), c.UserID, roomID, r.PathValue("type"))
}

// putAccountData stores any object; the types the server manages
// (m.push_rules, a room's m.fully_read) are refused with 405 M_BAD_JSON,
// as the spec says and Synapse does.
// maxAccountDataTypeLen bounds a type, as the spec bounds event types.
const maxAccountDataTypeLen = 255

func (a *API) putAccountData(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := accountDataScope(r, c)
	if err != nil {
		return nil, err
	}
	typ := r.PathValue("type")
	if a.accountData.Managed(roomID, typ) {
		return nil, &mxerr.Error{Status: http.StatusMethodNotAllowed, Code: "M_BAD_JSON", Message: "Cannot set " + typ + " through this API"}
	}
	if len(typ) > maxAccountDataTypeLen {
		return nil, mxerr.TooLarge("Account data types are at most %d bytes", maxAccountDataTypeLen).WithStatus(http.StatusBadRequest)
	}
	var content json.RawMessage
	if err := httpapi.ReadJSON(r, &content); err != nil {
		return nil, err
	}
	// Every initial /sync carries every object: each is bounded.
	if max := a.cfg.Limits.MaxAccountDataBytes; len(content) > max {
		return nil, mxerr.TooLarge("Account data objects are at most %d bytes", max)
	}
	return empty, a.accountData.Put(r.Context(), c.UserID, roomID, typ, content)
}

func (a *API) getTags(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := accountDataScope(r, c)
	if err != nil {
		return nil, err
	}
	tags, err := a.accountData.Tags(r.Context(), c.UserID, roomID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"tags": tags}, nil
}

func (a *API) putTag(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := accountDataScope(r, c)
	if err != nil {
		return nil, err
	}
	var body json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	// order, when given, is a number (spec m.tag: clients sort by it).
	var tag struct {
		Order any `json:"order"`
	}
	_ = json.Unmarshal(body, &tag)
	if _, ok := tag.Order.(float64); tag.Order != nil && !ok {
		return nil, mxerr.InvalidParam("'order' must be a number")
	}
	return empty, a.accountData.SetTag(r.Context(), c.UserID, roomID, r.PathValue("tag"), body, a.cfg.Limits.MaxAccountDataBytes)
}

func (a *API) deleteTag(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := accountDataScope(r, c)
	if err != nil {
		return nil, err
	}
	return empty, a.accountData.DeleteTag(r.Context(), c.UserID, roomID, r.PathValue("tag"))
}
