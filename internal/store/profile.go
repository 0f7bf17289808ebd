package store

import (
	"context"
	"encoding/json"
)

// Profile returns every profile field of a local user as raw JSON values.
func (db *DB) Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error) {
	rows, err := db.r().query(ctx, `SELECT field, value FROM profile_fields WHERE localpart = $1`, localpart)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var field, value string
		if err := rows.Scan(&field, &value); err != nil {
			return nil, err
		}
		out[field] = json.RawMessage(value)
	}
	return out, rows.Err()
}

// SetProfileField stores one field; value is JSON.
func (db *DB) SetProfileField(ctx context.Context, localpart, field string, value json.RawMessage) error {
	_, err := db.w().exec(ctx, `INSERT INTO profile_fields (localpart, field, value) VALUES ($1, $2, $3)
		ON CONFLICT (localpart, field) DO UPDATE SET value = excluded.value`, localpart, field, string(value))
	return err
}

// DeleteProfileField removes one field; removing an absent field is fine.
func (db *DB) DeleteProfileField(ctx context.Context, localpart, field string) error {
	_, err := db.w().exec(ctx, `DELETE FROM profile_fields WHERE localpart = $1 AND field = $2`, localpart, field)
	return err
}
