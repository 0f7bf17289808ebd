package store

import (
	"context"
	"database/sql"
)

// The media admin API's storage (Synapse's quarantine, protect, delete,
// purge and statistics), over the media table of 0009_media.sql and the
// quarantine columns of 0029_admin_media.sql.

// MediaRef names one mxc:// URI.
type MediaRef struct{ Origin, MediaID string }

// QuarantineMedia marks media quarantined by admin, and with it every
// media holding the same bytes (Synapse quarantines by hash since 1.128).
// Protected media is left alone. A remote ref with no row gets an empty
// one (no bytes), so that it is never fetched later. It returns how many
// rows were newly quarantined.
func (db *DB) QuarantineMedia(ctx context.Context, refs []MediaRef, localServer, admin string, nowTS int64) (int64, error) {
	var total int64
	err := db.tx(ctx, func(c conn) error {
		for _, r := range refs {
			if r.Origin != localServer {
				if _, err := c.exec(ctx, `INSERT INTO media (origin, media_id, content_type, filename, size, sha256, uploader, created_ts,
					unused_expires_ts) VALUES ($1, $2, '', '', 0, '', '', $3, 0) ON CONFLICT (origin, media_id) DO NOTHING`,
					r.Origin, r.MediaID, nowTS); err != nil {
					return err
				}
			}
			res, err := c.exec(ctx, `UPDATE media SET quarantined_by = $3
				WHERE quarantined_by = '' AND safe_from_quarantine = FALSE
				AND ((origin = $1 AND media_id = $2)
					OR (sha256 <> '' AND sha256 IN (SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2)))`,
				r.Origin, r.MediaID, admin)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, err
}

// UnquarantineMedia lifts the quarantine of a media ID and of the media
// holding the same bytes, and forgets the empty row of a remote media
// that was never cached (it may be fetched again).
func (db *DB) UnquarantineMedia(ctx context.Context, ref MediaRef, localServer string) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `UPDATE media SET quarantined_by = ''
			WHERE (origin = $1 AND media_id = $2)
				OR (sha256 <> '' AND sha256 IN (SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2))`,
			ref.Origin, ref.MediaID); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM media WHERE origin = $1 AND media_id = $2 AND origin <> $3 AND sha256 = ''`,
			ref.Origin, ref.MediaID, localServer)
		return err
	})
}

// InheritQuarantine quarantines newly stored media whose bytes are those
// of quarantined media (Synapse: "quarantine any future media" with a
// matching hash), before its URI is handed out.
func (db *DB) InheritQuarantine(ctx context.Context, ref MediaRef) error {
	_, err := db.w().exec(ctx, `UPDATE media SET quarantined_by =
			(SELECT MAX(q.quarantined_by) FROM media q WHERE q.sha256 = media.sha256 AND q.quarantined_by <> '')
		WHERE origin = $1 AND media_id = $2 AND sha256 <> '' AND quarantined_by = '' AND safe_from_quarantine = FALSE
			AND EXISTS (SELECT 1 FROM media q WHERE q.sha256 = media.sha256 AND q.quarantined_by <> '')`,
		ref.Origin, ref.MediaID)
	return err
}

// SetMediaProtected sets or clears a local media's protection from
// quarantine; ErrNotFound for an unknown media ID.
func (db *DB) SetMediaProtected(ctx context.Context, ref MediaRef, protected bool) error {
	return affected(db.w().exec(ctx, `UPDATE media SET safe_from_quarantine = $3 WHERE origin = $1 AND media_id = $2`,
		ref.Origin, ref.MediaID, protected))
}

// UploadedMedia lists the media IDs of origin that uploader stored (with
// bytes), for the user quarantine.
func (db *DB) UploadedMedia(ctx context.Context, origin, uploader string) ([]string, error) {
	return db.r().strings(ctx, `SELECT media_id FROM media WHERE origin = $1 AND uploader = $2 AND sha256 <> ''`, origin, uploader)
}

// RoomURLEvents returns the JSON of a room's events whose content has a
// url (contains_url), redacted ones included: the media of a redacted
// event is still stored and still wants quarantining.
func (db *DB) RoomURLEvents(ctx context.Context, roomID string) ([]string, error) {
	return db.r().strings(ctx, `SELECT json FROM events WHERE room_id = $1 AND contains_url = TRUE`, roomID)
}

// DeleteMediaRows forgets a media ID and its thumbnails, returning the
// hashes of the files they pointed at (the caller deletes the files no
// longer in use); ErrNotFound if the media ID is unknown.
func (db *DB) DeleteMediaRows(ctx context.Context, ref MediaRef) ([]string, error) {
	var hashes []string
	err := db.tx(ctx, func(c conn) error {
		var err error
		hashes, err = c.strings(ctx, `SELECT sha256 FROM media WHERE origin = $1 AND media_id = $2 AND sha256 <> ''
			UNION SELECT sha256 FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID)
		if err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID); err != nil {
			return err
		}
		return affected(c.exec(ctx, `DELETE FROM media WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID))
	})
	return hashes, err
}

// notAccessedSince is the condition of Synapse's media deletion by
// date: last read before $2, or, never read, stored before $2.
const notAccessedSince = `((last_access_ts > 0 AND last_access_ts < $2) OR (last_access_ts = 0 AND created_ts < $2))`

// OldLocalMedia lists the local media IDs not read since beforeTS (or,
// never read, stored before it) and larger than sizeGT bytes, as
// Synapse's delete by date and size picks them: never quarantined or
// protected media, and, with keepProfiles, never a user's avatar.
func (db *DB) OldLocalMedia(ctx context.Context, origin string, beforeTS, sizeGT int64, keepProfiles bool) ([]string, error) {
	q := `SELECT media_id FROM media m WHERE origin = $1 AND ` + notAccessedSince + ` AND size > $3 AND sha256 <> ''
		AND quarantined_by = '' AND safe_from_quarantine = FALSE`
	if keepProfiles {
		// profile_fields keeps JSON values: a string avatar_url is quoted.
		q += ` AND NOT EXISTS (SELECT 1 FROM profile_fields p WHERE p.field = 'avatar_url'
			AND p.value = '"mxc://' || m.origin || '/' || m.media_id || '"')`
	}
	return db.r().strings(ctx, q+` ORDER BY created_ts`, origin, beforeTS, sizeGT)
}

// OldRemoteMedia lists cached copies of other servers' media not read
// since beforeTS (or, never read, fetched before it), as Synapse's
// purge_media_cache; quarantined media is kept, so that it is not
// fetched again (Synapse keeps it too).
func (db *DB) OldRemoteMedia(ctx context.Context, localServer string, beforeTS int64) ([]MediaRef, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (MediaRef, error) {
		var r MediaRef
		err := scan(&r.Origin, &r.MediaID)
		return r, err
	}, `SELECT origin, media_id FROM media WHERE origin <> $1 AND `+notAccessedSince+` AND quarantined_by = '' AND sha256 <> ''
		ORDER BY created_ts`, localServer, beforeTS)
}

// UserMediaUsage is one uploader's local media: count and bytes.
// DisplayName is the profile field's JSON value (” when unset).
type UserMediaUsage struct {
	UserID          string
	DisplayNameJSON string
	Count, Length   int64
}

// MediaUsageByUser sums the local media each user stored between fromTS
// and untilTS (inclusive), for Synapse's statistics/users/media.
func (db *DB) MediaUsageByUser(ctx context.Context, origin string, fromTS, untilTS int64) ([]UserMediaUsage, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (UserMediaUsage, error) {
		var u UserMediaUsage
		var name sql.NullString
		err := scan(&u.UserID, &u.Count, &u.Length, &name)
		u.DisplayNameJSON = name.String
		return u, err
	}, `SELECT m.uploader, COUNT(*), CAST(COALESCE(SUM(m.size), 0) AS BIGINT), MAX(p.value)
		FROM media m
		LEFT JOIN users u ON u.user_id = m.uploader
		LEFT JOIN profile_fields p ON p.localpart = u.localpart AND p.field = 'displayname'
		WHERE m.origin = $1 AND m.uploader <> '' AND m.sha256 <> '' AND m.created_ts >= $2 AND m.created_ts <= $3
		GROUP BY m.uploader`, origin, fromTS, untilTS)
}

// RoomSize is a room's share of the database, estimated.
type RoomSize struct {
	RoomID string
	Size   int64
}

// LargestRooms estimates the rooms' sizes as the sum of the lengths of
// their events' JSON (the bulk of a room's rows; indexes, state
// snapshots and media are not counted) and returns the limit largest.
func (db *DB) LargestRooms(ctx context.Context, limit int) ([]RoomSize, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (RoomSize, error) {
		var r RoomSize
		err := scan(&r.RoomID, &r.Size)
		return r, err
	}, `SELECT room_id, CAST(SUM(LENGTH(json)) AS BIGINT) AS size FROM events GROUP BY room_id ORDER BY size DESC, room_id LIMIT $1`, limit)
}

// OldRemoteThumbnailsOnly lists other servers' media of which only
// thumbnails are cached (asked of their server without the original),
// made before beforeTS.
func (db *DB) OldRemoteThumbnailsOnly(ctx context.Context, localServer string, beforeTS int64) ([]MediaRef, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (MediaRef, error) {
		var r MediaRef
		err := scan(&r.Origin, &r.MediaID)
		return r, err
	}, `SELECT DISTINCT origin, media_id FROM media_thumbnails t WHERE origin <> $1 AND created_ts < $2
		AND NOT EXISTS (SELECT 1 FROM media m WHERE m.origin = t.origin AND m.media_id = t.media_id)`, localServer, beforeTS)
}

// DeleteThumbnailRows forgets a media ID's thumbnails, returning the
// hashes of their files (the caller deletes the files no longer in use).
func (db *DB) DeleteThumbnailRows(ctx context.Context, ref MediaRef) ([]string, error) {
	var hashes []string
	err := db.tx(ctx, func(c conn) error {
		var err error
		hashes, err = c.strings(ctx, `SELECT DISTINCT sha256 FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID)
		if err != nil {
			return err
		}
		_, err = c.exec(ctx, `DELETE FROM media_thumbnails WHERE origin = $1 AND media_id = $2`, ref.Origin, ref.MediaID)
		return err
	})
	return hashes, err
}
