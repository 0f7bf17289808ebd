package peer

import (
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// routes are the endpoints the peer serves, each as the server-server
// spec describes it (the answers a strict Synapse gives); anything else
// is 404 M_UNRECOGNIZED.
func (p *Peer) routes() http.Handler {
	mux := http.NewServeMux()
	const v1 = "/_matrix/federation/v1"
	mux.HandleFunc("GET /_matrix/key/v2/server", p.open(Key, p.serveKeys))
	mux.HandleFunc("PUT "+v1+"/send/{txnId}", p.signed(Send, p.serveSend))
	mux.HandleFunc("POST "+v1+"/get_missing_events/{roomId}", p.signed(GetMissingEvents, p.serveMissing))
	mux.HandleFunc("GET "+v1+"/state/{roomId}", p.signed(State, p.serveState))
	mux.HandleFunc("GET "+v1+"/state_ids/{roomId}", p.signed(StateIDs, p.serveStateIDs))
	mux.HandleFunc("GET "+v1+"/event/{eventId}", p.signed(Event, p.serveEvent))
	mux.HandleFunc("GET "+v1+"/event_auth/{roomId}/{eventId}", p.signed(EventAuth, p.serveEventAuth))
	mux.HandleFunc("GET "+v1+"/backfill/{roomId}", p.signed(Backfill, p.serveBackfill))
	mux.HandleFunc("GET "+v1+"/make_join/{roomId}/{userId}", p.signed(MakeJoin, p.serveMakeJoin))
	mux.HandleFunc("PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}", p.signed(SendJoin, p.serveSendJoin))
	mux.HandleFunc("GET "+v1+"/media/download/{mediaId}", p.signed(MediaDownload, p.serveMediaDownload))
	mux.HandleFunc("POST /_matrix/policy/v1/sign", p.signed(PolicySign, p.servePolicySign))
	mux.HandleFunc("GET "+v1+"/user/devices/{userId}", p.signed(UserDevices, p.serveUserDevices))
	mux.HandleFunc("POST "+v1+"/user/keys/query", p.signed(UserKeysQuery, p.serveUserKeysQuery))
	mux.HandleFunc("GET "+v1+"/hierarchy/{roomId}", p.signed(Hierarchy, p.serveHierarchy))
	// The unauthenticated media API a server before spec 1.11 serves, and
	// Synapse falls back to (it signs the request, which such a server
	// ignores).
	mux.HandleFunc("GET /_matrix/media/v3/download/{serverName}/{mediaId}", p.open(LegacyMedia, p.serveLegacyMedia))
	mux.HandleFunc("GET /_matrix/media/r0/download/{serverName}/{mediaId}", p.open(LegacyMedia, p.serveLegacyMedia))
	mux.HandleFunc("/", p.open(Other, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request")
	}))
	return mux
}

// open counts a request and answers it unless its endpoint is refused.
func (p *Peer) open(e Endpoint, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[e]++
		status := p.refused[e]
		delay := p.delays[e]
		if p.inFlight == nil {
			p.inFlight, p.maxInFlight = map[Endpoint]int{}, map[Endpoint]int{}
		}
		p.inFlight[e]++
		p.maxInFlight[e] = max(p.maxInFlight[e], p.inFlight[e])
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.inFlight[e]--
			p.mu.Unlock()
		}()
		if delay > 0 {
			time.Sleep(delay)
		}
		if status == HangUp {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
		}
		if status != 0 {
			writeError(w, status, "M_UNRECOGNIZED", "Unrecognized request")
			return
		}
		h(w, r)
	}
}

// request is a checked federation request.
type request struct {
	*http.Request
	origin  string
	content []byte
}

// signed is open for endpoints that need an X-Matrix signature, checked
// with the calling server's published key.
func (p *Peer) signed(e Endpoint, h func(w http.ResponseWriter, r *request)) http.HandlerFunc {
	return p.open(e, func(w http.ResponseWriter, r *http.Request) {
		fr, resp := fclient.VerifyHTTPRequest(r, time.Now(), spec.ServerName(p.Name), nil, p)
		if fr == nil {
			writeJSON(w, resp.Code, resp.JSON)
			return
		}
		h(w, &request{Request: r, origin: string(fr.Origin()), content: fr.Content()})
	})
}

func (p *Peer) serveKeys(w http.ResponseWriter, _ *http.Request) {
	doc, err := p.serverKeys()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

// room finds the room of a request, answering 404 when the peer does
// not know it.
func (p *Peer) room(w http.ResponseWriter, roomID string) *Room {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[roomID]
	if r == nil {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Unknown room")
	}
	return r
}

// serveSend adds what other servers send to the peer's rooms, checking
// signatures only: the peer trusts its test.
func (p *Peer) serveSend(w http.ResponseWriter, r *request) {
	var body struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	if err := json.Unmarshal(r.content, &body); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
		return
	}
	results := map[string]any{}
	p.mu.Lock()
	hook := p.sendHook
	p.mu.Unlock()
	for _, raw := range body.PDUs {
		if hook != nil {
			hook(raw)
		}
		var head struct {
			RoomID string `json:"room_id"`
		}
		_ = json.Unmarshal(raw, &head)
		room := p.Room(head.RoomID)
		if room == nil {
			continue
		}
		pdu, err := room.Version.NewEventFromUntrustedJSON(raw)
		if err != nil {
			continue
		}
		if err := gomatrixserverlib.VerifyEventSignatures(r.Context(), pdu, p, userIDForSender); err != nil {
			results[pdu.EventID()] = map[string]string{"error": err.Error()}
			continue
		}
		room.Add(pdu)
		results[pdu.EventID()] = map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"pdus": results})
}

func userIDForSender(roomID spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// serveMissing is /get_missing_events: events before latest_events back
// to earliest_events, at most limit, not below min_depth; oldest first,
// as Synapse sends them.
func (p *Peer) serveMissing(w http.ResponseWriter, r *request) {
	room := p.room(w, r.PathValue("roomId"))
	if room == nil {
		return
	}
	var body struct {
		Limit    int      `json:"limit"`
		MinDepth int64    `json:"min_depth"`
		Earliest []string `json:"earliest_events"`
		Latest   []string `json:"latest_events"`
	}
	if err := json.Unmarshal(r.content, &body); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
		return
	}
	if body.Limit <= 0 {
		body.Limit = 10
	}
	stop := map[string]bool{}
	for _, id := range body.Earliest {
		stop[id] = true
	}
	p.mu.Lock()
	var from []string
	for _, id := range body.Latest {
		if ev, ok := room.events[id]; ok {
			from = append(from, ev.PrevEventIDs()...)
		}
	}
	evs := room.walkBack(from, stop, body.Limit, body.MinDepth, true)
	hook := p.missingHook
	p.mu.Unlock()
	slices.SortFunc(evs, func(a, b gomatrixserverlib.PDU) int { return int(a.Depth() - b.Depth()) })
	raws := jsons(evs)
	if hook != nil {
		raws = hook(raws)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": raws})
}

// stateBefore answers the state before ?event_id= and its auth chain,
// or false after answering 404.
func (p *Peer) stateBefore(w http.ResponseWriter, r *request) (state, chain []gomatrixserverlib.PDU, ok bool) {
	room := p.room(w, r.PathValue("roomId"))
	if room == nil {
		return nil, nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	before := room.stateBefore(r.URL.Query().Get("event_id"))
	if before == nil {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Unknown event")
		return nil, nil, false
	}
	state = before.list()
	return state, room.authChain(state), true
}

func (p *Peer) serveState(w http.ResponseWriter, r *request) {
	if state, chain, ok := p.stateBefore(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"pdus": jsons(state), "auth_chain": jsons(chain)})
	}
}

func (p *Peer) serveStateIDs(w http.ResponseWriter, r *request) {
	if state, chain, ok := p.stateBefore(w, r); ok {
		stateIDs, chainIDs := ids(state), ids(chain)
		p.mu.Lock()
		hook := p.stateIDsHook
		p.mu.Unlock()
		if hook != nil {
			stateIDs, chainIDs = hook(stateIDs, chainIDs)
		}
		writeJSON(w, http.StatusOK, map[string]any{"pdu_ids": stateIDs, "auth_chain_ids": chainIDs})
	}
}

func (p *Peer) serveEvent(w http.ResponseWriter, r *request) {
	id := r.PathValue("eventId")
	p.mu.Lock()
	var found gomatrixserverlib.PDU
	for _, room := range p.rooms {
		if ev, ok := room.events[id]; ok {
			found = ev
		}
	}
	p.mu.Unlock()
	if found == nil {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Unknown event")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"origin": p.Name, "origin_server_ts": time.Now().UnixMilli(), "pdus": []json.RawMessage{found.JSON()}})
}

func (p *Peer) serveEventAuth(w http.ResponseWriter, r *request) {
	room := p.room(w, r.PathValue("roomId"))
	if room == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ev, ok := room.events[r.PathValue("eventId")]
	if !ok {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Unknown event")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"auth_chain": jsons(room.authChain([]gomatrixserverlib.PDU{ev}))})
}

// serveBackfill is /backfill: the events from ?v= backwards, them
// included, at most ?limit=.
func (p *Peer) serveBackfill(w http.ResponseWriter, r *request) {
	room := p.room(w, r.PathValue("roomId"))
	if room == nil {
		return
	}
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "limit")
		return
	}
	p.mu.Lock()
	evs := room.walkBack(r.URL.Query()["v"], nil, min(limit, 100), 0, true)
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"origin": p.Name, "origin_server_ts": time.Now().UnixMilli(), "pdus": jsons(evs)})
}

// serveMakeJoin is /make_join: a join template on top of the room's
// forward extremities, for any user of the calling server (the room is
// public).
func (p *Peer) serveMakeJoin(w http.ResponseWriter, r *request) {
	room := p.room(w, r.PathValue("roomId"))
	if room == nil {
		return
	}
	userID := r.PathValue("userId")
	if serverOf(userID) != r.origin {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "User not of the calling server")
		return
	}
	if vers := r.URL.Query()["ver"]; !slices.Contains(vers, string(room.Version.Version())) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "room_version": string(room.Version.Version())})
		return
	}
	p.mu.Lock()
	prevs := slices.Clone(room.extremities)
	before := room.stateAt(prevs)
	var depth int64
	for _, id := range prevs {
		depth = max(depth, room.events[id].Depth())
	}
	p.mu.Unlock()
	content, _ := json.Marshal(map[string]string{"membership": spec.Join})
	proto := &gomatrixserverlib.ProtoEvent{SenderID: userID, RoomID: room.ID, Type: spec.MRoomMember, StateKey: &userID,
		PrevEvents: prevs, Depth: depth + 1, Content: content}
	proto.Version = room.Version
	auth, err := gomatrixserverlib.NewAuthEvents(before.list())
	if err == nil {
		var needed gomatrixserverlib.StateNeeded
		if needed, err = gomatrixserverlib.StateNeededForProtoEvent(proto); err == nil {
			proto.AuthEvents, err = needed.AuthEventReferences(auth)
		}
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"room_version": room.Version.Version(), "event": proto})
}

// serveSendJoin is /v2/send_join: the join joins the room; the answer is
// the state before it and the auth chain of that state and the join,
// the full state unless ?omit_members=true asks for a partial-state join.
func (p *Peer) serveSendJoin(w http.ResponseWriter, r *request) {
	room := p.room(w, r.PathValue("roomId"))
	if room == nil {
		return
	}
	pdu, err := room.Version.NewEventFromUntrustedJSON(r.content)
	if err != nil || pdu.EventID() != r.PathValue("eventId") || pdu.Type() != spec.MRoomMember {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "Not the join named in the path")
		return
	}
	if err := gomatrixserverlib.VerifyEventSignatures(r.Context(), pdu, p, userIDForSender); err != nil {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", err.Error())
		return
	}
	omit := r.URL.Query().Get("omit_members") == "true"
	p.mu.Lock()
	state := room.stateAt(pdu.PrevEventIDs()).list()
	servers := map[string]bool{p.Name: true, r.origin: true}
	for _, ev := range state {
		if m, _ := ev.Membership(); ev.Type() == spec.MRoomMember && m == spec.Join {
			servers[serverOf(*ev.StateKey())] = true
		}
	}
	if omit {
		state = withoutMembers(state, pdu)
	}
	chain := room.authChain(append(slices.Clone(state), pdu))
	room.add(pdu)
	p.mu.Unlock()
	var list []string
	for s := range servers {
		list = append(list, s)
	}
	slices.Sort(list)
	p.mu.Lock()
	hook := p.serversHook
	p.mu.Unlock()
	if hook != nil && omit {
		list = hook(list)
	}
	writeJSON(w, http.StatusOK, map[string]any{"origin": p.Name, "state": jsons(state), "auth_chain": jsons(chain),
		"event": json.RawMessage(pdu.JSON()), "members_omitted": omit, "servers_in_room": list})
}

// withoutMembers is the state a partial-state join gets (send_join with
// omit_members, MSC3706): membership events left out but those of the
// room's heroes (up to 5 members, by the spec's room summary rule) and
// of the joining user.
func withoutMembers(state []gomatrixserverlib.PDU, join gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	var out, members []gomatrixserverlib.PDU
	for _, ev := range state {
		switch {
		case ev.Type() != spec.MRoomMember:
			out = append(out, ev)
		case *ev.StateKey() == *join.StateKey():
			out = append(out, ev)
		default:
			members = append(members, ev)
		}
	}
	slices.SortFunc(members, func(a, b gomatrixserverlib.PDU) int { return strings.Compare(*a.StateKey(), *b.StateKey()) })
	return append(out, members[:min(5, len(members))]...)
}

// serveMediaDownload is the authenticated download (spec 1.11): a
// multipart/mixed answer, JSON metadata then the bytes.
func (p *Peer) serveMediaDownload(w http.ResponseWriter, r *request) {
	p.mu.Lock()
	m, ok := p.media[r.PathValue("mediaId")]
	p.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Not found")
		return
	}
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	meta, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	_, _ = meta.Write([]byte("{}"))
	part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {m.contentType}})
	_, _ = part.Write(m.data)
	_ = mw.Close()
}

// serveLegacyMedia is the client media download a server without
// authenticated media serves over federation: the bytes themselves.
func (p *Peer) serveLegacyMedia(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	m, ok := p.media[r.PathValue("mediaId")]
	p.mu.Unlock()
	if !ok || r.PathValue("serverName") != p.Name {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "Not found")
		return
	}
	w.Header().Set("Content-Type", m.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
	_, _ = w.Write(m.data)
}
