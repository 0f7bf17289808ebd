package reputation

import (
	"context"
	"strings"
)

// Points is the server's enforcement points (issue 16 item 5) over an
// Enforcer: each method is one point's rule, which entities it checks
// under which action, so that rule lives here once. The services that
// enforce them (the room engine, membership, federation, the directory,
// the user directory, media, accounts) each take a one-method interface
// of their own that Points satisfies, rather than this package: the feed
// subscriptions here follow rooms through the room engine and join them
// through membership, which must not import this package back.
//
// Decisions are recorded (Check's detail) where something is refused or
// an event arrives, never on the read paths that apply a rule again for
// every request (CanSee, listings), which would fill the log with the
// same decision.
type Points struct {
	e          Enforcer
	serverName string
	mediaRooms MediaRoomIndex
}

// MediaRoomIndex lists the rooms a piece of media was posted in
// (MediaRooms).
type MediaRoomIndex interface {
	RoomsOf(ctx context.Context, origin, mediaID string) ([]string, error)
}

// PointsOption configures the enforcement points.
type PointsOption func(*Points)

// WithMediaRooms makes RefusesMedia take down the media posted in the
// rooms the feeds list, as the index records them.
func WithMediaRooms(x MediaRoomIndex) PointsOption {
	return func(p *Points) { p.mediaRooms = x }
}

// NewPoints makes the enforcement points of the server serverName; a nil
// Enforcer enforces nothing.
func NewPoints(e Enforcer, serverName string, opts ...PointsOption) *Points {
	if e == nil {
		e = Nop{}
	}
	p := &Points{e: e, serverName: serverName}
	for _, o := range opts {
		o(p)
	}
	return p
}

// idServer is the server part of a user ID or room ID ("" for none, as
// in version 12 room IDs).
func idServer(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		return id[i+1:]
	}
	return ""
}

// remote reports whether a user ID belongs to another server.
func (p *Points) remote(userID string) bool {
	s := idServer(userID)
	return s != "" && s != p.serverName
}

// EventVerdict is the verdict on an event from sender received over
// federation (ActionEvents on the sender and the sender's server):
// hidden from local users when listed, dropped before storage when a
// listing feed asks for a takedown. Local senders are never listed here.
// A non-empty eventID records the decision.
func (p *Points) EventVerdict(ctx context.Context, sender, eventID string) (hidden, takedown bool) {
	if !p.remote(sender) {
		return false, false
	}
	v := CheckUser(ctx, p.e, ActionEvents, sender, eventID)
	return v.Listed, v.Listed && v.Takedown
}

// HidesEvents reports whether events of sender are hidden from local
// users: the read-time half of EventVerdict, which records nothing.
func (p *Points) HidesEvents(ctx context.Context, sender string) bool {
	hidden, _ := p.EventVerdict(ctx, sender, "")
	return hidden
}

// RefusesInvite is the verdict on an invite from another server's user
// to roomID (ActionInvites on the inviter, the inviter's server and the
// room); reason is the listing rule's. The event ID is recorded.
func (p *Points) RefusesInvite(ctx context.Context, sender, roomID, eventID string) (reason string, refused bool) {
	if !p.remote(sender) {
		return "", false
	}
	if v := CheckUser(ctx, p.e, ActionInvites, sender, eventID); v.Listed {
		return v.Reason, true
	}
	if v := p.e.Check(ctx, ActionInvites, KindRoom, roomID, eventID); v.Listed {
		return v.Reason, true
	}
	return "", false
}

// RefusesJoin is the verdict on a local user's join to roomID
// (ActionJoins on the room, and on the server its ID names when that is
// another server: version 12 room IDs name none). via are the servers a
// join of a room no one here is in goes through (nil otherwise): when
// the feeds list every one of them, the room is, as far as this server
// can tell, on listed servers only, and the join is refused too (a room
// also on other servers is joined through those). The user is recorded.
func (p *Points) RefusesJoin(ctx context.Context, userID, roomID string, via []string) (reason string, refused bool) {
	if v := p.e.Check(ctx, ActionJoins, KindRoom, roomID, userID); v.Listed {
		return v.Reason, true
	}
	if s := idServer(roomID); s != "" && s != p.serverName {
		if v := p.e.Check(ctx, ActionJoins, KindServer, s, userID); v.Listed {
			return v.Reason, true
		}
	}
	if len(via) == 0 {
		return "", false
	}
	// Checked without recording first: only a refusal is a decision.
	for _, s := range via {
		if s == p.serverName || !p.e.Check(ctx, ActionJoins, KindServer, s, "").Listed {
			return "", false
		}
	}
	v := p.e.Check(ctx, ActionJoins, KindServer, via[0], userID)
	return v.Reason, v.Listed
}

// HidesRoom reports whether a room is left out of the public room
// directory, space hierarchies and room summaries (ActionDirectory on
// the room). Nothing is recorded: listings ask on every request.
func (p *Points) HidesRoom(ctx context.Context, roomID string) bool {
	return p.e.Check(ctx, ActionDirectory, KindRoom, roomID, "").Listed
}

// HidesUser reports whether a user is left out of user directory
// searches (ActionUserDirectory on the user and the user's server).
// Nothing is recorded: searches ask on every request.
func (p *Points) HidesUser(ctx context.Context, userID string) bool {
	return CheckUser(ctx, p.e, ActionUserDirectory, userID, "").Listed
}

// RefusesMedia reports whether media is neither fetched nor served
// from this server's copy (ActionMedia): media of another server the
// feeds list, and media of any server (this one's too) posted in a room
// the feeds list, as the media-room index recorded it (a take-down of
// the room's media). The media ID ("mxc://server/id") is recorded. A
// failed index read serves the media: the read fails like any other
// of the download when the database does.
func (p *Points) RefusesMedia(ctx context.Context, server, mediaID string) bool {
	detail := ""
	if mediaID != "" {
		detail = "mxc://" + server + "/" + mediaID
	}
	if server != "" && server != p.serverName && p.e.Check(ctx, ActionMedia, KindServer, server, detail).Listed {
		return true
	}
	if p.mediaRooms == nil || server == "" || mediaID == "" {
		return false
	}
	roomIDs, err := p.mediaRooms.RoomsOf(ctx, server, mediaID)
	if err != nil {
		return false
	}
	// Checked without recording first: only the refusal is a decision.
	for _, roomID := range roomIDs {
		if p.e.Check(ctx, ActionMedia, KindRoom, roomID, "").Listed {
			return p.e.Check(ctx, ActionMedia, KindRoom, roomID, detail).Listed
		}
	}
	return false
}

// RefusesRegistration is the verdict on registering localpart on this
// server (ActionRegistration on @localpart:server, which glob rules such
// as "@spam*:example.org" match). The user ID is recorded.
func (p *Points) RefusesRegistration(ctx context.Context, localpart string) (reason string, refused bool) {
	userID := "@" + localpart + ":" + p.serverName
	if v := p.e.Check(ctx, ActionRegistration, KindUser, userID, userID); v.Listed {
		return v.Reason, true
	}
	return "", false
}
