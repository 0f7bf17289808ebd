package store

import (
	"context"
	"database/sql"
)

// ServerGauges are the counts an admin's dashboard shows beside the
// request rates.
type ServerGauges struct {
	// Users are local accounts that are not deactivated (guests included).
	Users int64
	// Rooms are the rooms this server holds.
	Rooms int64
	// QueuedPDUs and QueuedEDUs wait in the federation queue.
	QueuedPDUs, QueuedEDUs int64
	// FailingDestinations are servers whose last delivery failed.
	FailingDestinations int64
	// LocalMediaBytes and RemoteMediaBytes are the media stored, uploaded
	// here or fetched from other servers (thumbnails not counted).
	LocalMediaBytes, RemoteMediaBytes int64
}

// ServerGauges counts them; each is one indexed or small-table query.
func (db *DB) ServerGauges(ctx context.Context, serverName string) (ServerGauges, error) {
	var g ServerGauges
	c := db.r()
	for _, q := range []struct {
		dst   *int64
		query string
		args  []any
	}{
		{&g.Users, `SELECT COUNT(*) FROM users WHERE deactivated = FALSE`, nil},
		{&g.Rooms, `SELECT COUNT(*) FROM rooms`, nil},
		{&g.QueuedPDUs, `SELECT COUNT(*) FROM federation_queue_pdus`, nil},
		{&g.QueuedEDUs, `SELECT COUNT(*) FROM federation_queue_edus`, nil},
		{&g.FailingDestinations, `SELECT COUNT(*) FROM federation_destinations WHERE failures > 0`, nil},
		{&g.LocalMediaBytes, `SELECT COALESCE(SUM(size), 0) FROM media WHERE origin = $1`, []any{serverName}},
		{&g.RemoteMediaBytes, `SELECT COALESCE(SUM(size), 0) FROM media WHERE origin <> $1`, []any{serverName}},
	} {
		if err := c.queryRow(ctx, q.query, q.args, q.dst); err != nil {
			return ServerGauges{}, err
		}
	}
	return g, nil
}

// PoolStats are the connection pools' statistics by role: "read" and
// "write" for SQLite (the single writer connection and the readers), one
// "pool" for PostgreSQL.
func (db *DB) PoolStats() map[string]sql.DBStats {
	if db.read == db.write {
		return map[string]sql.DBStats{"pool": db.write.Stats()}
	}
	return map[string]sql.DBStats{"read": db.read.Stats(), "write": db.write.Stats()}
}
