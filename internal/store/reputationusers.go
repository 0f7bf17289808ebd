package store

import "context"

// UserAccountData is one user's global account data entry of a type.
type UserAccountData struct {
	UserID  string
	Content string
}

// GlobalAccountDataOfType lists every user's global entry of one type:
// the server reads users' own reputation filters
// (org.myelin.reputation.subscriptions) at start.
func (db *DB) GlobalAccountDataOfType(ctx context.Context, typ string) ([]UserAccountData, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (UserAccountData, error) {
		var a UserAccountData
		err := scan(&a.UserID, &a.Content)
		return a, err
	}, `SELECT user_id, content FROM account_data WHERE room_id = '' AND data_type = $1 ORDER BY user_id`, typ)
}

// ReputationFeedEntities counts, per kind, the distinct entities of the
// decisions of the given actions a feed took part in since a time: the
// admin's extent report (how many users, rooms, servers a feed hid).
func (db *DB) ReputationFeedEntities(ctx context.Context, feed string, sinceTS int64, actions []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, action := range actions {
		rows, err := db.r().query(ctx, `SELECT d.kind, COUNT(DISTINCT d.entity) FROM reputation_decision_feeds f
			JOIN reputation_decisions d ON d.decision_id = f.decision_id
			WHERE f.feed = $1 AND d.ts >= $2 AND d.action = $3 GROUP BY d.kind`, feed, sinceTS, action)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var kind string
			var n int64
			if err := rows.Scan(&kind, &n); err != nil {
				rows.Close()
				return nil, err
			}
			out[kind] += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
