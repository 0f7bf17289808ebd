// Package reputation owns reputation feeds (issue 16): policy-list rooms the server
// subscribes to, the rules they publish (m.policy.rule.* and the legacy Mjolnir/Draupnir
// types, literal, glob and MSC4205 hashed entities), the blending of several weighted feeds
// into one verdict per entity and enforcement point, and the decision log that records
// what was enforced. Enforcement points elsewhere in the server depend only on the
// Enforcer interface in this file.
package reputation

import (
	"context"
	"strings"
)

// Kind is what a policy rule names.
type Kind string

const (
	KindUser   Kind = "user"
	KindRoom   Kind = "room"
	KindServer Kind = "server"
)

// Action is one enforcement point; each has its own threshold per kind (default 1.0).
type Action string

const (
	ActionEvents        Action = "events"         // events from listed users/servers received over federation are hidden from local users (m.takedown: dropped before storage)
	ActionInvites       Action = "invites"        // invites from listed users/servers refused
	ActionJoins         Action = "joins"          // local users cannot join listed rooms
	ActionDirectory     Action = "directory"      // listed rooms hidden from public directory, hierarchy, summaries
	ActionUserDirectory Action = "user_directory" // listed users hidden from the user directory
	ActionMedia         Action = "media"          // media from listed servers/rooms not fetched; stored copies not served
	ActionRegistration  Action = "registration"   // registration of a localpart matching a listed user pattern refused
)

// Verdict is the blended answer for one entity and action.
type Verdict struct {
	Listed   bool     // Score reached the action's threshold for this kind and the action is enabled
	Score    float64  // sum of weights of the feeds listing the entity (allow-list feeds count negative)
	Takedown bool     // a listing feed recommends m.takedown (or its unstable names)
	Reason   string   // reason of the highest-weight listing rule
	Feeds    []string // room IDs of the feeds whose rules matched
}

// Enforcer answers enforcement points. Check is O(1) for literal and hashed rules (plus compiled globs),
// safe for concurrent use, and never blocks on I/O.
type Enforcer interface {
	// Check blends the feeds for entity (a user ID, room ID or server name, per kind) and action.
	// When the verdict is Listed and detail != "", it records the decision (action, kind, entity,
	// feeds, score, detail such as an event ID — never message content) in the decision log.
	Check(ctx context.Context, action Action, kind Kind, entity string, detail string) Verdict
}

// Nop enforces nothing: the server's Enforcer when no feed is subscribed.
type Nop struct{}

func (Nop) Check(context.Context, Action, Kind, string, string) Verdict { return Verdict{} }

// CheckUser checks the user rule for userID and the rule for the user's
// server, and returns the stronger verdict: a listed one over an
// unlisted one, then a takedown, then the higher score. Only the
// stronger verdict is recorded (with detail) in the decision log.
// A nil e enforces nothing.
func CheckUser(ctx context.Context, e Enforcer, action Action, userID string, detail string) Verdict {
	if e == nil {
		return Verdict{}
	}
	kind, entity := KindUser, userID
	v := e.Check(ctx, action, KindUser, userID, "")
	if i := strings.IndexByte(userID, ':'); i >= 0 && i+1 < len(userID) {
		if sv := e.Check(ctx, action, KindServer, userID[i+1:], ""); stronger(sv, v) {
			kind, entity, v = KindServer, userID[i+1:], sv
		}
	}
	if v.Listed && detail != "" {
		// Asked again with the detail, so that the decision is logged once.
		v = e.Check(ctx, action, kind, entity, detail)
	}
	return v
}

// stronger reports whether a is a stronger verdict than b.
func stronger(a, b Verdict) bool {
	if a.Listed != b.Listed {
		return a.Listed
	}
	if a.Takedown != b.Takedown {
		return a.Takedown
	}
	return a.Score > b.Score
}
