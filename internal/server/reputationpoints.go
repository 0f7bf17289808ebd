package server

import (
	"github.com/myelin-chat/myelin/internal/reputation"
)

// reputationPoints are the enforcement points of issue 16 item 5 over
// the blend of the server's reputation feeds, handed to each service
// that enforces one (the room engine, push through it, federation,
// membership, the directory, the user directory, media, accounts).
// It also makes the index of the rooms media was posted in
// (s.repMedia), which the media point reads.
func (s *Server) reputationPoints() *reputation.Points {
	s.repMedia = reputation.NewMediaRooms(s.db, s.changes, s.log)
	return reputation.NewPoints(s.reputation, s.cfg.ServerName, reputation.WithMediaRooms(s.repMedia))
}
