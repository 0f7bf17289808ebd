package membership

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/myelin-chat/myelin/internal/glob"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Invite permission: whom a user accepts invites from. This file is the
// one home of the rule; the client API's invites (Service.Invite,
// createRoom, PUT state m.room.member), the federation invite endpoints
// and /sync all ask it.
//
// Two account data types configure it:
//   - m.invite_permission_config (spec v1.18, MSC4380; also its unstable
//     name org.matrix.msc4380.invite_permission_config): default_action
//     "block" refuses every invite;
//   - org.matrix.msc4155.invite_permission_config (MSC4155, unstable):
//     allowed_, ignored_ and blocked_ users and servers, as globs, taken
//     in that order: the first list that matches decides, and no match
//     allows.
//
// The spec's blocking comes first: a user who blocks all invites
// receives none, whatever MSC4155's lists allow. "Ignore" accepts the
// invite without telling the inviter anything and hides it from the
// invitee's /sync (MSC4155, after MSC4283); "block" refuses it with 403
// M_INVITE_BLOCKED, and hides from /sync any invite already there. The
// invite itself stays in the room's state (spec: other endpoints such
// as /state are unaffected), and showing the user an invite again once
// they lift the block is what the spec allows.

// Account data types of the invite permission config.
const (
	TypeInvitePermission         = "m.invite_permission_config"
	TypeInvitePermissionMSC4380  = "org.matrix.msc4380.invite_permission_config"
	TypeInvitePermissionMSC4155  = "org.matrix.msc4155.invite_permission_config"
	maxInvitePermissionGlobBytes = 1024
)

// InviteDecision is what a user's invite permission says of an inviter.
type InviteDecision int

const (
	// InviteAllowed: the invite is delivered as usual.
	InviteAllowed InviteDecision = iota
	// InviteIgnored: accepted, but never shown to the invitee.
	InviteIgnored
	// InviteBlocked: refused with M_INVITE_BLOCKED.
	InviteBlocked
)

// InvitePermission is a user's parsed invite permission config. The zero
// value allows every invite.
type InvitePermission struct {
	blockAll bool
	// Globs of MSC4155, users then servers, per decision.
	allowedUsers, ignoredUsers, blockedUsers       []string
	allowedServers, ignoredServers, blockedServers []string
}

// ParseInvitePermission reads the stored contents of the config's
// account data types (nil when unset). Content a client stored badly
// restricts nothing: the spec has a missing, invalid or unknown
// default_action receive invites as normal, and MSC4155 a missing or
// null list count as empty; entries that are not strings are skipped.
func ParseInvitePermission(stable, msc4380, msc4155 json.RawMessage) InvitePermission {
	var p InvitePermission
	for _, raw := range []json.RawMessage{stable, msc4380} {
		var c struct {
			DefaultAction any `json:"default_action"`
		}
		if json.Unmarshal(raw, &c) == nil && c.DefaultAction == "block" {
			p.blockAll = true
		}
	}
	var lists map[string]json.RawMessage
	if json.Unmarshal(msc4155, &lists) != nil {
		return p
	}
	globs := func(key string, server bool) []string {
		var entries []any
		if json.Unmarshal(lists[key], &entries) != nil {
			return nil
		}
		var out []string
		for _, e := range entries {
			if s, ok := e.(string); ok && len(s) <= maxInvitePermissionGlobBytes {
				if server {
					s = strings.ToLower(s)
				}
				out = append(out, s)
			}
		}
		return out
	}
	p.allowedUsers, p.ignoredUsers, p.blockedUsers = globs("allowed_users", false), globs("ignored_users", false), globs("blocked_users", false)
	p.allowedServers, p.ignoredServers, p.blockedServers = globs("allowed_servers", true), globs("ignored_servers", true), globs("blocked_servers", true)
	return p
}

// Decide says what the config makes of an invite sent by inviter (a
// user ID).
func (p InvitePermission) Decide(inviter string) InviteDecision {
	if p.blockAll {
		return InviteBlocked
	}
	server := ""
	if _, s, ok := strings.Cut(inviter, ":"); ok {
		server = strings.ToLower(s)
	}
	matches := func(users, servers []string) bool {
		return anyGlob(users, inviter) || server != "" && anyGlob(servers, server)
	}
	switch {
	case matches(p.allowedUsers, p.allowedServers):
		return InviteAllowed
	case matches(p.ignoredUsers, p.ignoredServers):
		return InviteIgnored
	case matches(p.blockedUsers, p.blockedServers):
		return InviteBlocked
	}
	return InviteAllowed
}

func anyGlob(globs []string, s string) bool {
	for _, g := range globs {
		if glob.Match(g, s) {
			return true
		}
	}
	return false
}

// AccountDataReader reads a user's stored global account data (nil when
// unset): accountdata.Service.
type AccountDataReader interface {
	Stored(ctx context.Context, userID, roomID, typ string) (json.RawMessage, error)
}

// InviteRules looks up users' invite permission.
type InviteRules struct {
	accountData AccountDataReader
}

// NewInviteRules makes the rules over the account data service.
func NewInviteRules(ad AccountDataReader) *InviteRules {
	return &InviteRules{accountData: ad}
}

// Permission loads a user's config.
func (r *InviteRules) Permission(ctx context.Context, userID string) (InvitePermission, error) {
	var raw [3]json.RawMessage
	for i, typ := range []string{TypeInvitePermission, TypeInvitePermissionMSC4380, TypeInvitePermissionMSC4155} {
		var err error
		if raw[i], err = r.accountData.Stored(ctx, userID, "", typ); err != nil {
			return InvitePermission{}, err
		}
	}
	return ParseInvitePermission(raw[0], raw[1], raw[2]), nil
}

// Decide says what invitee's config makes of an invite by inviter.
func (r *InviteRules) Decide(ctx context.Context, invitee, inviter string) (InviteDecision, error) {
	if r == nil {
		return InviteAllowed, nil
	}
	p, err := r.Permission(ctx, invitee)
	if err != nil {
		return InviteAllowed, err
	}
	return p.Decide(inviter), nil
}

// Hides reports whether invitee's config keeps an invite by inviter
// from them (ignored or blocked): /sync does not show it and push does
// not notify it.
func (r *InviteRules) Hides(ctx context.Context, invitee, inviter string) (bool, error) {
	d, err := r.Decide(ctx, invitee, inviter)
	return d != InviteAllowed, err
}

// Check refuses an invite of a local user that their config blocks with
// 403 M_INVITE_BLOCKED; an ignored invite passes (it is hidden later).
func (r *InviteRules) Check(ctx context.Context, invitee, inviter string) error {
	if r == nil {
		return nil
	}
	d, err := r.Decide(ctx, invitee, inviter)
	if err != nil {
		return err
	}
	if d == InviteBlocked {
		return mxerr.InviteBlocked("%s does not accept invites", invitee)
	}
	return nil
}

// CheckInvite refuses an invite by inviter that the invitee, a local
// user, blocks (403 M_INVITE_BLOCKED); invites of remote users are their
// server's to judge. The client API's invites that do not go through
// Invite (createRoom's invite list, PUT state m.room.member) call it.
func (s *Service) CheckInvite(ctx context.Context, inviter, invitee string) error {
	if _, local := s.accounts.LocalpartOf(invitee); !local {
		return nil
	}
	return s.invites.Check(ctx, invitee, inviter)
}
