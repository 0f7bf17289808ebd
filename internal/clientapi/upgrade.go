package clientapi

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/roomupgrade"
)

func (a *API) registerUpgrade(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/rooms/{roomId}/upgrade", Auth: httpapi.AuthRequired, Handler: a.upgradeRoom})
}

type upgradeRequest struct {
	NewVersion         *string  `json:"new_version"`
	AdditionalCreators []string `json:"additional_creators"`
}

// upgradeRoom serves POST /upgrade; the roomupgrade service does the
// work.
func (a *API) upgradeRoom(r *http.Request, c *httpapi.Caller) (any, error) {
	var req upgradeRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.NewVersion == nil {
		return nil, mxerr.MissingParam("Missing params: new_version")
	}
	newID, err := a.upgrades.Upgrade(r.Context(), roomupgrade.Upgrader{UserID: c.UserID, Localpart: c.Localpart},
		r.PathValue("roomId"), *req.NewVersion, req.AdditionalCreators)
	if err != nil {
		return nil, err
	}
	return map[string]string{"replacement_room": newID}, nil
}
