package store

import (
	"context"
	"database/sql"
	"errors"
)

// DelayedEvent is a row of delayed_events (MSC4140): an event a local
// user asked to be sent at SendTS.
type DelayedEvent struct {
	DelayID  string
	UserID   string
	DeviceID string
	RoomID   string
	Type     string
	// StateKey is nil for a message event.
	StateKey *string
	Content  string
	DelayMS  int64
	SendTS   int64
	// FinalisedTS is 0 while the event is scheduled; then EventID is set
	// when it was sent, Error when sending failed (neither: cancelled).
	FinalisedTS int64
	EventID     string
	Error       string
	// TxnKey identifies the request that scheduled a delayed /send
	// ("" for none).
	TxnKey string
}

const delayedColumns = `delay_id, user_id, device_id, room_id, event_type, state_key, content, delay_ms, send_ts, finalised_ts, finalised_event_id, finalised_error`

func scanDelayed(scan func(...any) error) (DelayedEvent, error) {
	var d DelayedEvent
	var key, eventID, errText sql.NullString
	var fin sql.NullInt64
	err := scan(&d.DelayID, &d.UserID, &d.DeviceID, &d.RoomID, &d.Type, &key, &d.Content, &d.DelayMS, &d.SendTS, &fin, &eventID, &errText)
	if key.Valid {
		k := key.String
		d.StateKey = &k
	}
	d.FinalisedTS, d.EventID, d.Error = fin.Int64, eventID.String, errText.String
	return d, err
}

// AddDelayedEvent stores a scheduled delayed event. When one with the
// same user and TxnKey exists, nothing is stored and its delay ID is
// answered (a retried request); otherwise d.DelayID.
func (db *DB) AddDelayedEvent(ctx context.Context, d DelayedEvent) (string, error) {
	if d.TxnKey != "" {
		ids, err := db.w().strings(ctx, `SELECT delay_id FROM delayed_events WHERE user_id = $1 AND txn_key = $2`, d.UserID, d.TxnKey)
		if err != nil || len(ids) > 0 {
			return first(ids), err
		}
	}
	_, err := db.w().exec(ctx, `INSERT INTO delayed_events (delay_id, user_id, device_id, room_id, event_type, state_key, content, delay_ms, send_ts, txn_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		d.DelayID, d.UserID, d.DeviceID, d.RoomID, d.Type, d.StateKey, d.Content, d.DelayMS, d.SendTS, nullString(d.TxnKey))
	if errors.Is(err, ErrConflict) && d.TxnKey != "" {
		// The same request, racing: the first one's ID.
		ids, err := db.w().strings(ctx, `SELECT delay_id FROM delayed_events WHERE user_id = $1 AND txn_key = $2`, d.UserID, d.TxnKey)
		return first(ids), err
	}
	return d.DelayID, err
}

func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// CountScheduledDelayedEvents counts a user's scheduled delayed events.
func (db *DB) CountScheduledDelayedEvents(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM delayed_events WHERE user_id = $1 AND finalised_ts IS NULL`, []any{userID}, &n)
	return n, err
}

// DelayedEvent returns one delayed event, scheduled or finalised;
// ErrNotFound if there is none.
func (db *DB) DelayedEvent(ctx context.Context, delayID string) (DelayedEvent, error) {
	rows, err := collect(ctx, db.w(), scanDelayed, `SELECT `+delayedColumns+` FROM delayed_events WHERE delay_id = $1`, delayID)
	if err != nil {
		return DelayedEvent{}, err
	}
	if len(rows) == 0 {
		return DelayedEvent{}, ErrNotFound
	}
	return rows[0], nil
}

// UserDelayedEvents lists a user's delayed events, scheduled ones (by
// send time) or finalised ones (newest first).
func (db *DB) UserDelayedEvents(ctx context.Context, userID string, finalised bool) ([]DelayedEvent, error) {
	q := `SELECT ` + delayedColumns + ` FROM delayed_events WHERE user_id = $1 AND finalised_ts IS NULL ORDER BY send_ts, delay_id`
	if finalised {
		q = `SELECT ` + delayedColumns + ` FROM delayed_events WHERE user_id = $1 AND finalised_ts IS NOT NULL ORDER BY finalised_ts DESC, delay_id`
	}
	return collect(ctx, db.w(), scanDelayed, q, userID)
}

// ScheduledDelayedEvents lists every scheduled delayed event (loaded once
// at start by the delayed events service).
func (db *DB) ScheduledDelayedEvents(ctx context.Context) ([]DelayedEvent, error) {
	return collect(ctx, db.w(), scanDelayed, `SELECT `+delayedColumns+` FROM delayed_events WHERE finalised_ts IS NULL ORDER BY send_ts, delay_id`)
}

// RestartDelayedEvent moves a scheduled event's send time to nowTS plus
// its delay and returns the new send time; ErrNotFound when it is not
// scheduled.
func (db *DB) RestartDelayedEvent(ctx context.Context, delayID string, nowTS int64) (int64, error) {
	var sendTS int64
	err := db.w().queryRow(ctx, `UPDATE delayed_events SET send_ts = $2 + delay_ms WHERE delay_id = $1 AND finalised_ts IS NULL RETURNING send_ts`,
		[]any{delayID, nowTS}, &sendTS)
	return sendTS, err
}

// FinaliseDelayedEvent marks a scheduled event finalised: sent (eventID),
// failed (errText) or cancelled (both empty). It answers false when the
// event was no longer scheduled (finalised by someone else first), so
// that exactly one caller sends it.
func (db *DB) FinaliseDelayedEvent(ctx context.Context, delayID string, nowTS int64, eventID, errText string) (bool, error) {
	res, err := db.w().exec(ctx, `UPDATE delayed_events SET finalised_ts = $2, finalised_event_id = $3, finalised_error = $4
		WHERE delay_id = $1 AND finalised_ts IS NULL`, delayID, nowTS, nullString(eventID), nullString(errText))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// RecordDelayedEventResult sets the outcome of a delayed event already
// finalised (claimed) before it was sent.
func (db *DB) RecordDelayedEventResult(ctx context.Context, delayID, eventID, errText string) error {
	_, err := db.w().exec(ctx, `UPDATE delayed_events SET finalised_event_id = $2, finalised_error = $3 WHERE delay_id = $1`,
		delayID, nullString(eventID), nullString(errText))
	return err
}

// PruneFinalisedDelayedEvents deletes finalised events older than beforeTS.
func (db *DB) PruneFinalisedDelayedEvents(ctx context.Context, beforeTS int64) error {
	_, err := db.w().exec(ctx, `DELETE FROM delayed_events WHERE finalised_ts IS NOT NULL AND finalised_ts < $1`, beforeTS)
	return err
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
