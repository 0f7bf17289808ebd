package rooms

import "context"

// UserScreen answers which feeds of a user's own reputation filter hide
// the events of a sender from that user alone (issue 16 item 7;
// reputation.UserFilters). nil: none.
type UserScreen interface {
	HidesSender(ctx context.Context, userID, sender string) []string
	// HidesInvite is HidesSender for an invite to roomID, whose room
	// may be listed too.
	HidesInvite(ctx context.Context, userID, sender, roomID string) []string
	// Hid counts, for the user's extent report, an event (or invite)
	// the feeds hid from them as it arrived.
	Hid(userID string, feeds []string, invite bool, sender, roomID string)
}

type showFilteredKey struct{}

// WithShowFiltered marks a request whose client asked to see what the
// user's own reputation filter hides (org.myelin.show_filtered=true):
// those events are then shown, marked (FilteredFor), instead of left out.
func WithShowFiltered(ctx context.Context) context.Context {
	return context.WithValue(ctx, showFilteredKey{}, true)
}

// ShowFiltered reports whether the request asked to see what the user's
// own filter hides.
func ShowFiltered(ctx context.Context) bool {
	v, _ := ctx.Value(showFilteredKey{}).(bool)
	return v
}

// FilteredFor returns the feeds of userID's own reputation filter that
// hide ev from them (nil: not hidden): the one rule of CanSee, push and
// /notifications. State events are never hidden, as for ignored users.
func (e *Engine) FilteredFor(ctx context.Context, userID string, ev *Event) []string {
	return e.filteredFor(ctx, userID, ev, nil)
}

func (e *Engine) filteredFor(ctx context.Context, userID string, ev *Event, memo map[string][]string) []string {
	if e.opts.UserReputation == nil || userID == "" || ev.IsState() {
		return nil
	}
	sender := ev.Sender()
	if feeds, ok := memo[sender]; ok {
		return feeds
	}
	feeds := e.opts.UserReputation.HidesSender(ctx, userID, sender)
	if memo != nil {
		memo[sender] = feeds
	}
	return feeds
}

// InviteFilteredFor returns the feeds of userID's own reputation filter
// that hide an invite (an m.room.member invite event) from them.
func (e *Engine) InviteFilteredFor(ctx context.Context, userID string, invite *Event) []string {
	if e.opts.UserReputation == nil || userID == "" {
		return nil
	}
	return e.opts.UserReputation.HidesInvite(ctx, userID, invite.Sender(), invite.RoomID().String())
}

// ArrivedFor decides whether an event that just arrived reaches userID
// past their own reputation filter, and counts it for their extent
// report when it does not: the push path asks once per event and
// recipient, so each hidden event is counted once.
func (e *Engine) ArrivedFor(ctx context.Context, userID string, ev *Event) (hidden bool) {
	invite := false
	var feeds []string
	// The type first: Membership parses the content, and this runs for
	// every recipient of every message.
	if ev.Type() == "m.room.member" && ev.StateKey() != nil && *ev.StateKey() == userID && isInvite(ev) {
		invite, feeds = true, e.InviteFilteredFor(ctx, userID, ev)
	} else {
		feeds = e.FilteredFor(ctx, userID, ev)
	}
	if feeds == nil {
		return false
	}
	e.opts.UserReputation.Hid(userID, feeds, invite, ev.Sender(), ev.RoomID().String())
	return true
}

func isInvite(ev *Event) bool {
	m, err := ev.Membership()
	return err == nil && m == "invite"
}
