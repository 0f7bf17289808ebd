package store

import (
	"context"

	"github.com/myelin-chat/myelin/internal/ident"
)

// UserExtentEntity is one distinct entity a user's feed hid on a day.
type UserExtentEntity struct {
	Kind, Entity string
}

// UserExtent is what one feed of a user's own filter hid on one UTC day
// (YYYY-MM-DD): as a delta to add (AddUserExtent) or as stored.
type UserExtent struct {
	UserID, Day, Feed string
	Events, Invites   int64
	Entities          []UserExtentEntity
}

// AddUserExtent adds counts and entities to the stored extent, in one
// transaction.
func (db *DB) AddUserExtent(ctx context.Context, xs []UserExtent) error {
	return db.tx(ctx, func(c conn) error {
		for _, x := range xs {
			if x.Events != 0 || x.Invites != 0 {
				if _, err := c.exec(ctx, `INSERT INTO reputation_user_extent (user_id, day, feed, events, invites) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (user_id, day, feed) DO UPDATE SET events = reputation_user_extent.events + excluded.events,
					invites = reputation_user_extent.invites + excluded.invites`, x.UserID, x.Day, x.Feed, x.Events, x.Invites); err != nil {
					return err
				}
			}
			for _, e := range x.Entities {
				if _, err := c.exec(ctx, `INSERT INTO reputation_user_extent_entities (user_id, day, feed, kind, entity) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT DO NOTHING`, x.UserID, x.Day, x.Feed, e.Kind, ident.FreeText(e.Entity)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// UserExtentSince reads every user's stored extent from day on.
func (db *DB) UserExtentSince(ctx context.Context, day string) ([]UserExtent, error) {
	type key struct{ user, day, feed string }
	out, err := collect(ctx, db.r(), func(scan func(...any) error) (UserExtent, error) {
		var x UserExtent
		err := scan(&x.UserID, &x.Day, &x.Feed, &x.Events, &x.Invites)
		return x, err
	}, `SELECT user_id, day, feed, events, invites FROM reputation_user_extent WHERE day >= $1`, day)
	if err != nil {
		return nil, err
	}
	at := make(map[key]int, len(out))
	for i, x := range out {
		at[key{x.UserID, x.Day, x.Feed}] = i
	}
	type row struct {
		key
		e UserExtentEntity
	}
	ents, err := collect(ctx, db.r(), func(scan func(...any) error) (row, error) {
		var r row
		err := scan(&r.user, &r.day, &r.feed, &r.e.Kind, &r.e.Entity)
		return r, err
	}, `SELECT user_id, day, feed, kind, entity FROM reputation_user_extent_entities WHERE day >= $1`, day)
	if err != nil {
		return nil, err
	}
	for _, r := range ents {
		i, ok := at[r.key]
		if !ok {
			i = len(out)
			at[r.key] = i
			out = append(out, UserExtent{UserID: r.user, Day: r.day, Feed: r.feed})
		}
		out[i].Entities = append(out[i].Entities, r.e)
	}
	return out, nil
}

// PruneUserExtent deletes the extent of the days before day.
func (db *DB) PruneUserExtent(ctx context.Context, day string) error {
	if _, err := db.w().exec(ctx, `DELETE FROM reputation_user_extent WHERE day < $1`, day); err != nil {
		return err
	}
	_, err := db.w().exec(ctx, `DELETE FROM reputation_user_extent_entities WHERE day < $1`, day)
	return err
}
