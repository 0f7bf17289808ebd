package admin

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/servernotices"
)

// ServerNotices is Synapse's server notices admin API.
type ServerNotices struct {
	notices *servernotices.Service
}

// NewServerNotices makes the server notices admin API over the service.
func NewServerNotices(s *servernotices.Service) *ServerNotices { return &ServerNotices{notices: s} }

// Register adds POST /_synapse/admin/v1/send_server_notice and its PUT
// .../{txnId}, which a retry may repeat.
func (a *ServerNotices) Register(rt *httpapi.Router) {
	const p = "/_synapse/admin/v1/send_server_notice"
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: p, Auth: httpapi.AuthRequired, Handler: adminOnly(a.send)})
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: p + "/{txnId}", Auth: httpapi.AuthRequired, Handler: adminOnly(a.send)})
}

// send serves POST /send_server_notice: {user_id, content, type?,
// state_key?} sends one notice and answers its event_id, as Synapse.
func (a *ServerNotices) send(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		UserID   *string         `json:"user_id"`
		Content  json.RawMessage `json:"content"`
		Type     string          `json:"type"`
		StateKey *string         `json:"state_key"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.UserID == nil || body.Content == nil {
		return nil, mxerr.MissingParam("Missing params: user_id and content are required")
	}
	for _, id := range []*string{body.UserID, &body.Type, body.StateKey} {
		if id != nil && ident.CheckID(*id) != nil {
			return nil, mxerr.InvalidParam("user_id, type and state_key must be UTF-8 without NUL, at most 255 bytes")
		}
	}
	if c := bytes.TrimSpace(body.Content); len(c) == 0 || c[0] != '{' {
		return nil, mxerr.BadJSON("'content' must be an object")
	}
	notice := servernotices.Notice{Type: body.Type, StateKey: body.StateKey, Content: body.Content}
	if txnID := r.PathValue("txnId"); txnID != "" {
		// The admin's transaction, per device as the client API's are.
		notice.Txn = &rooms.Txn{Localpart: c.Localpart, Device: c.DeviceID, Scope: "server_notice", ID: txnID}
	}
	eventID, err := a.notices.Send(r.Context(), *body.UserID, notice)
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": eventID}, nil
}
