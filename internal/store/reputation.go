package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/myelin-chat/myelin/internal/ident"
)

// ReputationFeed is a subscription to a reputation feed (a policy room).
type ReputationFeed struct {
	Feed      string // as named: a room ID or an alias
	RoomID    string // "" until resolved and joined
	Weight    float64
	Allow     bool
	Source    string // "config" or "api"
	AddedTS   int64
	LastError string
}

const reputationFeedColumns = `feed, room_id, weight, allow_list, source, added_ts, last_error`

func scanReputationFeed(scan func(...any) error) (ReputationFeed, error) {
	var f ReputationFeed
	err := scan(&f.Feed, &f.RoomID, &f.Weight, &f.Allow, &f.Source, &f.AddedTS, &f.LastError)
	return f, err
}

// ReputationFeeds lists the subscriptions, by name.
func (db *DB) ReputationFeeds(ctx context.Context) ([]ReputationFeed, error) {
	return collect(ctx, db.r(), scanReputationFeed, `SELECT `+reputationFeedColumns+` FROM reputation_feeds ORDER BY feed`)
}

// PutReputationFeed adds a subscription or updates its weight, allow
// flag and source; its resolved room and error are kept.
func (db *DB) PutReputationFeed(ctx context.Context, f ReputationFeed) error {
	_, err := db.w().exec(ctx, `INSERT INTO reputation_feeds (`+reputationFeedColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (feed) DO UPDATE SET weight = excluded.weight, allow_list = excluded.allow_list, source = excluded.source`,
		f.Feed, f.RoomID, f.Weight, f.Allow, f.Source, f.AddedTS, ident.FreeText(f.LastError))
	return err
}

// SetReputationFeedRoom records the room a feed resolved to and the
// last error met following it ("" for none).
func (db *DB) SetReputationFeedRoom(ctx context.Context, feed, roomID, lastError string) error {
	return affected(db.w().exec(ctx, `UPDATE reputation_feeds SET room_id = $2, last_error = $3 WHERE feed = $1`,
		feed, roomID, ident.FreeText(lastError)))
}

// DeleteReputationFeed removes a subscription; ErrNotFound if none.
func (db *DB) DeleteReputationFeed(ctx context.Context, feed string) error {
	return affected(db.w().exec(ctx, `DELETE FROM reputation_feeds WHERE feed = $1`, feed))
}

// ReputationDecision is one row of the decision log.
type ReputationDecision struct {
	ID     int64
	TS     int64
	Action string
	Kind   string
	Entity string
	Feeds  []string
	Score  float64
	Detail string
}

// AddReputationDecisions appends decisions to the log.
func (db *DB) AddReputationDecisions(ctx context.Context, ds []ReputationDecision) error {
	return db.tx(ctx, func(c conn) error {
		for _, d := range ds {
			var id int64
			if err := c.queryRow(ctx, `INSERT INTO reputation_decisions (ts, action, kind, entity, score, detail)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING decision_id`,
				[]any{d.TS, d.Action, d.Kind, ident.FreeText(d.Entity), d.Score, ident.FreeText(d.Detail)}, &id); err != nil {
				return err
			}
			for _, f := range d.Feeds {
				if _, err := c.exec(ctx, `INSERT INTO reputation_decision_feeds (decision_id, feed) VALUES ($1, $2)
					ON CONFLICT DO NOTHING`, id, f); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ReputationDecisionQuery pages and filters the decision log, newest first.
type ReputationDecisionQuery struct {
	From, Limit int
	// Action, Kind and Feed keep the decisions with that action, kind,
	// or a listing feed of that room ID ("" keeps all).
	Action, Kind, Feed string
	SinceTS            int64
}

// ReputationDecisions lists the decisions a query selects, and how many
// it selects in all.
func (db *DB) ReputationDecisions(ctx context.Context, q ReputationDecisionQuery) ([]ReputationDecision, int64, error) {
	where, args := []string{"d.ts >= $1"}, []any{q.SinceTS}
	for _, f := range []struct{ column, value string }{{"d.action", q.Action}, {"d.kind", q.Kind}} {
		if f.value != "" {
			args = append(args, f.value)
			where = append(where, fmt.Sprintf("%s = $%d", f.column, len(args)))
		}
	}
	if q.Feed != "" {
		args = append(args, q.Feed)
		where = append(where, fmt.Sprintf("EXISTS (SELECT 1 FROM reputation_decision_feeds f WHERE f.decision_id = d.decision_id AND f.feed = $%d)", len(args)))
	}
	cond := strings.Join(where, " AND ")
	var total int64
	if err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM reputation_decisions d WHERE `+cond, args, &total); err != nil {
		return nil, 0, err
	}
	args = append(args, q.Limit, q.From)
	ds, err := collect(ctx, db.r(), func(scan func(...any) error) (ReputationDecision, error) {
		var d ReputationDecision
		err := scan(&d.ID, &d.TS, &d.Action, &d.Kind, &d.Entity, &d.Score, &d.Detail)
		return d, err
	}, fmt.Sprintf(`SELECT d.decision_id, d.ts, d.action, d.kind, d.entity, d.score, d.detail FROM reputation_decisions d
		WHERE %s ORDER BY d.decision_id DESC LIMIT $%d OFFSET $%d`, cond, len(args)-1, len(args)), args...)
	if err != nil || len(ds) == 0 {
		return ds, total, err
	}
	byID := make(map[int64]*ReputationDecision, len(ds))
	ids := make([]int64, len(ds))
	for i := range ds {
		byID[ds[i].ID] = &ds[i]
		ds[i].Feeds = []string{}
		ids[i] = ds[i].ID
	}
	args = inArgs(ids)
	rows, err := db.r().query(ctx, `SELECT DISTINCT decision_id, feed FROM reputation_decision_feeds WHERE decision_id IN (`+placeholders(len(args), 1)+`) ORDER BY feed`, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var feed string
		if err := rows.Scan(&id, &feed); err != nil {
			return nil, 0, err
		}
		byID[id].Feeds = append(byID[id].Feeds, feed)
	}
	return ds, total, rows.Err()
}

// ReputationFeedStats counts the decisions a feed took part in since a
// time, per action.
func (db *DB) ReputationFeedStats(ctx context.Context, feed string, sinceTS int64) (map[string]int64, error) {
	rows, err := db.r().query(ctx, `SELECT d.action, COUNT(*) FROM reputation_decision_feeds f
		JOIN reputation_decisions d ON d.decision_id = f.decision_id
		WHERE f.feed = $1 AND d.ts >= $2 GROUP BY d.action`, feed, sinceTS)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var action string
		var n int64
		if err := rows.Scan(&action, &n); err != nil {
			return nil, err
		}
		out[action] = n
	}
	return out, rows.Err()
}

// PruneReputationDecisions deletes decisions older than beforeTS, and
// the oldest beyond maxRows (0: no bound), and returns how many went.
func (db *DB) PruneReputationDecisions(ctx context.Context, beforeTS int64, maxRows int64) (int64, error) {
	var cutoff int64
	if maxRows > 0 {
		// The ID of the newest decision that no longer fits.
		err := db.r().queryRow(ctx, `SELECT decision_id FROM reputation_decisions ORDER BY decision_id DESC LIMIT 1 OFFSET $1`, []any{maxRows}, &cutoff)
		if err != nil && err != ErrNotFound {
			return 0, err
		}
	}
	var n int64
	err := db.tx(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM reputation_decisions WHERE ts < $1 OR decision_id <= $2`, beforeTS, cutoff)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = c.exec(ctx, `DELETE FROM reputation_decision_feeds WHERE NOT EXISTS
			(SELECT 1 FROM reputation_decisions d WHERE d.decision_id = reputation_decision_feeds.decision_id)`)
		return err
	})
	return n, err
}
