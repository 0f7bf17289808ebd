package server

import (
	"context"

	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// reputationPoints are the enforcement points of issue 16 item 5 over
// the blend of the server's reputation feeds, handed to each service
// that enforces one (the room engine, push through it, federation,
// membership, the directory, the user directory, media, accounts).
// It also makes the index of the rooms media was posted in
// (s.repMedia), which the media point reads.
func (s *Server) reputationPoints() *reputation.Points {
	s.repMedia = reputation.NewMediaRooms(s.db, s.changes, s.log, reputation.WithJoinState(engineState{s}, s.cfg.ServerName))
	return reputation.NewPoints(s.reputation, s.cfg.ServerName, reputation.WithMediaRooms(s.repMedia))
}

// engineState reads rooms' state through the server's engine for the
// media-room index, which is built before the engine (the engine takes
// the enforcement points, which take the index) and reads state only
// once the server runs.
type engineState struct{ s *Server }

func (e engineState) CurrentState(ctx context.Context, roomID string) (rooms.StateMap, error) {
	return e.s.engine.CurrentState(ctx, roomID)
}

func (e engineState) StateEvent(ctx context.Context, state rooms.StateMap, typ, stateKey string) (*rooms.Event, error) {
	return e.s.engine.StateEvent(ctx, state, typ, stateKey)
}
