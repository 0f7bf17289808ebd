package server

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/rooms"
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
		Users: s.repUsers, Publisher: reputation.Publisher{Rooms: s.engine, Aliases: b.aliases},
	})
}

// Reputation is the Enforcer over the subscribed reputation feeds, for
// the enforcement points built with the server.
func (s *Server) Reputation() reputation.Enforcer { return s.reputation }

// showFilteredParam marks the requests whose client asked to see what
// the user's own reputation filter hides (org.myelin.show_filtered=true
// on /sync, /messages, /context, /notifications; rooms.ShowFiltered).
func showFilteredParam(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("org.myelin.show_filtered") == "true" {
			r = r.WithContext(rooms.WithShowFiltered(r.Context()))
		}
		h.ServeHTTP(w, r)
	})
}
