package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/myelin-chat/myelin/internal/ident"
)

// Report is a user's report of an event, a room or a user.
type Report struct {
	ID           int64
	Reporter     string
	RoomID       string
	EventID      string
	TargetUserID string
	Reason       string
	Score        *int64
	ReceivedTS   int64
}

// AddReport stores a report.
func (db *DB) AddReport(ctx context.Context, r Report) error {
	_, err := db.w().exec(ctx, `INSERT INTO content_reports (reporter, room_id, event_id, target_user_id, reason, score, received_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.Reporter, r.RoomID, r.EventID, r.TargetUserID, ident.FreeText(r.Reason), r.Score, r.ReceivedTS)
	return err
}

// Reports lists stored reports, oldest first (for tests).
func (db *DB) Reports(ctx context.Context) ([]Report, error) {
	return collect(ctx, db.r(), scanReport, `SELECT `+reportColumns+` FROM content_reports ORDER BY report_id`)
}

const reportColumns = `report_id, reporter, room_id, event_id, target_user_id, reason, score, received_ts`

func scanReport(scan func(...any) error) (Report, error) {
	var r Report
	var score sql.NullInt64
	err := scan(&r.ID, &r.Reporter, &r.RoomID, &r.EventID, &r.TargetUserID, &r.Reason, &score, &r.ReceivedTS)
	if score.Valid {
		r.Score = &score.Int64
	}
	return r, err
}

// EventReportQuery pages and filters event reports for admins (Synapse's
// GET /_synapse/admin/v1/event_reports).
type EventReportQuery struct {
	From, Limit int
	// Forwards lists oldest first; the default is newest first.
	Forwards bool
	// Reporter and RoomID keep reports whose reporter or room ID contain
	// them ("" keeps all).
	Reporter, RoomID string
}

// EventReports lists the reports of events a query selects, and how
// many it selects in all.
func (db *DB) EventReports(ctx context.Context, q EventReportQuery) ([]Report, int64, error) {
	where, args := `event_id <> ''`, []any{}
	for _, f := range []struct{ column, value string }{{"reporter", q.Reporter}, {"room_id", q.RoomID}} {
		if f.value != "" {
			args = append(args, "%"+likeEscaper.Replace(f.value)+"%")
			where += fmt.Sprintf(` AND %s LIKE $%d ESCAPE '\'`, f.column, len(args))
		}
	}
	var total int64
	if err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM content_reports WHERE `+where, args, &total); err != nil {
		return nil, 0, err
	}
	order := "DESC"
	if q.Forwards {
		order = "ASC"
	}
	args = append(args, q.Limit, q.From)
	reports, err := collect(ctx, db.r(), scanReport, fmt.Sprintf(`SELECT %s FROM content_reports WHERE %s
		ORDER BY report_id %s LIMIT $%d OFFSET $%d`, reportColumns, where, order, len(args)-1, len(args)), args...)
	return reports, total, err
}

// likeEscaper escapes LIKE's wildcards (with ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// EventReport returns one event report; ErrNotFound if there is none.
func (db *DB) EventReport(ctx context.Context, id int64) (Report, error) {
	reports, err := collect(ctx, db.r(), scanReport, `SELECT `+reportColumns+` FROM content_reports WHERE report_id = $1 AND event_id <> ''`, id)
	if err != nil {
		return Report{}, err
	}
	if len(reports) == 0 {
		return Report{}, ErrNotFound
	}
	return reports[0], nil
}

// DeleteEventReport deletes an event report; ErrNotFound if there is none.
func (db *DB) DeleteEventReport(ctx context.Context, id int64) error {
	return affected(db.w().exec(ctx, `DELETE FROM content_reports WHERE report_id = $1 AND event_id <> ''`, id))
}
