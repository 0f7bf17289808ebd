// Package membership carries out membership changes a user asks for:
// joins, leaves, invites, knocks, kicks, bans and unbans, and parting every
// room when an account is deactivated. It owns the one decision every
// such change needs: whether it is made here, by the room engine, or
// through the server that holds the room (the federation perform API),
// and what an invitee or knocker sees of a room before joining it
// (stripped state). Handlers parse a request and call one method here.
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Remote is what membership asks of federation: joins, knocks and leaves
// of rooms no local user is in, and the invitee's server's countersignature
// on an invite of one of its users.
type Remote interface {
	Join(ctx context.Context, userID, roomID string, via []string, content map[string]any) error
	Knock(ctx context.Context, userID, roomID string, via []string, reason string) error
	Leave(ctx context.Context, userID, roomID, reason string) error
	// InviteCountersigner returns what the room engine calls, under the
	// room's lock, to have the invitee's server countersign an invite
	// that carries the given stripped state.
	InviteCountersigner(ctx context.Context, roomID, invitee string, state []clientevent.Stripped) (func(context.Context, gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error), error)
}

// Store is the membership data kept beside the room state: a user's
// memberships across rooms and the rooms they forgot.
type Store interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	ForgetRoom(ctx context.Context, userID, roomID string) error
	UnforgetRoom(ctx context.Context, userID, roomID string) error
	MutualRooms(ctx context.Context, userA, userB, after string, limit int) ([]string, error)
	CountMutualRooms(ctx context.Context, userA, userB string) (int64, error)
	// RoomBlocked is whether an admin blocked the room (blocked.go).
	RoomBlocked(ctx context.Context, roomID string) (by string, blocked bool, err error)
}

// Accounts tells local users from remote ones and gives a local user's
// profile, which their membership events carry.
type Accounts interface {
	LocalpartOf(userID string) (string, bool)
	Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error)
	User(ctx context.Context, localpart string) (accounts.User, error)
}

// Options are what New needs.
type Options struct {
	ServerName string
	Rooms      *rooms.Engine
	Store      Store
	Accounts   Accounts
	// Remote carries out changes that need other servers; nil when
	// federation is off, and every change is then made here.
	Remote Remote
	// Invites are local users' invite permissions (nil: every invite is
	// allowed).
	Invites *InviteRules
	// Reputation keeps local users out of rooms the server's reputation
	// feeds list; nil keeps nobody out.
	Reputation JoinScreen
}

// Service carries out membership changes.
type Service struct {
	serverName string
	rooms      *rooms.Engine
	store      Store
	accounts   Accounts
	remote     Remote
	invites    *InviteRules
	reputation JoinScreen
}

// New makes the service.
func New(o Options) *Service {
	return &Service{serverName: o.ServerName, rooms: o.Rooms, store: o.Store, accounts: o.Accounts, remote: o.Remote, invites: o.Invites, reputation: o.Reputation}
}

// viaRemote reports whether a change of the room must go through another
// server: federation is on and no local user is joined, so this server
// has no current state to build the event on.
func (s *Service) viaRemote(ctx context.Context, roomID string) bool {
	if s.remote == nil {
		return false
	}
	in, err := s.rooms.ServerInRoom(ctx, roomID, s.serverName)
	return err != nil || !in
}

// MemberProfile is the displayname and avatar_url a local user's
// membership events carry; nil when the profile cannot be read.
func (s *Service) MemberProfile(ctx context.Context, localpart string) map[string]any {
	p, err := s.accounts.Profile(ctx, localpart)
	if err != nil {
		return nil
	}
	out := map[string]any{}
	for _, k := range []string{"displayname", "avatar_url"} {
		if v, ok := p[k]; ok {
			out[k] = v
		}
	}
	return out
}

// localProfile is MemberProfile for a user ID, nil for remote users.
func (s *Service) localProfile(ctx context.Context, userID string) map[string]any {
	if lp, local := s.accounts.LocalpartOf(userID); local {
		return s.MemberProfile(ctx, lp)
	}
	return nil
}

// Content is the body of a client's membership request: its reason and
// any other fields, which the member event's content carries as Synapse
// puts them there (a per-room displayname, for example). The fields
// only the server may set are left out (see fields).
type Content map[string]json.RawMessage

// Reason is a Content of just a reason ("" for none).
func Reason(reason string) Content {
	if reason == "" {
		return nil
	}
	raw, _ := json.Marshal(reason)
	return Content{"reason": raw}
}

// serverKeys are member event content keys a client may not set:
// membership is the endpoint's, and a join's authorising user and a
// third-party invite's signature are the server's to vouch for.
var serverKeys = []string{"membership", "join_authorised_via_users_server", "third_party_invite"}

// fields is the content the event starts from. A null reason,
// displayname or avatar_url is left out (the profile then fills the
// last two), and so is an empty reason, as the spec's "reason" is
// optional text.
func (c Content) fields() map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	for _, k := range serverKeys {
		delete(out, k)
	}
	for _, k := range []string{"reason", "displayname", "avatar_url"} {
		if v, ok := c[k]; ok && string(v) == "null" {
			delete(out, k)
		}
	}
	if string(c["reason"]) == `""` {
		delete(out, "reason")
	}
	return out
}

// withProfile adds the user's displayname and avatar_url where the client
// gave none: a join may carry a per-room profile, as Synapse allows by
// default (allow_per_room_profiles), and is given the global one
// otherwise.
func withProfile(content, profile map[string]any) map[string]any {
	for k, v := range profile {
		if _, set := content[k]; !set {
			content[k] = v
		}
	}
	return content
}

// Join joins a local user to a room, through one of the via servers when
// no one here is in it, and brings a forgotten room back into their sync.
// Joining a room the user is in with the same content changes nothing.
func (s *Service) Join(ctx context.Context, userID, roomID string, via []string, body Content) error {
	if err := s.refuseBlocked(ctx, roomID); err != nil {
		return err
	}
	remote := s.viaRemote(ctx, roomID)
	if err := s.refuseListedRoom(ctx, userID, roomID, remote, via); err != nil {
		return err
	}
	content := withProfile(body.fields(), s.localProfile(ctx, userID))
	if remote {
		// make_join builds the event on the remote server, so the body's
		// fields travel in the content.
		if err := s.remote.Join(ctx, userID, roomID, via, content); err != nil {
			return err
		}
	} else if _, err := s.rooms.SetMembership(ctx, rooms.MembershipRequest{
		Sender: userID, RoomID: roomID, Target: userID, Membership: spec.Join, Content: content,
	}); err != nil {
		if err := s.joinThroughAuthoriser(ctx, userID, roomID, via, content, err); err != nil {
			return err
		}
	}
	_ = s.store.UnforgetRoom(ctx, userID, roomID)
	return nil
}

// Knock asks to join a room, through one of the via servers when no one
// here is in it.
func (s *Service) Knock(ctx context.Context, userID, roomID string, via []string, reason string) error {
	if err := s.refuseBlocked(ctx, roomID); err != nil {
		return err
	}
	remote := s.viaRemote(ctx, roomID)
	if err := s.refuseListedRoom(ctx, userID, roomID, remote, via); err != nil {
		return err
	}
	if remote {
		return s.remote.Knock(ctx, userID, roomID, via, reason)
	}
	_, err := s.rooms.SetMembership(ctx, rooms.MembershipRequest{
		Sender: userID, RoomID: roomID, Target: userID, Membership: spec.Knock, Reason: reason,
		Content: s.localProfile(ctx, userID),
	})
	return err
}

// Leave makes a user leave a room, or reject an invite or withdraw a
// knock; remote is set when that went to another server (a room no one
// here is in).
func (s *Service) Leave(ctx context.Context, userID, roomID, reason string) (remote bool, err error) {
	if s.viaRemote(ctx, roomID) {
		// Rejecting an invite or withdrawing a knock of a room no one
		// here is in goes through the server that holds the room.
		if m, _ := s.rooms.MembershipOf(ctx, roomID, userID); m == spec.Invite || m == spec.Knock {
			err := s.remote.Leave(ctx, userID, roomID, reason)
			if err == nil {
				return true, nil
			}
			// No server of the room took the leave (unreachable, or no
			// longer in the room): the invite is rejected here alone, as
			// Synapse does, rather than stay in the user's /sync for good.
			if _, lerr := s.rooms.LeaveOutOfBand(ctx, roomID, userID, reason); lerr != nil {
				return true, errors.Join(err, lerr)
			}
			return false, nil
		}
	}
	_, err = s.rooms.SetMembership(ctx, rooms.MembershipRequest{
		Sender: userID, RoomID: roomID, Target: userID, Membership: spec.Leave, Reason: reason,
	})
	return false, err
}

// PartAll makes a user leave every room they are joined to, invited to
// or knocking on, as Synapse does when an account is deactivated: the
// account's memberships would otherwise linger, counting it as a member
// and keeping its invites open. An invite or knock of a room held on a
// server that cannot be reached is rejected here alone (see Leave); if
// even that fails it stays as it is (harmless for an account that can no
// longer log in); a local failure stops the deactivation, so that it can
// be retried.
func (s *Service) PartAll(ctx context.Context, userID string) error {
	ms, err := s.store.MembershipsOf(ctx, userID, spec.Join, spec.Invite, spec.Knock)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if remote, err := s.Leave(ctx, userID, m.RoomID, ""); err != nil && !remote {
			return err
		}
	}
	return nil
}

// Forget hides a room the user has left from their sync; it is refused
// while the user is still joined, invited or knocking, as the spec says,
// and for a room they were never in.
func (s *Service) Forget(ctx context.Context, userID, roomID string) error {
	m, err := s.rooms.MembershipOf(ctx, roomID, userID)
	if err != nil {
		return err
	}
	switch m {
	case spec.Join, spec.Invite, spec.Knock:
		return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "User must leave the room before forgetting it"}
	case "":
		return mxerr.NotFound("User has never been in this room")
	}
	return s.store.ForgetRoom(ctx, userID, roomID)
}

// JoinedRooms lists the rooms a user is joined to.
func (s *Service) JoinedRooms(ctx context.Context, userID string) ([]string, error) {
	ms, err := s.store.MembershipsOf(ctx, userID, spec.Join)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.RoomID
	}
	return ids, nil
}

// SplitInvites divides the invitees of a new room into those the room
// engine invites as it creates the room and those invited once it
// exists, with Invite: a user of another server, whose server must
// countersign the invite (without federation, everyone is invited at
// creation, and the engine refuses what it cannot do).
func (s *Service) SplitInvites(users []string) (atCreation, afterwards []string) {
	for _, u := range users {
		if _, local := s.accounts.LocalpartOf(u); local || s.remote == nil {
			atCreation = append(atCreation, u)
		} else {
			afterwards = append(afterwards, u)
		}
	}
	return atCreation, afterwards
}

// InviteRequest is an invite of one user by another.
type InviteRequest struct {
	Sender, RoomID, Target string
	// Body is the client's request body (reason and other fields).
	Body Content
	// IsDirect marks the invite as one to a direct chat.
	IsDirect bool
}

// Invite invites a user. A user already joined cannot be invited, a local
// invitee must exist, and a remote invitee's server must countersign the
// invite (it is sent the room's stripped state with it).
func (s *Service) Invite(ctx context.Context, r InviteRequest) error {
	if err := s.refuseBlocked(ctx, r.RoomID); err != nil {
		return err
	}
	if m, _ := s.rooms.MembershipOf(ctx, r.RoomID, r.Target); m == spec.Join {
		return mxerr.Forbidden("%s is already in the room", r.Target)
	}
	content := r.Body.fields()
	lp, local := s.accounts.LocalpartOf(r.Target)
	if local {
		if _, err := s.accounts.User(ctx, lp); err != nil {
			return mxerr.NotFound("Unknown user %s", r.Target)
		}
		if err := s.invites.Check(ctx, r.Target, r.Sender); err != nil {
			return err
		}
		// The invitee's own profile, not one the inviter names.
		for k, v := range s.MemberProfile(ctx, lp) {
			content[k] = v
		}
	}
	if r.IsDirect {
		content["is_direct"] = true
	}
	req := rooms.MembershipRequest{Sender: r.Sender, RoomID: r.RoomID, Target: r.Target, Membership: spec.Invite,
		Content: content}
	if !local && s.remote != nil {
		// The stripped state is taken before the room's lock, which the
		// countersigner runs under.
		state, err := s.rooms.CurrentState(ctx, r.RoomID)
		if err != nil {
			return err
		}
		stripped, err := FederationStrippedState(ctx, s.rooms, state, r.Sender)
		if err != nil {
			return err
		}
		if req.Countersign, err = s.remote.InviteCountersigner(ctx, r.RoomID, r.Target, stripped); err != nil {
			return err
		}
	}
	_, err := s.rooms.SetMembership(ctx, req)
	return err
}

// Kick makes another user leave; it only applies to users who are in the
// room in some way (joined, invited, knocking).
func (s *Service) Kick(ctx context.Context, sender, roomID, target string, body Content) error {
	m, err := s.rooms.MembershipOf(ctx, roomID, target)
	if err != nil {
		return err
	}
	if m == "" || m == spec.Leave {
		return mxerr.Forbidden("The target user is not in the room")
	}
	return s.set(ctx, sender, roomID, target, spec.Leave, body)
}

// Ban bans a user, whether or not they were ever in the room.
func (s *Service) Ban(ctx context.Context, sender, roomID, target string, body Content) error {
	return s.set(ctx, sender, roomID, target, spec.Ban, body)
}

// Unban lifts a ban; a user who is not banned is refused.
func (s *Service) Unban(ctx context.Context, sender, roomID, target, reason string) error {
	if m, err := s.rooms.MembershipOf(ctx, roomID, target); err != nil {
		return err
	} else if m != spec.Ban {
		return mxerr.Forbidden("%s is not banned", target)
	}
	return s.set(ctx, sender, roomID, target, spec.Leave, Reason(reason))
}

func (s *Service) set(ctx context.Context, sender, roomID, target, membership string, body Content) error {
	_, err := s.rooms.SetMembership(ctx, rooms.MembershipRequest{
		Sender: sender, RoomID: roomID, Target: target, Membership: membership, Content: body.fields(),
	})
	return err
}
