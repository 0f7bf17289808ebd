package store

import (
	"context"
	"encoding/json"
)

// UIASession is a User-Interactive Auth session. Completed and Data are
// JSON: the completed stage types and stage-specific state (a reserved
// registration token, say).
type UIASession struct {
	ID        string
	Method    string
	URI       string
	Localpart string
	Completed json.RawMessage
	Data      json.RawMessage
	ExpiresTS int64
}

// CreateUIASession stores a new session.
func (db *DB) CreateUIASession(ctx context.Context, s UIASession) error {
	_, err := db.w().exec(ctx, `INSERT INTO uia_sessions (session_id, method, uri, localpart, completed, data, expires_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, s.ID, s.Method, s.URI, s.Localpart, string(s.Completed), string(s.Data), s.ExpiresTS)
	return err
}

// GetUIASession loads a session.
func (db *DB) GetUIASession(ctx context.Context, id string) (UIASession, error) {
	s := UIASession{ID: id}
	var completed, data string
	err := db.r().queryRow(ctx, `SELECT method, uri, localpart, completed, data, expires_ts FROM uia_sessions WHERE session_id = $1`, []any{id},
		&s.Method, &s.URI, &s.Localpart, &completed, &data, &s.ExpiresTS)
	s.Completed, s.Data = json.RawMessage(completed), json.RawMessage(data)
	return s, err
}

// UpdateUIASession saves a session's progress.
func (db *DB) UpdateUIASession(ctx context.Context, s UIASession) error {
	return affected(db.w().exec(ctx, `UPDATE uia_sessions SET completed = $2, data = $3 WHERE session_id = $1`, s.ID, string(s.Completed), string(s.Data)))
}

// DeleteUIASession removes a finished session.
func (db *DB) DeleteUIASession(ctx context.Context, id string) error {
	_, err := db.w().exec(ctx, `DELETE FROM uia_sessions WHERE session_id = $1`, id)
	return err
}

// TakeExpiredUIASessions deletes the sessions expired at nowTS and
// returns them, so that what they reserved can be released.
func (db *DB) TakeExpiredUIASessions(ctx context.Context, nowTS int64) ([]UIASession, error) {
	var out []UIASession
	err := db.tx(ctx, func(c conn) error {
		rows, err := c.query(ctx, `SELECT session_id, data FROM uia_sessions WHERE expires_ts < $1`, nowTS)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s UIASession
			var data string
			if err := rows.Scan(&s.ID, &data); err != nil {
				rows.Close()
				return err
			}
			s.Data = json.RawMessage(data)
			out = append(out, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = c.exec(ctx, `DELETE FROM uia_sessions WHERE expires_ts < $1`, nowTS)
		return err
	})
	return out, err
}
