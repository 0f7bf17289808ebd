package store

import (
	"context"
)

// ThreadSubscription is a row of thread_subscriptions (MSC4306).
type ThreadSubscription struct {
	UserID, RoomID, ThreadRootID string
	Subscribed, Automatic        bool
	// UnsubscribedAt is the event stream position when the user last
	// unsubscribed (0: never).
	UnsubscribedAt int64
	// StreamID orders the changes (ThreadSubscriptionChanges).
	StreamID int64
}

const threadSubColumns = `user_id, room_id, thread_root_id, subscribed, automatic, unsubscribed_at, stream_id`

func scanThreadSub(scan func(...any) error) (ThreadSubscription, error) {
	var t ThreadSubscription
	err := scan(&t.UserID, &t.RoomID, &t.ThreadRootID, &t.Subscribed, &t.Automatic, &t.UnsubscribedAt, &t.StreamID)
	return t, err
}

// ThreadSubscriptionOf returns a user's row for a thread; ErrNotFound
// when the user never subscribed nor unsubscribed.
func (db *DB) ThreadSubscriptionOf(ctx context.Context, userID, roomID, rootID string) (ThreadSubscription, error) {
	rows, err := collect(ctx, db.r(), scanThreadSub, `SELECT `+threadSubColumns+` FROM thread_subscriptions
		WHERE user_id = $1 AND room_id = $2 AND thread_root_id = $3`, userID, roomID, rootID)
	if err != nil {
		return ThreadSubscription{}, err
	}
	if len(rows) == 0 {
		return ThreadSubscription{}, ErrNotFound
	}
	return rows[0], nil
}

// SetThreadSubscription writes a user's subscription state for a thread
// with the next stream ID, and returns that ID. decide sees the current
// row (nil for none) in the same transaction and answers the new one, or
// false to leave it as it is (no stream ID is used then: 0).
func (db *DB) SetThreadSubscription(ctx context.Context, userID, roomID, rootID string,
	decide func(cur *ThreadSubscription) (next ThreadSubscription, write bool, err error)) (int64, error) {
	var id int64
	err := db.tx(ctx, func(c conn) error {
		rows, err := collect(ctx, c, scanThreadSub, `SELECT `+threadSubColumns+` FROM thread_subscriptions
			WHERE user_id = $1 AND room_id = $2 AND thread_root_id = $3`, userID, roomID, rootID)
		if err != nil {
			return err
		}
		var cur *ThreadSubscription
		if len(rows) > 0 {
			cur = &rows[0]
		}
		next, write, err := decide(cur)
		if err != nil || !write {
			return err
		}
		if err := c.queryRow(ctx, `SELECT COALESCE(MAX(stream_id), 0) + 1 FROM thread_subscriptions`, nil, &id); err != nil {
			return err
		}
		_, err = c.exec(ctx, `INSERT INTO thread_subscriptions (`+threadSubColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (user_id, room_id, thread_root_id) DO UPDATE SET subscribed = excluded.subscribed,
			automatic = excluded.automatic, unsubscribed_at = excluded.unsubscribed_at, stream_id = excluded.stream_id`,
			userID, roomID, rootID, next.Subscribed, next.Automatic, next.UnsubscribedAt, id)
		return err
	})
	return id, err
}

// ThreadSubscriptionChanges lists a user's thread subscription rows
// changed after stream ID since, oldest change first, at most limit.
func (db *DB) ThreadSubscriptionChanges(ctx context.Context, userID string, since int64, limit int) ([]ThreadSubscription, error) {
	return collect(ctx, db.r(), scanThreadSub, `SELECT `+threadSubColumns+` FROM thread_subscriptions
		WHERE user_id = $1 AND stream_id > $2 ORDER BY stream_id LIMIT $3`, userID, since, limit)
}

// MaxThreadSubscriptionStreamID is the latest thread subscription change.
func (db *DB) MaxThreadSubscriptionStreamID(ctx context.Context) (int64, error) {
	var id int64
	err := db.r().queryRow(ctx, `SELECT COALESCE(MAX(stream_id), 0) FROM thread_subscriptions`, nil, &id)
	return id, err
}
