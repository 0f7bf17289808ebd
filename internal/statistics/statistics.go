// Package statistics answers the server statistics of Synapse's admin
// API that are not any one service's: the rooms' shares of the database.
// (Users' media statistics belong to internal/media.)
package statistics

import (
	"context"

	"github.com/myelin-chat/myelin/internal/store"
)

// Store is what the statistics read.
type Store interface {
	LargestRooms(ctx context.Context, limit int) ([]store.RoomSize, error)
}

// Service computes the statistics.
type Service struct{ db Store }

// New makes the service.
func New(db Store) *Service { return &Service{db: db} }

// RoomSize is a room's estimated size in the database, in bytes.
type RoomSize struct {
	RoomID        string
	EstimatedSize int64
}

// LargestRoomCount is how many rooms Synapse's statistics/database/rooms lists.
const LargestRoomCount = 10

// LargestRooms lists the ten largest rooms, largest first. Synapse reads
// PostgreSQL's planner statistics (and refuses on SQLite); Myelin, on
// both engines, sums the lengths of each room's event JSON, which is
// the bulk of a room's rows: an estimate that leaves out indexes, state
// snapshots and media.
func (s *Service) LargestRooms(ctx context.Context) ([]RoomSize, error) {
	rows, err := s.db.LargestRooms(ctx, LargestRoomCount)
	if err != nil {
		return nil, err
	}
	out := make([]RoomSize, len(rows))
	for i, r := range rows {
		out[i] = RoomSize{RoomID: r.RoomID, EstimatedSize: r.Size}
	}
	return out, nil
}
