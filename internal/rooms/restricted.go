package rooms

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// Restricted rooms (client-server spec "Restricted rooms", room versions
// 8 and later): a user joined to one of the rooms the join rules allow
// may join without an invite, once a member who may invite vouches for
// them (join_authorised_via_users_server) and that member's server signs
// the join. Only a server in an allowed room can tell whether the user
// is in it, so the resident server that vouches is the one that checks.

// Errcodes of make_join for restricted rooms that tell the joining
// server to try another resident server (server-server spec, make_join).
const (
	CodeUnableToAuthorise = "M_UNABLE_TO_AUTHORISE_JOIN"
	CodeUnableToGrant     = "M_UNABLE_TO_GRANT_JOIN"
)

func errUnableToAuthorise() *mxerr.Error {
	return &mxerr.Error{Status: http.StatusBadRequest, Code: CodeUnableToAuthorise,
		Message: "This server is in none of the rooms this room is restricted to"}
}

func errUnableToGrant() *mxerr.Error {
	return &mxerr.Error{Status: http.StatusBadRequest, Code: CodeUnableToGrant,
		Message: "No member of this server may invite you to this room"}
}

// joinRules is the content of m.room.join_rules.
type joinRules struct {
	JoinRule string `json:"join_rule"`
	Allow    []struct {
		Type   string `json:"type"`
		RoomID string `json:"room_id"`
	} `json:"allow"`
}

// restrictedJoinAuthoriser returns the local user who authorises a join
// under the restricted join rules, "" when the join needs none (the room
// is not restricted, or the user is already invited or joined). As
// Synapse's on_make_join_request, it answers M_UNABLE_TO_AUTHORISE_JOIN
// when this server is in none of the allowed rooms, M_FORBIDDEN when it
// is and the user is in none of them, and M_UNABLE_TO_GRANT_JOIN when no
// local member may invite: the joining server tries another server on
// both M_UNABLE codes (server-server spec, make_join).
func (e *Engine) restrictedJoinAuthoriser(ctx context.Context, h *roomHead, userID string) (string, error) {
	if needed, err := e.restrictedJoinAllowed(ctx, h, userID); err != nil || !needed {
		return "", err
	}
	return e.localAuthoriser(ctx, h)
}

// restrictedJoinAllowed is the first half of restrictedJoinAuthoriser:
// whether the join needs an authoriser, and the refusals that do not
// depend on who could be one.
func (e *Engine) restrictedJoinAllowed(ctx context.Context, h *roomHead, userID string) (bool, error) {
	evs, err := e.StateEvents(ctx, h.state, roommodel.StateKey{Type: spec.MRoomJoinRules},
		roommodel.StateKey{Type: spec.MRoomMember, StateKey: userID})
	if err != nil {
		return false, err
	}
	jrEv := evs[roommodel.StateKey{Type: spec.MRoomJoinRules}]
	if jrEv == nil {
		return false, nil
	}
	var jr joinRules
	if json.Unmarshal(jrEv.Content(), &jr) != nil || (jr.JoinRule != spec.Restricted && jr.JoinRule != spec.KnockRestricted) {
		return false, nil
	}
	if m := evs[roommodel.StateKey{Type: spec.MRoomMember, StateKey: userID}]; m != nil {
		if ms, _ := m.Membership(); ms == spec.Join || ms == spec.Invite {
			return false, nil
		}
	}
	allowed, known, err := e.inAllowedRoom(ctx, h.id, jr, userID)
	if err != nil {
		return false, err
	}
	if !allowed {
		if !known {
			return false, errUnableToAuthorise()
		}
		if jr.JoinRule == spec.KnockRestricted {
			return false, mxerr.Forbidden("You are not invited to this room; knock to ask for an invite")
		}
		return false, mxerr.Forbidden("You do not belong to any of the rooms this room is restricted to")
	}
	return true, nil
}

// localAuthoriser is the local member who vouches for a restricted join:
// the one with the most power to invite.
func (e *Engine) localAuthoriser(ctx context.Context, h *roomHead) (string, error) {
	pl, err := e.PowerLevels(ctx, h.state)
	if err != nil {
		return "", err
	}
	members, err := e.Members(ctx, h.state)
	if err != nil {
		return "", err
	}
	// The local member with the most power, as Synapse's
	// get_user_which_could_invite (the least likely to lose the right to
	// invite before the join lands); ties go to the smallest user ID, so
	// that the choice does not depend on map order.
	best, bestLevel := "", int64(0)
	for _, m := range members {
		ms, _ := m.Membership()
		uid := *m.StateKey()
		if ms != spec.Join || serverOf(uid) != e.opts.ServerName {
			continue
		}
		level := pl.UserLevel(spec.SenderID(uid))
		if level >= pl.Invite && (best == "" || level > bestLevel || level == bestLevel && uid < best) {
			best, bestLevel = uid, level
		}
	}
	if best == "" {
		return "", errUnableToGrant()
	}
	return best, nil
}

// inAllowedRoom reports whether a user is joined to one of the rooms the
// join rules allow, and whether this server could tell: it is joined to
// at least one of them (it knows nothing of the others' members). It
// reads materialised current state, never another room's lock, since the
// caller holds this room's.
func (e *Engine) inAllowedRoom(ctx context.Context, roomID string, jr joinRules, userID string) (allowed, known bool, err error) {
	for _, a := range jr.Allow {
		// The join rules come from another server: a room ID the store
		// cannot hold (NUL, invalid UTF-8) names no room here.
		if a.Type != "m.room_membership" || a.RoomID == "" || a.RoomID == roomID || ident.CheckID(a.RoomID) != nil {
			continue
		}
		servers, err := e.store.JoinedServers(ctx, a.RoomID)
		if err != nil {
			return false, false, err
		}
		if !slices.Contains(servers, e.opts.ServerName) {
			continue
		}
		known = true
		ms, err := e.MembershipOf(ctx, a.RoomID, userID)
		if err != nil {
			return false, false, err
		}
		if ms == spec.Join {
			return true, true, nil
		}
	}
	return false, known, nil
}

// CheckRestrictedJoin is the check Synapse's check_join_restrictions
// makes of a join another server sends (send_join): the auth rules only
// ask that the vouching member be joined with power to invite and their
// server have signed, so a server could otherwise skip make_join and
// have this server countersign the join of a user in none of the allowed
// rooms. A join vouched for by a local member is refused unless this
// server sees the user in an allowed room; one vouched for by another
// server is refused only when this server can see that the user is not.
func (e *Engine) CheckRestrictedJoin(ctx context.Context, join gomatrixserverlib.PDU) error {
	var c struct {
		Via string `json:"join_authorised_via_users_server"`
	}
	if json.Unmarshal(join.Content(), &c) != nil || join.StateKey() == nil {
		return nil // the auth rules refuse what does not parse
	}
	h, err := e.lockRoom(ctx, join.RoomID().String())
	if err != nil {
		return err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil
	}
	// Whether the named member may vouch is the auth rules' question.
	_, err = e.restrictedJoinAllowed(ctx, h, *join.StateKey())
	me, ok := mxerr.As(err)
	switch {
	case err == nil:
		return nil
	case !ok:
		return err
	case me.Code == CodeUnableToAuthorise && serverOf(c.Via) != e.opts.ServerName:
		return nil
	}
	return mxerr.Forbidden("You do not belong to any of the rooms this room is restricted to")
}

// AuthorisingServers lists the other servers of a room with a joined
// member who may invite: the ones that could vouch for a restricted
// join this server cannot (Synapse's get_users_which_can_issue_invite),
// in name order.
func (e *Engine) AuthorisingServers(ctx context.Context, roomID string) ([]string, error) {
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	pl, err := e.PowerLevels(ctx, state)
	if err != nil {
		return nil, err
	}
	members, err := e.Members(ctx, state)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		uid := *m.StateKey()
		server := serverOf(uid)
		if ms, _ := m.Membership(); ms != spec.Join || server == "" || server == e.opts.ServerName || slices.Contains(out, server) {
			continue
		}
		if pl.UserLevel(spec.SenderID(uid)) >= pl.Invite {
			out = append(out, server)
		}
	}
	slices.Sort(out)
	return out, nil
}
