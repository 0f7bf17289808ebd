package clientapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/receipts"
)

// Typing notifications, receipts and read markers.

func (a *API) registerEphemeral(rt *httpapi.Router) {
	if a.typing != nil {
		legacy(rt, httpapi.Route{Method: http.MethodPut, Path: "/rooms/{roomId}/typing/{userId}", Auth: httpapi.AuthRequired,
			AllowGuest: true, Handler: a.setTyping})
	}
	if a.receipts != nil {
		legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/rooms/{roomId}/receipt/{receiptType}/{eventId}", Auth: httpapi.AuthRequired,
			AllowGuest: true, Handler: a.postReceipt})
		legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/rooms/{roomId}/read_markers", Auth: httpapi.AuthRequired,
			AllowGuest: true, Handler: a.readMarkers})
	}
}

// joined refuses users who are not joined to the room.
func (a *API) joined(r *http.Request, c *httpapi.Caller, roomID string) error {
	m, err := a.rooms.MembershipOf(r.Context(), roomID, c.UserID)
	if err != nil {
		return err
	}
	if m != spec.Join {
		return mxerr.Forbidden("You are not in this room")
	}
	return nil
}

func (a *API) setTyping(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID := r.PathValue("roomId")
	if r.PathValue("userId") != c.UserID {
		return nil, mxerr.Forbidden("Cannot set another user's typing state")
	}
	var body struct {
		Typing  *bool `json:"typing"`
		Timeout int64 `json:"timeout"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Typing == nil {
		return nil, mxerr.BadJSON("typing is required")
	}
	if err := a.joined(r, c, roomID); err != nil {
		return nil, err
	}
	if c.ShadowBanned {
		// Nobody sees a shadow-banned user type (Synapse).
		return empty, nil
	}
	timeout := time.Duration(body.Timeout) * time.Millisecond
	if *body.Typing && timeout <= 0 {
		timeout = 30 * time.Second
	}
	a.typing.Set(roomID, c.UserID, *body.Typing, timeout)
	return empty, nil
}

func (a *API) postReceipt(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, typ, eventID := r.PathValue("roomId"), r.PathValue("receiptType"), r.PathValue("eventId")
	var body struct {
		ThreadID string `json:"thread_id"`
	}
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return nil, err
	}
	if err := receipts.ThreadOf(body.ThreadID); err != nil {
		return nil, err
	}
	switch typ {
	case receipts.Read, receipts.ReadPrivate:
	case "m.fully_read":
		if body.ThreadID != "" {
			return nil, mxerr.InvalidParam("m.fully_read takes no thread_id")
		}
		return empty, a.setFullyRead(r, c, roomID, eventID)
	default:
		return nil, mxerr.InvalidParam("Unknown receipt type %q", typ)
	}
	if err := a.joined(r, c, roomID); err != nil {
		return nil, err
	}
	return empty, a.receipts.Put(r.Context(), roomID, c.UserID, typ, eventID, body.ThreadID)
}

// readMarkers sets the fully-read marker and the read receipts at once.
func (a *API) readMarkers(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID := r.PathValue("roomId")
	var body struct {
		FullyRead   string `json:"m.fully_read"`
		Read        string `json:"m.read"`
		ReadPrivate string `json:"m.read.private"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if err := a.joined(r, c, roomID); err != nil {
		return nil, err
	}
	if body.FullyRead != "" {
		if err := a.setFullyRead(r, c, roomID, body.FullyRead); err != nil {
			return nil, err
		}
	}
	for typ, id := range map[string]string{receipts.Read: body.Read, receipts.ReadPrivate: body.ReadPrivate} {
		if id != "" {
			if err := a.receipts.Put(r.Context(), roomID, c.UserID, typ, id, ""); err != nil {
				return nil, err
			}
		}
	}
	return empty, nil
}

// setFullyRead stores the m.fully_read room account data, for an event
// of the room the user may see.
func (a *API) setFullyRead(r *http.Request, c *httpapi.Caller, roomID, eventID string) error {
	if err := a.joined(r, c, roomID); err != nil {
		return err
	}
	if _, err := a.rooms.VisibleEvent(r.Context(), roomID, eventID, c.UserID); err != nil {
		return err
	}
	if a.accountData == nil {
		return mxerr.Unrecognized(http.StatusNotFound, "Account data is not served")
	}
	content, err := json.Marshal(map[string]string{"event_id": eventID})
	if err != nil {
		return err
	}
	return a.accountData.Put(r.Context(), c.UserID, roomID, "m.fully_read", content)
}
