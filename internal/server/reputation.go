package server

import (
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/reputation"
)

// newReputationFeeds makes the service that follows the reputation
// feeds into the blend built with the engine (s.reputation): it joins
// feeds through membership (and so through other servers), and resolves
// aliases here or, with federation, on theirs.
func (s *Server) newReputationFeeds(members *membership.Service, b *built) *reputation.Service {
	al := reputation.Aliases{Local: b.aliases}
	if b.remote != nil {
		al.Remote = b.remote
	}
	return reputation.New(reputation.Options{
		ServerName: s.cfg.ServerName, Config: s.cfg.Reputation, Blender: s.reputation, Store: s.db,
		Rooms: s.engine, Members: members, Aliases: al, Log: s.log, Bus: s.changes, DecisionLog: s.repLog,
	})
}

// Reputation is the Enforcer over the subscribed reputation feeds, for
// the enforcement points built with the server.
func (s *Server) Reputation() reputation.Enforcer { return s.reputation }
