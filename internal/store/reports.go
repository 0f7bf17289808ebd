package store

import (
	"context"
	"database/sql"
	"encoding/json"
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
	// ResolvedBy is the admin who resolved the report and ResolvedTS
	// when ("" and 0 while it is open).
	ResolvedBy string
	ResolvedTS int64
	// ForwardedTo are the room moderators the report was sent to as
	// server notices (nil when none).
	ForwardedTo []string
}

// The kinds of report, by what they name.
const (
	ReportEvent = "event"
	ReportRoom  = "room"
	ReportUser  = "user"
)

// Kind is what the report names: ReportEvent, ReportRoom or ReportUser.
func (r Report) Kind() string {
	switch {
	case r.EventID != "":
		return ReportEvent
	case r.TargetUserID != "":
		return ReportUser
	}
	return ReportRoom
}

// kindWhere selects the reports of a kind ("" all).
var kindWhere = map[string]string{
	"":          `1 = 1`,
	ReportEvent: `event_id <> ''`,
	ReportRoom:  `event_id = '' AND target_user_id = ''`,
	ReportUser:  `target_user_id <> ''`,
}

// AddReport stores a report and returns its ID.
func (db *DB) AddReport(ctx context.Context, r Report) (int64, error) {
	var id int64
	err := db.w().queryRow(ctx, `INSERT INTO content_reports (reporter, room_id, event_id, target_user_id, reason, score, received_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING report_id`,
		[]any{r.Reporter, r.RoomID, r.EventID, r.TargetUserID, ident.FreeText(r.Reason), r.Score, r.ReceivedTS}, &id)
	return id, err
}

// Reports lists stored reports, oldest first (for tests).
func (db *DB) Reports(ctx context.Context) ([]Report, error) {
	return collect(ctx, db.r(), scanReport, `SELECT `+reportColumns+` FROM content_reports ORDER BY report_id`)
}

const reportColumns = `report_id, reporter, room_id, event_id, target_user_id, reason, score, received_ts, resolved_by, resolved_ts, forwarded_to`

func scanReport(scan func(...any) error) (Report, error) {
	var r Report
	var score, resolvedTS sql.NullInt64
	var forwarded string
	err := scan(&r.ID, &r.Reporter, &r.RoomID, &r.EventID, &r.TargetUserID, &r.Reason, &score, &r.ReceivedTS, &r.ResolvedBy, &resolvedTS, &forwarded)
	if err != nil {
		return r, err
	}
	if score.Valid {
		r.Score = &score.Int64
	}
	r.ResolvedTS = resolvedTS.Int64
	if forwarded != "" {
		if err := json.Unmarshal([]byte(forwarded), &r.ForwardedTo); err != nil {
			return r, fmt.Errorf("store: report %d forwarded_to: %w", r.ID, err)
		}
	}
	return r, nil
}

// ReportQuery pages and filters reports for admins.
type ReportQuery struct {
	// Kind keeps one kind of report ("" keeps all).
	Kind string
	// From skips that many reports (offset pagination, as Synapse's
	// event_reports and user_reports); Before > 0 keeps only reports
	// with a smaller ID (Synapse's room_reports).
	From   int
	Before int64
	Limit  int
	// Forwards lists oldest first; the default is newest first.
	Forwards bool
	// Reporter, RoomID and TargetUserID keep reports whose reporter, room
	// ID or reported user contain them ("" keeps all).
	Reporter, RoomID, TargetUserID string
	// Resolved keeps only resolved (true) or open (false) reports.
	Resolved *bool
}

// ListReports lists the reports a query selects, and how many it
// selects in all (without From, Before and Limit).
func (db *DB) ListReports(ctx context.Context, q ReportQuery) ([]Report, int64, error) {
	where, ok := kindWhere[q.Kind]
	if !ok {
		return nil, 0, fmt.Errorf("store: unknown report kind %q", q.Kind)
	}
	var args []any
	for _, f := range []struct{ column, value string }{{"reporter", q.Reporter}, {"room_id", q.RoomID}, {"target_user_id", q.TargetUserID}} {
		if f.value != "" {
			args = append(args, "%"+likeEscaper.Replace(f.value)+"%")
			where += fmt.Sprintf(` AND %s LIKE $%d ESCAPE '\'`, f.column, len(args))
		}
	}
	if q.Resolved != nil {
		if *q.Resolved {
			where += ` AND resolved_by <> ''`
		} else {
			where += ` AND resolved_by = ''`
		}
	}
	var total int64
	if err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM content_reports WHERE `+where, args, &total); err != nil {
		return nil, 0, err
	}
	if q.Before > 0 {
		args = append(args, q.Before)
		where += fmt.Sprintf(` AND report_id < $%d`, len(args))
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

// Report returns one report of a kind ("" any); ErrNotFound if there is none.
func (db *DB) Report(ctx context.Context, id int64, kind string) (Report, error) {
	where, ok := kindWhere[kind]
	if !ok {
		return Report{}, ErrNotFound
	}
	reports, err := collect(ctx, db.r(), scanReport, `SELECT `+reportColumns+` FROM content_reports WHERE report_id = $1 AND `+where, id)
	if err != nil {
		return Report{}, err
	}
	if len(reports) == 0 {
		return Report{}, ErrNotFound
	}
	return reports[0], nil
}

// DeleteReport deletes a report of a kind ("" any); ErrNotFound if there is none.
func (db *DB) DeleteReport(ctx context.Context, id int64, kind string) error {
	where, ok := kindWhere[kind]
	if !ok {
		return ErrNotFound
	}
	return affected(db.w().exec(ctx, `DELETE FROM content_reports WHERE report_id = $1 AND `+where, id))
}

// ResolveReport marks a report resolved by an admin at ts, or open again
// when by is ""; ErrNotFound if there is none.
func (db *DB) ResolveReport(ctx context.Context, id int64, by string, ts int64) error {
	at := sql.NullInt64{Int64: ts, Valid: by != ""}
	return affected(db.w().exec(ctx, `UPDATE content_reports SET resolved_by = $1, resolved_ts = $2 WHERE report_id = $3`, by, at, id))
}

// SetReportForwards records the moderators a report was forwarded to.
func (db *DB) SetReportForwards(ctx context.Context, id int64, users []string) error {
	forwarded := ""
	if len(users) > 0 {
		raw, err := json.Marshal(users)
		if err != nil {
			return err
		}
		forwarded = string(raw)
	}
	return affected(db.w().exec(ctx, `UPDATE content_reports SET forwarded_to = $1 WHERE report_id = $2`, forwarded, id))
}
