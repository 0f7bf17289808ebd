package admin

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Synapse's server_version, statistics and background updates admin APIs.

func (o *Operations) serverRoutes() []httpapi.Route {
	const p = "/_synapse/admin/v1"
	return []httpapi.Route{
		{Method: http.MethodGet, Path: p + "/server_version", Handler: o.serverVersion},
		{Method: http.MethodGet, Path: p + "/statistics/users/media", Handler: o.statisticsUsersMedia},
		{Method: http.MethodGet, Path: p + "/statistics/database/rooms", Handler: o.statisticsRooms},
		{Method: http.MethodGet, Path: p + "/background_updates/enabled", Handler: o.backgroundEnabledGet},
		{Method: http.MethodPost, Path: p + "/background_updates/enabled", Handler: o.backgroundEnabledSet},
		{Method: http.MethodGet, Path: p + "/background_updates/status", Handler: o.backgroundStatus},
		{Method: http.MethodPost, Path: p + "/background_updates/start_job", Handler: o.backgroundStartJob},
	}
}

// serverVersion is Synapse's GET /server_version. Synapse requires an
// admin since 1.94 (it was public before); Myelin does too.
func (o *Operations) serverVersion(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{"server_version": o.version}, nil
}

func (o *Operations) statisticsRooms(r *http.Request, _ *httpapi.Caller) (any, error) {
	rooms, err := o.stats.LargestRooms(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(rooms))
	for _, room := range rooms {
		out = append(out, map[string]any{"room_id": room.RoomID, "estimated_size": room.EstimatedSize})
	}
	return map[string]any{"rooms": out}, nil
}

// Background updates: Synapse's resumable schema and data migrations.
// Myelin's migrations run whole at start, before the server serves, so
// none is ever running: status lists none, and the enabled flag (kept
// in memory, as Synapse keeps it) changes nothing.

func (o *Operations) backgroundOn() bool {
	o.backgroundMu.Lock()
	defer o.backgroundMu.Unlock()
	return o.backgroundEnabled
}

func (o *Operations) backgroundEnabledGet(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{"enabled": o.backgroundOn()}, nil
}

func (o *Operations) backgroundEnabledSet(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Enabled == nil {
		return nil, mxerr.MissingParam("Missing param: enabled")
	}
	o.backgroundMu.Lock()
	o.backgroundEnabled = *body.Enabled
	o.backgroundMu.Unlock()
	o.audit(r, c, "set background updates enabled", "enabled", *body.Enabled)
	return map[string]any{"enabled": *body.Enabled}, nil
}

func (o *Operations) backgroundStatus(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{"enabled": o.backgroundOn(), "current_updates": map[string]any{}}, nil
}

// backgroundStartJob is Synapse's POST /background_updates/start_job.
// Its two jobs (populate_stats_process_rooms, regenerate_directory)
// rebuild tables that Myelin keeps current as events arrive, so they
// are accepted and done at once; any other name is refused, as Synapse
// refuses it (400 M_UNKNOWN).
func (o *Operations) backgroundStartJob(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		JobName *string `json:"job_name"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.JobName == nil {
		return nil, mxerr.MissingParam("Missing param: job_name")
	}
	switch *body.JobName {
	case "populate_stats_process_rooms", "regenerate_directory":
		o.audit(r, c, "start background job", "job_name", *body.JobName)
		return map[string]any{}, nil
	}
	return nil, mxerr.Unknown("Invalid job_name").WithStatus(http.StatusBadRequest)
}
