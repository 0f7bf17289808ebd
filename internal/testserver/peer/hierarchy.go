package peer

import (
	"net/http"
)

// Hierarchy is GET /hierarchy/{roomId}, answered with what SetHierarchy
// gave (404 for other rooms).
const Hierarchy Endpoint = "hierarchy"

// SetHierarchy sets the peer's /hierarchy answer about a room, sent as
// given (which may be any size or not JSON at all).
func (p *Peer) SetHierarchy(roomID string, answer []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hierarchies[roomID] = answer
}

func (p *Peer) serveHierarchy(w http.ResponseWriter, r *request) {
	p.mu.Lock()
	answer, ok := p.hierarchies[r.PathValue("roomId")]
	p.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Unknown room")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(answer)
}
