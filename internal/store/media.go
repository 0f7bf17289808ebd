package store

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/ident"
)

// Media is one mxc:// URI's metadata. SHA256 is empty while an async
// upload waits for its bytes.
type Media struct {
	Origin, MediaID       string
	ContentType, Filename string
	Size                  int64
	SHA256                string
	Uploader              string
	CreatedTS             int64
	// UnusedExpiresTS is when a pending async upload's URI lapses.
	UnusedExpiresTS int64
	// QuarantinedBy is the admin who quarantined the media ('' if not);
	// SafeFromQuarantine is set by the protect admin API (adminmedia.go).
	QuarantinedBy      string
	SafeFromQuarantine bool
	// LastAccessTS is when the media was last downloaded or thumbnailed
	// (0: never), written in batches (SetMediaAccessTimes).
	LastAccessTS int64
}

const mediaColumns = `origin, media_id, content_type, filename, size, sha256, uploader, created_ts, unused_expires_ts`

// InsertMedia records a media ID; ErrConflict if it exists.
func (db *DB) InsertMedia(ctx context.Context, m Media) error {
	_, err := db.w().exec(ctx, `INSERT INTO media (`+mediaColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		m.Origin, m.MediaID, ident.FreeText(m.ContentType), ident.FreeText(m.Filename), m.Size, m.SHA256, m.Uploader, m.CreatedTS, m.UnusedExpiresTS)
	return err
}

// UpsertRemoteMedia records (or refreshes) a cached copy of another
// server's media.
func (db *DB) UpsertRemoteMedia(ctx context.Context, m Media) error {
	_, err := db.w().exec(ctx, `INSERT INTO media (`+mediaColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (origin, media_id) DO UPDATE SET content_type = excluded.content_type, filename = excluded.filename,
			size = excluded.size, sha256 = excluded.sha256, created_ts = excluded.created_ts`,
		m.Origin, m.MediaID, ident.FreeText(m.ContentType), ident.FreeText(m.Filename), m.Size, m.SHA256, m.Uploader, m.CreatedTS, m.UnusedExpiresTS)
	return err
}

// GetMedia loads one media ID; ErrNotFound if unknown.
func (db *DB) GetMedia(ctx context.Context, origin, mediaID string) (Media, error) {
	var m Media
	err := db.r().queryRow(ctx, `SELECT `+mediaColumns+`, quarantined_by, safe_from_quarantine, last_access_ts FROM media WHERE origin = $1 AND media_id = $2`,
		[]any{origin, mediaID}, &m.Origin, &m.MediaID, &m.ContentType, &m.Filename, &m.Size, &m.SHA256, &m.Uploader, &m.CreatedTS,
		&m.UnusedExpiresTS, &m.QuarantinedBy, &m.SafeFromQuarantine, &m.LastAccessTS)
	return m, err
}

// CompletePendingMedia gives a pending async upload its bytes. It fails
// with ErrNotFound when the row is not pending any more (uploaded
// already, by a racing request).
func (db *DB) CompletePendingMedia(ctx context.Context, m Media) error {
	return affected(db.w().exec(ctx, `UPDATE media SET content_type = $3, filename = $4, size = $5, sha256 = $6, unused_expires_ts = 0
		WHERE origin = $1 AND media_id = $2 AND sha256 = ''`,
		m.Origin, m.MediaID, ident.FreeText(m.ContentType), ident.FreeText(m.Filename), m.Size, m.SHA256))
}

// CountPendingMedia counts a user's async uploads still waiting for
// their bytes and not yet expired at nowTS.
func (db *DB) CountPendingMedia(ctx context.Context, uploader string, nowTS int64) (int, error) {
	var n int
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM media WHERE uploader = $1 AND sha256 = '' AND unused_expires_ts > $2`,
		[]any{uploader, nowTS}, &n)
	return n, err
}

// DeleteExpiredPendingMedia forgets async uploads whose URI lapsed
// before nowTS without bytes.
func (db *DB) DeleteExpiredPendingMedia(ctx context.Context, nowTS int64) (int64, error) {
	res, err := db.w().exec(ctx, `DELETE FROM media WHERE sha256 = '' AND unused_expires_ts > 0 AND unused_expires_ts <= $1`, nowTS)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// MediaHashInUse reports whether any media or thumbnail still points at a
// stored file, before the file is deleted.
func (db *DB) MediaHashInUse(ctx context.Context, sha256 string) (bool, error) {
	ids, err := db.r().strings(ctx, `SELECT media_id FROM media WHERE sha256 = $1
		UNION ALL SELECT media_id FROM media_thumbnails WHERE sha256 = $1 LIMIT 1`, sha256)
	return len(ids) > 0, err
}

// Thumbnail is a stored thumbnail of a media ID, made for the size
// ReqWidth x ReqHeight with Method; Width x Height are its own.
type Thumbnail struct {
	Origin, MediaID     string
	ReqWidth, ReqHeight int
	Method              string
	Width, Height       int
	ContentType         string
	Size                int64
	SHA256              string
	CreatedTS           int64
}

const thumbnailColumns = `origin, media_id, req_width, req_height, method, width, height, content_type, size, sha256, created_ts`

func scanThumbnail(scan func(...any) error) (Thumbnail, error) {
	var t Thumbnail
	err := scan(&t.Origin, &t.MediaID, &t.ReqWidth, &t.ReqHeight, &t.Method, &t.Width, &t.Height, &t.ContentType, &t.Size, &t.SHA256, &t.CreatedTS)
	return t, err
}

// PutThumbnail records a thumbnail; one made concurrently for the same
// size wins and this one is dropped.
func (db *DB) PutThumbnail(ctx context.Context, t Thumbnail) error {
	_, err := db.w().exec(ctx, `INSERT INTO media_thumbnails (`+thumbnailColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (origin, media_id, req_width, req_height, method) DO NOTHING`,
		t.Origin, t.MediaID, t.ReqWidth, t.ReqHeight, t.Method, t.Width, t.Height, t.ContentType, t.Size, t.SHA256, t.CreatedTS)
	return err
}

// GetThumbnail loads the thumbnail made for one size; ErrNotFound if none.
func (db *DB) GetThumbnail(ctx context.Context, origin, mediaID string, reqWidth, reqHeight int, method string) (Thumbnail, error) {
	ts, err := collect(ctx, db.r(), scanThumbnail, `SELECT `+thumbnailColumns+` FROM media_thumbnails
		WHERE origin = $1 AND media_id = $2 AND req_width = $3 AND req_height = $4 AND method = $5`,
		origin, mediaID, reqWidth, reqHeight, method)
	if err != nil {
		return Thumbnail{}, err
	}
	if len(ts) == 0 {
		return Thumbnail{}, ErrNotFound
	}
	return ts[0], nil
}

// MediaSetting reads a recorded setting, or records def as its value
// when it has none yet, so that the first start decides it for good.
func (db *DB) MediaSetting(ctx context.Context, name string, def int64) (int64, error) {
	if _, err := db.w().exec(ctx, `INSERT INTO media_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, def); err != nil {
		return 0, err
	}
	var v int64
	err := db.w().queryRow(ctx, `SELECT value FROM media_settings WHERE name = $1`, []any{name}, &v)
	if errors.Is(err, ErrNotFound) {
		return def, nil
	}
	return v, err
}

// SetMediaAccessTimes records when media was last read, in one
// transaction; a time never goes back, and unknown media is skipped.
func (db *DB) SetMediaAccessTimes(ctx context.Context, times map[MediaRef]int64) error {
	return db.tx(ctx, func(c conn) error {
		for ref, ts := range times {
			if _, err := c.exec(ctx, `UPDATE media SET last_access_ts = $3 WHERE origin = $1 AND media_id = $2 AND last_access_ts < $3`,
				ref.Origin, ref.MediaID, ts); err != nil {
				return err
			}
		}
		return nil
	})
}
