package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/push"
)

// Users serves Synapse's admin API for users
// (docs/admin_api/user_admin_api.md): the calls synapse-admin, Ketesa
// and Draupnir make about users.
type Users struct {
	acc     *accounts.Service
	admin   *accounts.Admin
	members Members
	pushers Pushers
	uploads *media.Uploads
	data    AccountData

	crossSigning CrossSigning
}

// Members is what the users API needs of the membership service.
type Members interface {
	// PartAll leaves every room, as deactivation does.
	PartAll(ctx context.Context, userID string) error
	JoinedRooms(ctx context.Context, userID string) ([]string, error)
	// Memberships is every room the user has a membership in.
	Memberships(ctx context.Context, userID string) (map[string]string, error)
	// ProfileChanged re-sends the user's joins after a display name or
	// avatar change.
	ProfileChanged(ctx context.Context, localpart, field string) error
}

// Pushers lists a user's pushers.
type Pushers interface {
	Pushers(ctx context.Context, localpart string) ([]push.PusherInfo, error)
}

// AccountData reads a user's account data.
type AccountData interface {
	Changes(ctx context.Context, userID string, after, upto int64) (global []accountdata.Event, rooms map[string][]accountdata.Event, err error)
}

// UsersDeps are the services the users API works through.
type UsersDeps struct {
	Accounts    *accounts.Service
	Admin       *accounts.Admin
	Members     Members
	Pushers     Pushers
	Uploads     *media.Uploads
	AccountData AccountData
	// CrossSigning opens a user's window for replacing cross-signing
	// keys without UIA; nil leaves that route unserved.
	CrossSigning CrossSigning
}

// NewUsers makes the users API.
func NewUsers(d UsersDeps) *Users {
	return &Users{acc: d.Accounts, admin: d.Admin, members: d.Members, pushers: d.Pushers, uploads: d.Uploads, data: d.AccountData,
		crossSigning: d.CrossSigning}
}

// Register adds the users routes.
func (u *Users) Register(rt *httpapi.Router) {
	add := func(method, path string, h httpapi.Handler) {
		rt.Add(httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, Handler: adminOnly(h)})
	}
	const v1, v2 = "/_synapse/admin/v1", "/_synapse/admin/v2"
	add(http.MethodGet, v2+"/users", u.listV2)
	add(http.MethodGet, "/_synapse/admin/v3/users", u.listV3)
	add(http.MethodGet, v2+"/users/{userId}", u.get)
	add(http.MethodPut, v2+"/users/{userId}", u.put)
	add(http.MethodGet, v2+"/users/{userId}/devices", u.devices)
	add(http.MethodPost, v2+"/users/{userId}/devices", u.createDevice)
	add(http.MethodPost, v2+"/users/{userId}/delete_devices", u.deleteDevices)
	add(http.MethodGet, v2+"/users/{userId}/devices/{deviceId}", u.device)
	add(http.MethodPut, v2+"/users/{userId}/devices/{deviceId}", u.renameDevice)
	add(http.MethodDelete, v2+"/users/{userId}/devices/{deviceId}", u.deleteDevice)
	add(http.MethodGet, v1+"/users/{userId}/joined_rooms", u.joinedRooms)
	add(http.MethodGet, v1+"/users/{userId}/memberships", u.memberships)
	add(http.MethodGet, v1+"/users/{userId}/pushers", u.listPushers)
	add(http.MethodGet, v1+"/experimental_features/{userId}", u.getFeatures)
	add(http.MethodPut, v1+"/experimental_features/{userId}", u.putFeatures)
	add(http.MethodGet, v1+"/users/{userId}/accountdata", u.accountData)
	add(http.MethodGet, v1+"/users/{userId}/admin", u.getAdmin)
	add(http.MethodPut, v1+"/users/{userId}/admin", u.putAdmin)
	add(http.MethodPost, v1+"/users/{userId}/shadow_ban", u.shadowBan)
	add(http.MethodDelete, v1+"/users/{userId}/shadow_ban", u.unShadowBan)
	add(http.MethodGet, v1+"/users/{userId}/override_ratelimit", u.getRateLimit)
	add(http.MethodPost, v1+"/users/{userId}/override_ratelimit", u.setRateLimit)
	add(http.MethodDelete, v1+"/users/{userId}/override_ratelimit", u.deleteRateLimit)
	add(http.MethodGet, v1+"/users/{userId}/media", u.listMedia)
	add(http.MethodDelete, v1+"/users/{userId}/media", u.deleteMedia)
	add(http.MethodPost, v1+"/reset_password/{userId}", u.resetPassword)
	add(http.MethodPost, v1+"/deactivate/{userId}", u.deactivate)
	add(http.MethodGet, v1+"/username_available", u.usernameAvailable)
	if u.crossSigning != nil {
		add(http.MethodPost, v1+"/users/{userId}/_allow_cross_signing_replacement_without_uia", u.allowCrossSigningReplacement)
	}
	// Whois is also the client-server API's /admin/whois, and a user may
	// ask about themselves (Synapse allows both).
	for _, p := range []string{v1 + "/whois/{userId}", "/_matrix/client/v3/admin/whois/{userId}", "/_matrix/client/r0/admin/whois/{userId}"} {
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: p, Auth: httpapi.AuthRequired, Handler: u.whois})
	}
}

// localpart is the path's user ID when it is a local one; anything else
// is 400 with Synapse's wording (why, e.g. "Can only look up local users").
func (u *Users) localpart(r *http.Request, why string) (string, error) {
	userID := r.PathValue("userId")
	if err := checkUserID(userID); err != nil {
		return "", err
	}
	lp, local := u.acc.LocalpartOf(userID)
	if !local {
		return "", mxerr.InvalidParam("%s", why)
	}
	return lp, nil
}

// checkUserID refuses what is not a user ID (@localpart:server).
func checkUserID(userID string) error {
	lp, server, ok := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	if !strings.HasPrefix(userID, "@") || !ok || lp == "" || server == "" {
		return mxerr.InvalidParam("Invalid user ID %q", userID)
	}
	return nil
}

// user is the path's local user, 404 M_NOT_FOUND when there is none.
func (u *Users) user(r *http.Request, why string) (accounts.User, error) {
	lp, err := u.localpart(r, why)
	if err != nil {
		return accounts.User{}, err
	}
	return u.acc.User(r.Context(), lp)
}

// listV2 is GET /_synapse/admin/v2/users: deactivated users are left out
// unless deactivated=true.
func (u *Users) listV2(r *http.Request, _ *httpapi.Caller) (any, error) {
	return u.list(r, false)
}

// listV3 is GET /_synapse/admin/v3/users: deactivated=true lists only
// deactivated users, false only the others, absent both.
func (u *Users) listV3(r *http.Request, _ *httpapi.Caller) (any, error) {
	return u.list(r, true)
}

// parseUserQuery reads the user list's query parameters as Synapse does.
func parseUserQuery(q url.Values, v3 bool) (accounts.UserQuery, error) {
	query := accounts.UserQuery{Order: "name"}
	var err error
	if query.From, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return query, err
	}
	if query.Limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return query, err
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"user_id", &query.UserID}, {"name", &query.Name}} {
		v := q.Get(p.name)
		if ident.CheckText(v) != nil {
			return query, mxerr.InvalidParam("Query parameter %s is not valid text", p.name)
		}
		*p.dst = v
	}
	// not_user_type may repeat; an empty one leaves out users with no
	// type (Synapse).
	for _, t := range q["not_user_type"] {
		if ident.CheckText(t) != nil {
			return query, mxerr.InvalidParam("Query parameter not_user_type is not valid text")
		}
		query.NotUserTypes = append(query.NotUserTypes, t)
	}
	if v := q.Get("order_by"); v != "" {
		if !accounts.ValidUserOrder(v) {
			return query, mxerr.InvalidParam("Unknown value for order_by: %s", v)
		}
		query.Order = v
	}
	switch q.Get("dir") {
	case "", "f":
	case "b":
		query.Desc = true
	default:
		return query, mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
	}
	guests, err := queryBool(q, "guests")
	if err != nil {
		return query, err
	}
	query.Guests = guests == nil || *guests
	locked, err := queryBool(q, "locked")
	if err != nil {
		return query, err
	}
	query.IncludeLocked = locked != nil && *locked
	if query.Admins, err = queryBool(q, "admins"); err != nil {
		return query, err
	}
	deactivated, err := queryBool(q, "deactivated")
	if err != nil {
		return query, err
	}
	switch {
	case v3:
		query.Deactivated = deactivated
	case deactivated == nil || !*deactivated:
		// v2: deactivated=true includes them, anything else leaves them out.
		no := false
		query.Deactivated = &no
	}
	return query, nil
}

func (u *Users) list(r *http.Request, v3 bool) (any, error) {
	query, err := parseUserQuery(r.URL.Query(), v3)
	if err != nil {
		return nil, err
	}
	list, total, err := u.admin.ListUsers(r.Context(), query)
	if err != nil {
		return nil, err
	}
	users := make([]map[string]any, len(list))
	for i, l := range list {
		users[i] = userEntry(l.User, l.DisplayName, l.AvatarURL, l.LastSeenTS)
		// The list gives creation_ts in milliseconds, the single user in
		// seconds: Synapse's two endpoints differ so, and tools expect it.
		users[i]["creation_ts"] = l.CreatedTS
	}
	resp := map[string]any{"users": users, "total": total}
	if int64(query.From+len(list)) < total {
		resp["next_token"] = strconv.Itoa(query.From + len(list))
	}
	return resp, nil
}

// userEntry is the fields the list and the single user share.
func userEntry(usr accounts.User, displayName, avatarURL string, lastSeen int64) map[string]any {
	e := map[string]any{
		"name": usr.UserID, "is_guest": usr.IsGuest, "admin": usr.IsAdmin, "user_type": nil, "deactivated": usr.Deactivated,
		"erased": usr.Erased, "shadow_banned": usr.ShadowBanned, "displayname": profileString(displayName),
		"avatar_url": profileString(avatarURL), "creation_ts": usr.CreatedTS / 1000, "locked": usr.Locked,
		"suspended": usr.Suspended, "approved": true, "last_seen_ts": nil,
	}
	if usr.UserType != "" {
		e["user_type"] = usr.UserType
	}
	if lastSeen > 0 {
		e["last_seen_ts"] = lastSeen
	}
	return e
}

// profileString decodes a raw profile value, nil when unset or not a
// string.
func profileString(raw string) any {
	var s string
	if raw == "" || json.Unmarshal([]byte(raw), &s) != nil {
		return nil
	}
	return s
}

// details is GET /_synapse/admin/v2/users/{userId}'s answer.
func (u *Users) details(ctx context.Context, usr accounts.User) (map[string]any, error) {
	profile, err := u.acc.Profile(ctx, usr.Localpart)
	if err != nil {
		return nil, err
	}
	lastSeen, err := u.admin.LastSeen(ctx, usr.Localpart)
	if err != nil {
		return nil, err
	}
	e := userEntry(usr, string(profile["displayname"]), string(profile["avatar_url"]), lastSeen)
	// Myelin keeps no third-party or external IDs, nor consent.
	e["threepids"], e["external_ids"] = []any{}, []any{}
	e["appservice_id"], e["consent_server_notice_sent"], e["consent_version"], e["consent_ts"] = nil, nil, nil, nil
	return e, nil
}

func (u *Users) get(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only look up local users")
	if err != nil {
		return nil, err
	}
	return u.details(r.Context(), usr)
}

// userBody is PUT /_synapse/admin/v2/users/{userId}'s body: each field
// is applied only when present, as Synapse does.
type userBody struct {
	raw map[string]json.RawMessage
}

func (b userBody) has(key string) bool {
	v, ok := b.raw[key]
	return ok && string(v) != "null"
}

func (b userBody) bool(key string) (bool, error) {
	var v bool
	if err := json.Unmarshal(b.raw[key], &v); err != nil {
		return false, mxerr.InvalidParam("'%s' parameter is not of type boolean", key)
	}
	return v, nil
}

func (b userBody) string(key, invalid string) (string, error) {
	var v string
	if err := json.Unmarshal(b.raw[key], &v); err != nil {
		return "", mxerr.InvalidParam("%s", invalid)
	}
	return v, nil
}

// change is what a PUT asks for, checked before anything is done.
type change struct {
	password                   *string
	logoutDevices              bool
	displayName, avatarURL     json.RawMessage
	admin, deactivated, locked *bool
	userType                   *string // "" clears it
	setUserType                bool
}

func parseChange(b userBody) (change, error) {
	ch := change{logoutDevices: true}
	if b.has("password") {
		pw, err := b.string("password", "Invalid password")
		if err != nil || pw == "" || len(pw) > 512 {
			return ch, mxerr.InvalidParam("Invalid password")
		}
		ch.password = &pw
	}
	if b.has("logout_devices") {
		v, err := b.bool("logout_devices")
		if err != nil {
			return ch, err
		}
		ch.logoutDevices = v
	}
	for key, dst := range map[string]*json.RawMessage{"displayname": &ch.displayName, "avatar_url": &ch.avatarURL} {
		if raw, ok := b.raw[key]; ok {
			var s *string
			if json.Unmarshal(raw, &s) != nil {
				return ch, mxerr.InvalidParam("'%s' parameter is not of type string", key)
			}
			*dst = raw
		}
	}
	for key, dst := range map[string]**bool{"admin": &ch.admin, "deactivated": &ch.deactivated, "locked": &ch.locked} {
		if b.has(key) {
			v, err := b.bool(key)
			if err != nil {
				return ch, err
			}
			*dst = &v
		}
	}
	if raw, ok := b.raw["user_type"]; ok {
		var t *string
		if json.Unmarshal(raw, &t) != nil || (t != nil && *t != "bot" && *t != "support") {
			return ch, mxerr.InvalidParam("Invalid user type")
		}
		ch.setUserType = true
		ch.userType = t
	}
	// threepids and external_ids: Synapse checks their shape; Myelin
	// keeps neither, so they are checked and otherwise ignored.
	for _, key := range []string{"threepids", "external_ids"} {
		if !b.has(key) {
			continue
		}
		var list []map[string]any
		if json.Unmarshal(b.raw[key], &list) != nil {
			return ch, mxerr.InvalidParam("'%s' parameter is not a list of objects", key)
		}
	}
	return ch, nil
}

// put is PUT /_synapse/admin/v2/users/{userId}: creates the account
// (201) or changes it (200), answering its details either way.
func (u *Users) put(r *http.Request, c *httpapi.Caller) (any, error) {
	lp, err := u.localpart(r, "This endpoint can only be used with local users")
	if err != nil {
		return nil, err
	}
	var b userBody
	if err := httpapi.ReadJSON(r, &b.raw); err != nil {
		return nil, err
	}
	ch, err := parseChange(b)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	usr, err := u.acc.User(ctx, lp)
	created := false
	switch {
	case errors.Is(err, accounts.ErrNoSuchUser):
		if usr, err = u.create(ctx, lp, ch); err != nil {
			return nil, err
		}
		created = true
	case err != nil:
		return nil, err
	default:
		if usr.UserID == c.UserID && ch.admin != nil && !*ch.admin {
			return nil, mxerr.InvalidParam("You may not demote yourself.")
		}
		if err := u.modify(ctx, usr, ch); err != nil {
			return nil, err
		}
	}
	if usr, err = u.acc.User(ctx, lp); err != nil {
		return nil, err
	}
	d, err := u.details(ctx, usr)
	if err != nil || !created {
		return d, err
	}
	return &httpapi.Response{Status: http.StatusCreated, Body: d}, nil
}

func (u *Users) create(ctx context.Context, lp string, ch change) (accounts.User, error) {
	if err := u.acc.ValidateNewLocalpart(lp); err != nil {
		return accounts.User{}, err
	}
	na := accounts.NewAccount{Localpart: lp, Admin: ch.admin != nil && *ch.admin}
	if ch.password != nil {
		na.Password = *ch.password
	}
	if ch.userType != nil {
		na.UserType = *ch.userType
	}
	usr, err := u.acc.CreateAccount(ctx, na)
	if err != nil {
		return accounts.User{}, err
	}
	// The profile, lock and deactivation of a new account are those of
	// a change to it (a new account is in no room yet).
	ch.admin, ch.password, ch.setUserType = nil, nil, false
	return usr, u.modify(ctx, usr, ch)
}

func (u *Users) modify(ctx context.Context, usr accounts.User, ch change) error {
	lp := usr.Localpart
	reactivate := ch.deactivated != nil && !*ch.deactivated && usr.Deactivated
	if reactivate {
		if ch.password == nil {
			return mxerr.InvalidParam("Must provide a password to re-activate an account.")
		}
		if err := u.admin.Reactivate(ctx, lp, *ch.password); err != nil {
			return err
		}
	} else if ch.password != nil {
		if _, err := u.acc.ChangePassword(ctx, lp, *ch.password, ch.logoutDevices, ""); err != nil {
			return err
		}
	}
	for field, raw := range map[string]json.RawMessage{"displayname": ch.displayName, "avatar_url": ch.avatarURL} {
		if raw == nil {
			continue
		}
		if err := u.acc.SetProfileField(ctx, lp, field, raw); err != nil {
			return err
		}
		if err := u.members.ProfileChanged(ctx, lp, field); err != nil {
			return err
		}
	}
	if ch.admin != nil {
		if err := u.acc.SetAdmin(ctx, lp, *ch.admin); err != nil {
			return err
		}
	}
	if ch.setUserType {
		t := ""
		if ch.userType != nil {
			t = *ch.userType
		}
		if err := u.admin.SetUserType(ctx, lp, t); err != nil {
			return err
		}
	}
	if ch.locked != nil {
		if err := u.acc.SetLocked(ctx, lp, *ch.locked); err != nil {
			return err
		}
	}
	if ch.deactivated != nil && *ch.deactivated && !usr.Deactivated {
		return u.deactivateUser(ctx, usr, false)
	}
	return nil
}

// deactivateUser parts every room and closes the account, as the
// client's own deactivation does.
func (u *Users) deactivateUser(ctx context.Context, usr accounts.User, erase bool) error {
	if err := u.members.PartAll(ctx, usr.UserID); err != nil {
		return err
	}
	return u.acc.Deactivate(ctx, usr.Localpart, erase)
}

// deactivate is POST /_synapse/admin/v1/deactivate/{userId} with an
// optional {"erase": bool}.
func (u *Users) deactivate(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req map[string]json.RawMessage
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	erase := false
	if raw, ok := req["erase"]; ok {
		if json.Unmarshal(raw, &erase) != nil {
			return nil, mxerr.InvalidParam("Param 'erase' must be a boolean, if given")
		}
	}
	usr, err := u.user(r, "Can only deactivate local users")
	if err != nil {
		return nil, err
	}
	if err := u.deactivateUser(r.Context(), usr, erase); err != nil {
		return nil, err
	}
	return map[string]any{"id_server_unbind_result": "success"}, nil
}

// resetPassword is POST /_synapse/admin/v1/reset_password/{userId}.
func (u *Users) resetPassword(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	b := userBody{raw: req}
	if !b.has("new_password") {
		return nil, mxerr.MissingParam("Missing params: ['new_password']")
	}
	pw, err := b.string("new_password", "Invalid password")
	if err != nil || pw == "" || len(pw) > 512 {
		return nil, mxerr.InvalidParam("Invalid password")
	}
	logout := true
	if b.has("logout_devices") {
		if logout, err = b.bool("logout_devices"); err != nil {
			return nil, err
		}
	}
	usr, err := u.user(r, "Can only change the password of local users")
	if err != nil {
		return nil, err
	}
	if _, err := u.acc.ChangePassword(r.Context(), usr.Localpart, pw, logout, ""); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// usernameAvailable is GET /_synapse/admin/v1/username_available: the
// registration checks without registration being open.
func (u *Users) usernameAvailable(r *http.Request, _ *httpapi.Caller) (any, error) {
	name := r.URL.Query().Get("username")
	if name == "" {
		return nil, mxerr.MissingParam("Missing string query parameter 'username'")
	}
	if ident.CheckText(name) != nil {
		return nil, mxerr.InvalidUsername("User ID can only contain characters a-z, 0-9, or '._=-/+'")
	}
	if err := u.acc.CheckAvailable(r.Context(), name); err != nil {
		return nil, err
	}
	return map[string]any{"available": true}, nil
}

// queryBool is a boolean query parameter as Synapse parses them: "true"
// or "false", nil when absent.
func queryBool(q url.Values, name string) (*bool, error) {
	if !q.Has(name) {
		return nil, nil
	}
	switch q.Get(name) {
	case "true":
		v := true
		return &v, nil
	case "false":
		v := false
		return &v, nil
	}
	return nil, mxerr.InvalidParam("Boolean query parameter %q must be one of ['true', 'false']", name)
}
