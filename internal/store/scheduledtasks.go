package store

import "context"

// The admin API's background jobs (scheduled_tasks, as Synapse's table
// of that name): the store keeps what a job was asked (params), where it
// stands and what it did, so that its status outlives a restart and a
// queued or interrupted job is taken up again when the server starts.

// TaskRow is one background job as stored. Params and Result are JSON
// ("" when there is no result yet).
type TaskRow struct {
	ID, Action, Status, Phase string
	// TimestampMS is when the status last changed; QueuedTS when the job
	// was queued (the worker's order).
	TimestampMS, QueuedTS int64
	ResourceID            string
	Params, Result, Error string
}

// TaskQuery selects jobs; empty fields keep all.
type TaskQuery struct {
	Action, ResourceID string
	Statuses           []string
	// MaxTimestampMS keeps jobs whose timestamp is at or before it (0: all).
	MaxTimestampMS int64
}

const taskColumns = `id, action, status, phase, timestamp_ms, queued_ts, resource_id, params, result, error`

func scanTask(scan func(...any) error) (TaskRow, error) {
	var t TaskRow
	err := scan(&t.ID, &t.Action, &t.Status, &t.Phase, &t.TimestampMS, &t.QueuedTS, &t.ResourceID, &t.Params, &t.Result, &t.Error)
	return t, err
}

// InsertTask records a new job.
func (db *DB) InsertTask(ctx context.Context, t TaskRow) error {
	_, err := db.w().exec(ctx, `INSERT INTO scheduled_tasks (`+taskColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.Action, t.Status, t.Phase, t.TimestampMS, t.QueuedTS, t.ResourceID, t.Params, t.Result, t.Error)
	return err
}

// UpdateTask records where a job stands: its status, phase, result and
// error, and when (timestamp_ms). ErrNotFound if there is no such job.
func (db *DB) UpdateTask(ctx context.Context, t TaskRow) error {
	res, err := db.w().exec(ctx, `UPDATE scheduled_tasks SET status = $2, phase = $3, timestamp_ms = $4, result = $5, error = $6 WHERE id = $1`,
		t.ID, t.Status, t.Phase, t.TimestampMS, t.Result, t.Error)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Task is one job; ErrNotFound if there is none with that ID.
func (db *DB) Task(ctx context.Context, id string) (TaskRow, error) {
	var t TaskRow
	err := db.r().queryRow(ctx, `SELECT `+taskColumns+` FROM scheduled_tasks WHERE id = $1`, []any{id},
		&t.ID, &t.Action, &t.Status, &t.Phase, &t.TimestampMS, &t.QueuedTS, &t.ResourceID, &t.Params, &t.Result, &t.Error)
	return t, err
}

// Tasks lists the jobs q selects, in the order they were queued.
func (db *DB) Tasks(ctx context.Context, q TaskQuery) ([]TaskRow, error) {
	rows, err := collect(ctx, db.r(), scanTask, `SELECT `+taskColumns+` FROM scheduled_tasks
		WHERE ($1 = '' OR action = $1) AND ($2 = '' OR resource_id = $2) AND ($3 = 0 OR timestamp_ms <= $3)
		ORDER BY queued_ts, id`, q.Action, q.ResourceID, q.MaxTimestampMS)
	if err != nil || len(q.Statuses) == 0 {
		return rows, err
	}
	// Few statuses exist; filtering here keeps one query text.
	keep := rows[:0]
	for _, r := range rows {
		for _, s := range q.Statuses {
			if r.Status == s {
				keep = append(keep, r)
				break
			}
		}
	}
	return keep, nil
}

// DeleteTasksBefore forgets the finished jobs (neither scheduled nor
// active) whose status last changed before ts.
func (db *DB) DeleteTasksBefore(ctx context.Context, ts int64) error {
	_, err := db.w().exec(ctx, `DELETE FROM scheduled_tasks WHERE status NOT IN ('scheduled', 'active') AND timestamp_ms < $1`, ts)
	return err
}
