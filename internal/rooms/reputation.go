package rooms

import "context"

// SenderScreen answers whether the server's reputation feeds hide the
// events of a sender from local users (issue 16 item 5: the events of
// listed users and servers received over federation; reputation.Points).
type SenderScreen interface {
	HidesEvents(ctx context.Context, sender string) bool
}

// HiddenByReputation reports whether ev is hidden from every local user
// because the server's reputation feeds list its sender or the sender's
// server: the one rule read paths (through Visibility.CanSee),
// /notifications and push apply. It is decided when the event is read,
// not when it arrives, so that removing the rule shows the history again
// (issue 16 item 6). State events stay visible, as for ignored users:
// the room's state depends on them, and clients need them to make sense
// of it.
func (e *Engine) HiddenByReputation(ctx context.Context, ev *Event) bool {
	return e.hiddenByReputation(ctx, ev, nil)
}

// hiddenByReputation is HiddenByReputation remembering each sender's
// answer in memo (when not nil): a Visibility serves one request, whose
// events mostly come from a few senders, and a check with many feeds
// costs a microsecond (docs/benchmarks.md).
func (e *Engine) hiddenByReputation(ctx context.Context, ev *Event, memo map[string]bool) bool {
	if e.opts.Reputation == nil || ev.IsState() {
		return false
	}
	sender := ev.Sender()
	if hidden, ok := memo[sender]; ok {
		return hidden
	}
	hidden := e.opts.Reputation.HidesEvents(ctx, sender)
	if memo != nil {
		memo[sender] = hidden
	}
	return hidden
}
