package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// UserOrder is a column Synapse's admin user list may be sorted by
// (its order_by values).
type UserOrder string

// userOrderColumns maps each order_by value Synapse accepts to its
// expression here; a NULL-free expression, so that both engines place
// users without a display name or a last-seen time alike.
var userOrderColumns = map[UserOrder]string{
	"name":          "u.user_id",
	"is_guest":      "u.is_guest",
	"admin":         "u.is_admin",
	"user_type":     "u.user_type",
	"deactivated":   "u.deactivated",
	"shadow_banned": "u.shadow_banned",
	"displayname":   "COALESCE(dn.value, '')",
	"avatar_url":    "COALESCE(av.value, '')",
	"creation_ts":   "u.created_ts",
	"last_seen_ts":  "COALESCE(ls.last_seen_ts, 0)",
	"locked":        "u.locked",
	"suspended":     "u.suspended",
	// Myelin approves every account at registration.
	"approved": "u.user_id",
}

// ValidUserOrder reports whether order is one the user list sorts by.
func ValidUserOrder(order UserOrder) bool {
	_, ok := userOrderColumns[order]
	return ok
}

// UserQuery selects a page of the admin user list.
type UserQuery struct {
	// UserID and Name are case-insensitive substrings: of the user ID;
	// of the user ID or the display name.
	UserID, Name string
	// Guests includes guest accounts; IncludeLocked locked ones.
	Guests, IncludeLocked bool
	// Deactivated, Admins: nil for both, else only those (not) so.
	Deactivated, Admins *bool
	// NotUserTypes leaves out users of these types ("" is no type).
	NotUserTypes []string
	Order        UserOrder
	Desc         bool
	From, Limit  int
}

// UserListing is a user as the admin user list shows it: the account,
// its profile's display name and avatar (raw JSON values, "" when unset)
// and when one of its devices was last seen (0: never).
type UserListing struct {
	User
	DisplayName, AvatarURL string
	LastSeenTS             int64
}

// likePattern is a LIKE pattern matching s anywhere, with LIKE's own
// wildcards in s taken literally (the query says ESCAPE '\').
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// ListUsers is a page of local accounts for the admin API, and how many
// match in all.
func (db *DB) ListUsers(ctx context.Context, q UserQuery) ([]UserListing, int64, error) {
	order, ok := userOrderColumns[q.Order]
	if !ok {
		return nil, 0, fmt.Errorf("store: unknown user order %q", q.Order)
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Name != "" {
		p := arg(likePattern(q.Name))
		where = append(where, `(LOWER(u.user_id) LIKE `+p+` ESCAPE '\' OR LOWER(COALESCE(dn.value, '')) LIKE `+p+` ESCAPE '\')`)
	} else if q.UserID != "" {
		where = append(where, `LOWER(u.user_id) LIKE `+arg(likePattern(q.UserID))+` ESCAPE '\'`)
	}
	if !q.Guests {
		where = append(where, `u.is_guest = FALSE`)
	}
	if !q.IncludeLocked {
		where = append(where, `u.locked = FALSE`)
	}
	for col, v := range map[string]*bool{"u.deactivated": q.Deactivated, "u.is_admin": q.Admins} {
		if v != nil {
			where = append(where, fmt.Sprintf("%s = %t", col, *v))
		}
	}
	if len(q.NotUserTypes) > 0 {
		ph := make([]string, len(q.NotUserTypes))
		for i, t := range q.NotUserTypes {
			ph[i] = arg(t)
		}
		where = append(where, `u.user_type NOT IN (`+strings.Join(ph, ", ")+`)`)
	}
	from := ` FROM users u
		LEFT JOIN profile_fields dn ON dn.localpart = u.localpart AND dn.field = 'displayname'
		LEFT JOIN profile_fields av ON av.localpart = u.localpart AND av.field = 'avatar_url'
		LEFT JOIN (SELECT localpart, MAX(last_seen_ts) AS last_seen_ts FROM devices GROUP BY localpart) ls ON ls.localpart = u.localpart`
	if len(where) > 0 {
		// Sorted, so that the map's order gives one query text per filter set.
		slices.Sort(where)
		from += " WHERE " + strings.Join(where, " AND ")
	}
	var total int64
	if err := db.r().queryRow(ctx, `SELECT COUNT(*)`+from, args, &total); err != nil {
		return nil, 0, err
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	page := from + ` ORDER BY ` + order + ` ` + dir + `, u.user_id ASC LIMIT ` + arg(q.Limit) + ` OFFSET ` + arg(q.From)
	list, err := collect(ctx, db.r(), func(scan func(...any) error) (UserListing, error) {
		var l UserListing
		var dn, av *string
		var seen *int64
		u := &l.User
		err := scan(&u.Localpart, &u.UserID, &u.IsAdmin, &u.IsGuest, &u.UserType, &u.Deactivated, &u.CreatedTS, &u.Locked, &u.Suspended,
			&u.ShadowBanned, &u.Erased, &dn, &av, &seen)
		if dn != nil {
			l.DisplayName = *dn
		}
		if av != nil {
			l.AvatarURL = *av
		}
		if seen != nil {
			l.LastSeenTS = *seen
		}
		return l, err
	}, `SELECT u.localpart, u.user_id, u.is_admin, u.is_guest, u.user_type, u.deactivated, u.created_ts, u.locked, u.suspended,
		u.shadow_banned, u.erased, dn.value, av.value, ls.last_seen_ts`+page, args...)
	return list, total, err
}

// LastSeen is when one of a user's devices was last seen (0: never).
func (db *DB) LastSeen(ctx context.Context, localpart string) (int64, error) {
	var ts *int64
	err := db.r().queryRow(ctx, `SELECT MAX(last_seen_ts) FROM devices WHERE localpart = $1`, []any{localpart}, &ts)
	if err != nil || ts == nil {
		return 0, err
	}
	return *ts, nil
}

// ReactivateUser undoes a deactivation (Synapse's admin API allows it):
// the account gets a password again and is no longer erased.
func (db *DB) ReactivateUser(ctx context.Context, localpart, hash string) error {
	return affected(db.w().exec(ctx, `UPDATE users SET deactivated = FALSE, erased = FALSE, password_hash = $2 WHERE localpart = $1`, localpart, hash))
}

// SetUserType changes an account's user type ("" for a regular user).
func (db *DB) SetUserType(ctx context.Context, localpart, userType string) error {
	return affected(db.w().exec(ctx, `UPDATE users SET user_type = $2 WHERE localpart = $1`, localpart, userType))
}

// SetShadowBanned shadow-bans or un-shadow-bans an account; ErrNotFound
// for none.
func (db *DB) SetShadowBanned(ctx context.Context, localpart string, banned bool) error {
	return affected(db.w().exec(ctx, `UPDATE users SET shadow_banned = $2 WHERE localpart = $1`, localpart, banned))
}

// ErasedUserIDs lists the erased local accounts.
func (db *DB) ErasedUserIDs(ctx context.Context) ([]string, error) {
	return db.r().strings(ctx, `SELECT user_id FROM users WHERE erased = TRUE`)
}

// RateOverride is a user's own rate limit: messages per second and
// burst; both 0 exempt the user.
type RateOverride struct {
	Localpart                     string
	MessagesPerSecond, BurstCount int64
}

// RateOverrides lists every user's rate-limit override.
func (db *DB) RateOverrides(ctx context.Context) ([]RateOverride, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (RateOverride, error) {
		var o RateOverride
		err := scan(&o.Localpart, &o.MessagesPerSecond, &o.BurstCount)
		return o, err
	}, `SELECT localpart, messages_per_second, burst_count FROM ratelimit_overrides`)
}

// SetRateOverride sets a user's rate-limit override.
func (db *DB) SetRateOverride(ctx context.Context, o RateOverride) error {
	_, err := db.w().exec(ctx, `INSERT INTO ratelimit_overrides (localpart, messages_per_second, burst_count) VALUES ($1, $2, $3)
		ON CONFLICT (localpart) DO UPDATE SET messages_per_second = excluded.messages_per_second, burst_count = excluded.burst_count`,
		o.Localpart, o.MessagesPerSecond, o.BurstCount)
	return err
}

// DeleteRateOverride removes a user's override (none is no error).
func (db *DB) DeleteRateOverride(ctx context.Context, localpart string) error {
	_, err := db.w().exec(ctx, `DELETE FROM ratelimit_overrides WHERE localpart = $1`, localpart)
	return err
}

// uploadOrderColumns maps the order_by values of Synapse's user media
// list to columns here.
var uploadOrderColumns = map[string]string{
	"media_id": "media_id", "upload_name": "filename", "created_ts": "created_ts", "last_access_ts": "last_access_ts",
	"media_length": "size", "media_type": "content_type", "quarantined_by": "quarantined_by", "safe_from_quarantine": "safe_from_quarantine",
}

// ValidUploadOrder reports whether the user media list sorts by order.
func ValidUploadOrder(order string) bool {
	_, ok := uploadOrderColumns[order]
	return ok
}

// UserUploads is a page of the media a local user uploaded to this
// server (origin), sorted by order, and how many there are in all.
func (db *DB) UserUploads(ctx context.Context, origin, uploader, order string, desc bool, from, limit int) ([]Media, int64, error) {
	col, ok := uploadOrderColumns[order]
	if !ok {
		return nil, 0, fmt.Errorf("store: unknown media order %q", order)
	}
	var total int64
	if err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM media WHERE origin = $1 AND uploader = $2`, []any{origin, uploader}, &total); err != nil {
		return nil, 0, err
	}
	dir := "ASC"
	if desc {
		dir = "DESC"
	}
	list, err := collect(ctx, db.r(), func(scan func(...any) error) (Media, error) {
		var m Media
		err := scan(&m.Origin, &m.MediaID, &m.ContentType, &m.Filename, &m.Size, &m.SHA256, &m.Uploader, &m.CreatedTS, &m.UnusedExpiresTS,
			&m.QuarantinedBy, &m.SafeFromQuarantine, &m.LastAccessTS)
		return m, err
	}, `SELECT `+mediaColumns+`, quarantined_by, safe_from_quarantine, last_access_ts FROM media WHERE origin = $1 AND uploader = $2 ORDER BY `+col+` `+dir+`, media_id ASC LIMIT $3 OFFSET $4`,
		origin, uploader, limit, from)
	return list, total, err
}
