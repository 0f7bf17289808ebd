package store

import (
	"context"
	"strconv"
	"strings"
)

// insertBatch is how many rows one multi-row INSERT carries: a send_join
// answer stores tens of thousands of events and snapshot entries, and
// one statement per row costs a round trip each on PostgreSQL and a
// statement execution each on SQLite (issue 14 item 12). 100 rows of at
// most 10 columns stay far below both engines' parameter limits
// (SQLite 32,766, PostgreSQL 65,535).
const insertBatch = 100

// insertMany inserts rows (each of cols values) with head + " VALUES
// (...), (...)" + tail: full batches in one statement each, the rest one
// row at a time, so that only two statement texts exist per table for
// the statement caches. tail (ON CONFLICT ...) must allow the same key
// twice in one statement only if rows may repeat one.
func insertMany(ctx context.Context, c conn, head, tail string, cols int, rows [][]any) error {
	one := head + " VALUES " + rowPlaceholders(1, cols, 1) + " " + tail
	full := ""
	for len(rows) >= insertBatch {
		if full == "" {
			full = head + " VALUES " + rowPlaceholders(insertBatch, cols, 1) + " " + tail
		}
		args := make([]any, 0, insertBatch*cols)
		for _, r := range rows[:insertBatch] {
			args = append(args, r...)
		}
		if _, err := c.exec(ctx, full, args...); err != nil {
			return err
		}
		rows = rows[insertBatch:]
	}
	for _, r := range rows {
		if _, err := c.exec(ctx, one, r...); err != nil {
			return err
		}
	}
	return nil
}

// rowPlaceholders is "($first, ..., $first+cols-1), (...)" for n rows.
func rowPlaceholders(n, cols, first int) string {
	var b strings.Builder
	p := first
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(p))
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}
