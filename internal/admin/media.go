package admin

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Synapse's media admin API (docs/admin_api/media_admin_api.md); the
// rules are internal/media's.

func (o *Operations) mediaRoutes() []httpapi.Route {
	const p = "/_synapse/admin/v1"
	return []httpapi.Route{
		{Method: http.MethodPost, Path: p + "/media/quarantine/{serverName}/{mediaId}", Handler: o.quarantineMedia},
		{Method: http.MethodPost, Path: p + "/media/unquarantine/{serverName}/{mediaId}", Handler: o.unquarantineMedia},
		{Method: http.MethodPost, Path: p + "/room/{roomId}/media/quarantine", Handler: o.quarantineRoomMedia},
		// Synapse's deprecated spelling of the same.
		{Method: http.MethodPost, Path: p + "/quarantine_media/{roomId}", Handler: o.quarantineRoomMedia},
		{Method: http.MethodPost, Path: p + "/user/{userId}/media/quarantine", Handler: o.quarantineUserMedia},
		{Method: http.MethodGet, Path: p + "/room/{roomId}/media", Handler: o.listRoomMedia},
		{Method: http.MethodGet, Path: p + "/media/{serverName}/{mediaId}", Handler: o.mediaInfo},
		{Method: http.MethodDelete, Path: p + "/media/{serverName}/{mediaId}", Handler: o.deleteMedia},
		// POST /media/protect/{mediaId}, /media/unprotect/{mediaId} and the
		// deprecated /media/{serverName}/delete share this pattern: as
		// separate patterns net/http refuses them as overlapping.
		{Method: http.MethodPost, Path: p + "/media/{serverName}/{mediaId}", Handler: o.postMediaPair},
		{Method: http.MethodPost, Path: p + "/media/delete", Handler: o.deleteOldMedia},
		{Method: http.MethodPost, Path: p + "/purge_media_cache", Handler: o.purgeMediaCache},
	}
}

func (o *Operations) quarantineMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	server, id := r.PathValue("serverName"), r.PathValue("mediaId")
	if err := o.media.Quarantine(r.Context(), c.UserID, server, id); err != nil {
		return nil, err
	}
	o.audit(r, c, "quarantine media", "server_name", server, "media_id", id)
	return map[string]any{}, nil
}

func (o *Operations) unquarantineMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	server, id := r.PathValue("serverName"), r.PathValue("mediaId")
	if err := o.media.Unquarantine(r.Context(), server, id); err != nil {
		return nil, err
	}
	o.audit(r, c, "unquarantine media", "server_name", server, "media_id", id)
	return map[string]any{}, nil
}

func (o *Operations) quarantineRoomMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	room := r.PathValue("roomId")
	n, err := o.media.QuarantineRoom(r.Context(), c.UserID, room)
	if err != nil {
		return nil, err
	}
	o.audit(r, c, "quarantine room media", "room_id", room, "count", n)
	return map[string]any{"num_quarantined": n}, nil
}

func (o *Operations) quarantineUserMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	user := r.PathValue("userId")
	n, err := o.media.QuarantineUser(r.Context(), c.UserID, user)
	if err != nil {
		return nil, err
	}
	o.audit(r, c, "quarantine user media", "user_id", user, "count", n)
	return map[string]any{"num_quarantined": n}, nil
}

func (o *Operations) listRoomMedia(r *http.Request, _ *httpapi.Caller) (any, error) {
	local, remote, err := o.media.RoomMedia(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"local": local, "remote": remote}, nil
}

// mediaInfo is Synapse's "Query a piece of media by ID". Myelin keeps
// no URL-cache mark and no per-file name apart from the hash: url_cache
// is null, filesystem_id the SHA-256 the file is stored under.
// last_access_ts is null for media never downloaded nor thumbnailed.
func (o *Operations) mediaInfo(r *http.Request, _ *httpapi.Caller) (any, error) {
	info, err := o.media.MediaInfo(r.Context(), r.PathValue("serverName"), r.PathValue("mediaId"))
	if err != nil {
		return nil, err
	}
	var user, quarantinedBy, safe, lastAccess any
	if info.LastAccessTS > 0 {
		lastAccess = info.LastAccessTS
	}
	if info.UserID != "" {
		user = info.UserID
	}
	if info.QuarantinedBy != "" {
		quarantinedBy = info.QuarantinedBy
	}
	if info.SafeFromQuarantine {
		safe = true
	}
	return map[string]any{"media_info": map[string]any{
		"media_origin": info.Origin, "user_id": user, "media_id": info.MediaID, "media_type": info.ContentType,
		"media_length": info.Size, "upload_name": info.Filename, "created_ts": info.CreatedTS, "filesystem_id": info.SHA256,
		"url_cache": nil, "last_access_ts": lastAccess, "quarantined_by": quarantinedBy, "authenticated": info.Authenticated,
		"safe_from_quarantine": safe, "sha256": info.SHA256,
	}}, nil
}

func (o *Operations) deleteMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	server, id := r.PathValue("serverName"), r.PathValue("mediaId")
	if err := o.media.Delete(r.Context(), server, id); err != nil {
		return nil, err
	}
	o.audit(r, c, "delete media", "server_name", server, "media_id", id)
	return map[string]any{"deleted_media": []string{id}, "total": 1}, nil
}

// postMediaPair dispatches the POSTs that share /media/{a}/{b}.
func (o *Operations) postMediaPair(r *http.Request, c *httpapi.Caller) (any, error) {
	a, b := r.PathValue("serverName"), r.PathValue("mediaId")
	switch {
	case a == "protect" || a == "unprotect":
		if err := o.media.Protect(r.Context(), b, a == "protect"); err != nil {
			return nil, err
		}
		o.audit(r, c, a+" media", "media_id", b)
		return map[string]any{}, nil
	case b == "delete":
		if !o.media.IsLocal(a) {
			return nil, mxerr.InvalidParam("Can only delete local media")
		}
		return o.deleteOldMedia(r, c)
	}
	return nil, mxerr.Unrecognized(http.StatusMethodNotAllowed, "Unrecognized request")
}

// beforeTS reads the required before_ts of the delete and purge APIs,
// refusing what is evidently seconds rather than milliseconds, as Synapse.
func beforeTS(r *http.Request) (int64, error) {
	ts, present, err := timestamp(r, "before_ts", 0)
	if err != nil {
		return 0, err
	}
	if !present {
		return 0, mxerr.MissingParam("Missing integer query parameter 'before_ts'")
	}
	if ts < 30000000000 {
		return 0, mxerr.InvalidParam("Query parameter before_ts you provided is from the year 1970. " +
			"Double check that you are providing a timestamp in milliseconds.")
	}
	return ts, nil
}

func (o *Operations) deleteOldMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	before, err := beforeTS(r)
	if err != nil {
		return nil, err
	}
	sizeGT, _, err := timestamp(r, "size_gt", 0)
	if err != nil {
		return nil, err
	}
	keep := true
	switch v := r.URL.Query().Get("keep_profiles"); v {
	case "", "true":
	case "false":
		keep = false
	default:
		return nil, mxerr.InvalidParam("Boolean query parameter 'keep_profiles' must be one of ['true', 'false']")
	}
	deleted, err := o.media.DeleteOld(r.Context(), before, sizeGT, keep)
	if err != nil {
		return nil, err
	}
	o.audit(r, c, "delete old media", "before_ts", before, "size_gt", sizeGT, "keep_profiles", keep, "count", len(deleted))
	return map[string]any{"deleted_media": deleted, "total": len(deleted)}, nil
}

func (o *Operations) purgeMediaCache(r *http.Request, c *httpapi.Caller) (any, error) {
	before, err := beforeTS(r)
	if err != nil {
		return nil, err
	}
	n, err := o.media.PurgeRemoteCache(r.Context(), before)
	if err != nil {
		return nil, err
	}
	o.audit(r, c, "purge remote media cache", "before_ts", before, "count", n)
	return map[string]any{"deleted": n}, nil
}

// statisticsUsersMedia is Synapse's GET /statistics/users/media.
func (o *Operations) statisticsUsersMedia(r *http.Request, _ *httpapi.Caller) (any, error) {
	from, limit, err := offsetPage(r)
	if err != nil {
		return nil, err
	}
	reverse, err := direction(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	query := mediaUsageQuery(q.Get("order_by"), q.Get("search_term"), reverse)
	if query == nil {
		return nil, mxerr.InvalidParam("Unknown value for order_by: %s", q.Get("order_by"))
	}
	if query.FromTS, _, err = timestamp(r, "from_ts", 0); err != nil {
		return nil, err
	}
	if query.UntilTS, _, err = timestamp(r, "until_ts", 1<<62); err != nil {
		return nil, err
	}
	if query.UntilTS < query.FromTS {
		return nil, mxerr.InvalidParam("Query parameter until_ts must be greater than from_ts.")
	}
	users, err := o.media.UserMediaUsage(r.Context(), *query)
	if err != nil {
		return nil, err
	}
	lo, hi, next := window(len(users), from, limit)
	out := make([]map[string]any, 0, hi-lo)
	for _, u := range users[lo:hi] {
		var name any
		if u.DisplayName != "" {
			name = u.DisplayName
		}
		out = append(out, map[string]any{"user_id": u.UserID, "displayname": name, "media_count": u.Count, "media_length": u.Length})
	}
	resp := map[string]any{"users": out, "total": len(users)}
	if next >= 0 {
		resp["next_token"] = next
	}
	return resp, nil
}

// mediaUsageQuery checks order_by (nil when unknown).
func mediaUsageQuery(orderBy, search string, reverse bool) *media.UsageQuery {
	if !media.UsageOrders[orderBy] {
		return nil
	}
	return &media.UsageQuery{OrderBy: orderBy, SearchTerm: search, Reverse: reverse}
}
