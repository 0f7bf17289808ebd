package rooms

import (
	"context"
	"encoding/json"
	"net"
	"path"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// What the engine answers about other servers: whether a room's server
// ACL lets them in, whether they are in a room, and the auth chains they
// ask for.

// ServerAllowed reports whether a room's m.room.server_acl allows a
// server (client-server spec "Server Access Control Lists"). Rooms
// without an ACL allow everyone.
func (e *Engine) ServerAllowed(ctx context.Context, roomID, serverName string) (bool, error) {
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		return false, err
	}
	acl, err := e.StateEvent(ctx, state, "m.room.server_acl", "")
	if err != nil || acl == nil {
		return true, err
	}
	return ACLAllows(acl.Content(), serverName), nil
}

// ACLAllows evaluates server_acl content for a server name: the port is
// ignored, IP literals are refused unless allow_ip_literals (default
// true), a deny match refuses, and only an allow match admits.
func ACLAllows(content []byte, serverName string) bool {
	var acl struct {
		Allow           []any `json:"allow"`
		Deny            []any `json:"deny"`
		AllowIPLiterals *bool `json:"allow_ip_literals"`
	}
	if json.Unmarshal(content, &acl) != nil {
		// A malformed ACL is ignored, as Synapse does.
		return true
	}
	host := serverName
	if strings.HasPrefix(host, "[") {
		if i := strings.Index(host, "]"); i >= 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.ToLower(host)
	if acl.AllowIPLiterals != nil && !*acl.AllowIPLiterals && net.ParseIP(strings.Trim(host, "[]")) != nil {
		return false
	}
	if matchesAny(acl.Deny, host) {
		return false
	}
	return matchesAny(acl.Allow, host)
}

// matchesAny matches a host against ACL globs (* and ?), ignoring
// entries that are not strings.
func matchesAny(globs []any, host string) bool {
	for _, g := range globs {
		s, ok := g.(string)
		if !ok {
			continue
		}
		// path.Match treats [ and \ specially; ACL globs only know * and ?.
		s = strings.NewReplacer(`\`, `\\`, `[`, `\[`).Replace(strings.ToLower(s))
		if ok, _ := path.Match(s, host); ok {
			return true
		}
	}
	return false
}

// ServersInRoom lists the servers with joined members in a state. The
// memberships are read from the column stored with each event, not
// from the events: in a room of 10,000 members every federation request
// about it (make_join, send_join and its servers_in_room, /state...)
// parsed 10,000 events here, more than the event cache holds (issue 14).
func (e *Engine) ServersInRoom(ctx context.Context, state StateMap) ([]string, error) {
	members, err := e.Memberships(ctx, state)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for user, m := range members {
		if m != spec.Join {
			continue
		}
		if s := serverOf(user); s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// Memberships maps the users with a membership event in a state to
// their membership, as Members' events give it (Event.Membership), from
// the column stored with each event.
func (e *Engine) Memberships(ctx context.Context, state StateMap) (map[string]string, error) {
	var nids []int64
	for k, n := range state {
		if k.Type == spec.MRoomMember {
			nids = append(nids, n)
		}
	}
	byNID, err := e.store.MembershipsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(byNID))
	for k, n := range state {
		if m, ok := byNID[n]; ok && k.Type == spec.MRoomMember {
			out[k.StateKey] = m
		}
	}
	return out, nil
}

// serversCacheSize bounds the rooms whose current servers are kept.
const serversCacheSize = 1024

// ServerInRoom reports whether a server has a joined member in a room
// now (CurrentServers).
func (e *Engine) ServerInRoom(ctx context.Context, roomID, serverName string) (bool, error) {
	servers, err := e.currentServers(ctx, roomID)
	return slices.Contains(servers, serverName), err
}

// CurrentServers lists the servers with joined members in a room's
// current state, as ServersInRoom of it does. Every request another
// server makes about a room asks whether it is in it, and in a room of
// 10,000 members each reads 10,000 memberships (a join: make_join,
// send_join and its servers_in_room, and the sender's fan-out of the
// join): the list is kept per snapshot of the room's current state,
// which any change of state replaces.
func (e *Engine) CurrentServers(ctx context.Context, roomID string) ([]string, error) {
	servers, err := e.currentServers(ctx, roomID)
	return slices.Clone(servers), err
}

// currentServers is CurrentServers without the copy: shared, not to be
// modified.
func (e *Engine) currentServers(ctx context.Context, roomID string) ([]string, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	known, state, snapshot := h.version != nil, h.state, h.snapshot
	e.unlockRoom(h)
	if !known {
		return nil, mxerr.NotFound("Unknown room")
	}
	if servers, ok := e.servers.Get(snapshot); ok && snapshot != 0 {
		return servers, nil
	}
	servers, err := e.ServersInRoom(ctx, state)
	if err != nil {
		return nil, err
	}
	if snapshot != 0 {
		e.servers.PutCost(snapshot, servers, 1)
	}
	return servers, nil
}

// AuthChain returns the transitive auth events of evs (not evs themselves).
func (e *Engine) AuthChain(ctx context.Context, evs []*Event) ([]*Event, error) {
	return e.authChain(ctx, evs)
}

// StateBefore returns the state before an event (shared; do not modify).
func (e *Engine) StateBefore(ctx context.Context, ev *Event) (StateMap, error) {
	return e.snapshotState(ctx, ev.StateBefore)
}
