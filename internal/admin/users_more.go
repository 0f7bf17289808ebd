package admin

import (
	"encoding/json"
	"math"
	"net/http"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// whois is GET /_synapse/admin/v1/whois/{userId} and the client API's
// /admin/whois: each device's last connection. A user may ask about
// themselves; anyone else must be an admin.
func (u *Users) whois(r *http.Request, c *httpapi.Caller) (any, error) {
	if !c.IsAdmin && r.PathValue("userId") != c.UserID {
		return nil, mxerr.Forbidden("You are not a server admin")
	}
	usr, err := u.user(r, "Can only whois a local user")
	if err != nil {
		return nil, err
	}
	devices, err := u.acc.Devices(r.Context(), usr.Localpart)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, d := range devices {
		conns := []map[string]any{}
		if d.LastSeenTS > 0 {
			conns = append(conns, map[string]any{"ip": d.LastSeenIP, "last_seen": d.LastSeenTS, "user_agent": d.LastSeenAgent})
		}
		out[d.DeviceID] = map[string]any{"sessions": []map[string]any{{"connections": conns}}}
	}
	return map[string]any{"user_id": usr.UserID, "devices": out}, nil
}

func deviceEntry(userID string, d accounts.Device) map[string]any {
	e := map[string]any{"device_id": d.DeviceID, "user_id": userID, "display_name": d.DisplayName,
		"last_seen_ip": nil, "last_seen_ts": nil, "last_seen_user_agent": nil, "dehydrated": false}
	if d.LastSeenTS > 0 {
		e["last_seen_ts"] = d.LastSeenTS
	}
	if d.LastSeenIP != "" {
		e["last_seen_ip"] = d.LastSeenIP
	}
	if d.LastSeenAgent != "" {
		e["last_seen_user_agent"] = d.LastSeenAgent
	}
	return e
}

// devices is GET /_synapse/admin/v2/users/{userId}/devices.
func (u *Users) devices(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only lookup local users")
	if err != nil {
		return nil, err
	}
	ds, err := u.acc.Devices(r.Context(), usr.Localpart)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(ds))
	for i, d := range ds {
		out[i] = deviceEntry(usr.UserID, d)
	}
	return map[string]any{"devices": out, "total": len(out)}, nil
}

func (u *Users) device(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only lookup local users")
	if err != nil {
		return nil, err
	}
	d, err := u.acc.Device(r.Context(), usr.Localpart, r.PathValue("deviceId"))
	if err != nil {
		return nil, err
	}
	return deviceEntry(usr.UserID, d), nil
}

func (u *Users) renameDevice(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	usr, err := u.user(r, "Can only lookup local users")
	if err != nil {
		return nil, err
	}
	return map[string]any{}, u.acc.RenameDevice(r.Context(), usr.Localpart, r.PathValue("deviceId"), req.DisplayName)
}

// deleteDevice is DELETE .../devices/{deviceId}: an unknown device is no
// error, as in Synapse.
func (u *Users) deleteDevice(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only lookup local users")
	if err != nil {
		return nil, err
	}
	return map[string]any{}, u.acc.DeleteDevices(r.Context(), usr.Localpart, []string{r.PathValue("deviceId")})
}

func (u *Users) deleteDevices(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req struct {
		Devices *[]string `json:"devices"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Devices == nil {
		return nil, mxerr.MissingParam("Missing params: ['devices']")
	}
	usr, err := u.user(r, "Can only lookup local users")
	if err != nil {
		return nil, err
	}
	return map[string]any{}, u.acc.DeleteDevices(r.Context(), usr.Localpart, *req.Devices)
}

// joinedRooms is GET /_synapse/admin/v1/users/{userId}/joined_rooms; as
// in Synapse, a remote user's rooms are those this server knows of.
func (u *Users) joinedRooms(r *http.Request, _ *httpapi.Caller) (any, error) {
	userID := r.PathValue("userId")
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	rooms, err := u.members.JoinedRooms(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"joined_rooms": rooms, "total": len(rooms)}, nil
}

func (u *Users) listPushers(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only look up local users")
	if err != nil {
		return nil, err
	}
	ps, err := u.pushers.Pushers(r.Context(), usr.Localpart)
	if err != nil {
		return nil, err
	}
	return map[string]any{"pushers": ps, "total": len(ps)}, nil
}

// accountData is GET /_synapse/admin/v1/users/{userId}/accountdata.
func (u *Users) accountData(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Only local users can be queried")
	if err != nil {
		return nil, err
	}
	global, rooms, err := u.data.Changes(r.Context(), usr.UserID, 0, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	g := map[string]json.RawMessage{}
	for _, e := range global {
		g[e.Type] = e.Content
	}
	rs := map[string]map[string]json.RawMessage{}
	for roomID, evs := range rooms {
		rs[roomID] = map[string]json.RawMessage{}
		for _, e := range evs {
			rs[roomID][e.Type] = e.Content
		}
	}
	return map[string]any{"account_data": map[string]any{"global": g, "rooms": rs}}, nil
}

func (u *Users) getAdmin(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Only local users can be admins of this homeserver")
	if err != nil {
		return nil, err
	}
	return map[string]any{"admin": usr.IsAdmin}, nil
}

func (u *Users) putAdmin(r *http.Request, c *httpapi.Caller) (any, error) {
	var req map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	b := userBody{raw: req}
	if !b.has("admin") {
		return nil, mxerr.MissingParam("Missing params: ['admin']")
	}
	admin, err := b.bool("admin")
	if err != nil {
		return nil, err
	}
	usr, err := u.user(r, "Only local users can be admins of this homeserver")
	if err != nil {
		return nil, err
	}
	if usr.UserID == c.UserID && !admin {
		return nil, mxerr.InvalidParam("You may not demote yourself.")
	}
	return map[string]any{}, u.acc.SetAdmin(r.Context(), usr.Localpart, admin)
}

func (u *Users) shadowBan(r *http.Request, _ *httpapi.Caller) (any, error) {
	return u.setShadowBan(r, true)
}

func (u *Users) unShadowBan(r *http.Request, _ *httpapi.Caller) (any, error) {
	return u.setShadowBan(r, false)
}

func (u *Users) setShadowBan(r *http.Request, banned bool) (any, error) {
	usr, err := u.user(r, "Only local users can be shadow-banned")
	if err != nil {
		return nil, err
	}
	return map[string]any{}, u.admin.SetShadowBanned(r.Context(), usr.Localpart, banned)
}

func (u *Users) getRateLimit(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only look up local users")
	if err != nil {
		return nil, err
	}
	rl, ok, err := u.admin.GetRateLimit(r.Context(), usr.Localpart)
	if err != nil || !ok {
		return map[string]any{}, err
	}
	return map[string]any{"messages_per_second": rl.MessagesPerSecond, "burst_count": rl.BurstCount}, nil
}

// setRateLimit is POST .../override_ratelimit: each value a
// non-negative integer, absent as 0 (Synapse's defaults: no limit).
func (u *Users) setRateLimit(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req map[string]json.RawMessage
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	var rl accounts.RateLimit
	for key, dst := range map[string]*int64{"messages_per_second": &rl.MessagesPerSecond, "burst_count": &rl.BurstCount} {
		raw, ok := req[key]
		if !ok {
			continue
		}
		if json.Unmarshal(raw, dst) != nil || *dst < 0 {
			return nil, mxerr.InvalidParam("%s parameter must be a positive int", key)
		}
	}
	usr, err := u.user(r, "Only local users can be ratelimited")
	if err != nil {
		return nil, err
	}
	if err := u.admin.SetRateLimit(r.Context(), usr.Localpart, rl); err != nil {
		return nil, err
	}
	return map[string]any{"messages_per_second": rl.MessagesPerSecond, "burst_count": rl.BurstCount}, nil
}

func (u *Users) deleteRateLimit(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Only local users can be ratelimited")
	if err != nil {
		return nil, err
	}
	return map[string]any{}, u.admin.DeleteRateLimit(r.Context(), usr.Localpart)
}

// mediaPage reads the user media list's parameters: newest first when
// neither order_by nor dir is given, else order_by (created_ts) in dir
// (f).
func (u *Users) mediaPage(r *http.Request) (usr accounts.User, list []media.Upload, total int64, from int, err error) {
	q := r.URL.Query()
	if from, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return
	}
	limit, err := nonNegative(q.Get("limit"), 100, "limit")
	if err != nil {
		return
	}
	order, desc := "created_ts", q.Get("order_by") == "" && q.Get("dir") == ""
	if v := q.Get("order_by"); v != "" {
		if !media.ValidUploadOrder(v) {
			err = mxerr.InvalidParam("Unknown value for order_by: %s", v)
			return
		}
		order = v
	}
	switch q.Get("dir") {
	case "", "f":
	case "b":
		desc = true
	default:
		err = mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
		return
	}
	if usr, err = u.user(r, "Can only look up local users"); err != nil {
		return
	}
	list, total, err = u.uploads.List(r.Context(), usr.UserID, order, desc, from, limit)
	return
}

// listMedia is GET /_synapse/admin/v1/users/{userId}/media.
func (u *Users) listMedia(r *http.Request, _ *httpapi.Caller) (any, error) {
	_, list, total, from, err := u.mediaPage(r)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(list))
	for i, m := range list {
		var name any
		if m.Filename != "" {
			name = m.Filename
		}
		var lastAccess, quarantinedBy any
		if m.LastAccessTS > 0 {
			lastAccess = m.LastAccessTS
		}
		if m.QuarantinedBy != "" {
			quarantinedBy = m.QuarantinedBy
		}
		out[i] = map[string]any{"media_id": m.MediaID, "media_type": m.ContentType, "media_length": m.Size, "upload_name": name,
			"created_ts": m.CreatedTS, "last_access_ts": lastAccess, "quarantined_by": quarantinedBy, "safe_from_quarantine": m.SafeFromQuarantine}
	}
	resp := map[string]any{"media": out, "total": total}
	if int64(from+len(list)) < total {
		resp["next_token"] = from + len(list)
	}
	return resp, nil
}

// deleteMedia is DELETE /_synapse/admin/v1/users/{userId}/media: the
// page the same parameters would list is deleted.
func (u *Users) deleteMedia(r *http.Request, _ *httpapi.Caller) (any, error) {
	_, list, _, _, err := u.mediaPage(r)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i] = m.MediaID
	}
	if err := u.uploads.Delete(r.Context(), ids); err != nil {
		return nil, err
	}
	return map[string]any{"deleted_media": ids, "total": len(ids)}, nil
}

// memberships is GET /_synapse/admin/v1/users/{userId}/memberships:
// every room the user has a membership in, with the membership.
func (u *Users) memberships(r *http.Request, _ *httpapi.Caller) (any, error) {
	userID := r.PathValue("userId")
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	ms, err := u.members.Memberships(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"memberships": ms}, nil
}

// getFeatures is GET /_synapse/admin/v1/experimental_features/{userId}:
// Synapse's per-user switches for MSCs it ships disabled. Myelin has
// none, so the list is empty.
func (u *Users) getFeatures(r *http.Request, _ *httpapi.Caller) (any, error) {
	if _, err := u.user(r, "Only local users can have experimental features"); err != nil {
		return nil, err
	}
	return map[string]any{"features": map[string]bool{}}, nil
}

// putFeatures is PUT .../experimental_features/{userId}: every feature
// named is unknown here, which Synapse refuses with 400.
func (u *Users) putFeatures(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req struct {
		Features map[string]bool `json:"features"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if _, err := u.user(r, "Only local users can have experimental features"); err != nil {
		return nil, err
	}
	for name := range req.Features {
		return nil, mxerr.InvalidParam("%s is not recognised as a valid experimental feature.", name)
	}
	return map[string]any{}, nil
}
