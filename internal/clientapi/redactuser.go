package clientapi

import (
	"net/http"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// registerUserRedaction serves MSC4194's "redact a user's events",
// which moderation bots (Meowlnir, Draupnir, through mautrix-go's
// UnstableRedactUserEvents) use once /versions advertises
// org.matrix.msc4194. Only the unstable path exists until the MSC is
// merged. The rate limit counts requests, each bounded by
// rooms.MaxUserRedactions: the MSC asks that the redactions sent not be
// limited as /send's messages are.
func (a *API) registerUserRedaction(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/_matrix/client/unstable/org.matrix.msc4194/rooms/{roomId}/redact/user/{userId}",
		Auth: httpapi.AuthRequired, RateLimit: LimitMessage, Handler: a.redactUser})
}

// userRedactionDefaultLimit is MSC4194's default for limit.
const userRedactionDefaultLimit = 25

type redactUserResponse struct {
	IsMoreEvents   bool `json:"is_more_events"`
	RedactedEvents struct {
		Total      int `json:"total"`
		SoftFailed int `json:"soft_failed"`
	} `json:"redacted_events"`
}

func (a *API) redactUser(r *http.Request, c *httpapi.Caller) (any, error) {
	target, limit, err := parseUserRedaction(r.PathValue("userId"), r.URL.Query().Get("limit"))
	if err != nil {
		return nil, err
	}
	var body struct {
		Reason string `json:"reason,omitempty"`
	}
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return nil, err
	}
	res, err := a.rooms.RedactUserEvents(r.Context(), rooms.RedactUserRequest{
		RoomID: r.PathValue("roomId"), Sender: c.UserID, SenderSuspended: c.Suspended, Target: target, Reason: body.Reason, Limit: limit,
	})
	if err != nil {
		return nil, err
	}
	var out redactUserResponse
	out.IsMoreEvents = res.More
	out.RedactedEvents.Total, out.RedactedEvents.SoftFailed = res.Redacted, res.SoftFailed
	return out, nil
}

// parseUserRedaction checks the target user ID and the limit (absent:
// the MSC's default; larger than the server's maximum: cut down, as the
// MSC's "Limited response" allows). Bad values are 400 M_INVALID_PARAM.
func parseUserRedaction(target, rawLimit string) (string, int, error) {
	if ident.CheckID(target) != nil {
		return "", 0, mxerr.InvalidParam("Invalid user ID")
	}
	if _, err := spec.NewUserID(target, true); err != nil {
		return "", 0, mxerr.InvalidParam("Invalid user ID")
	}
	limit := userRedactionDefaultLimit
	if rawLimit != "" {
		n, err := strconv.Atoi(rawLimit)
		if err != nil || n < 1 {
			return "", 0, mxerr.InvalidParam("limit must be a positive integer")
		}
		limit = min(n, rooms.MaxUserRedactions)
	}
	return target, limit, nil
}
