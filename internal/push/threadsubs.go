package push

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/pushrules"
)

// ThreadSubscriptions answers whether a user follows a thread (MSC4306,
// internal/threadsubs).
type ThreadSubscriptions interface {
	Subscribed(ctx context.Context, userID, roomID, rootID string) (bool, error)
}

// kindThreadSubscription is MSC4306's condition: it matches an event in
// a thread when the user's subscription to the thread is "subscribed";
// never an event outside threads.
const kindThreadSubscription pushrules.PushCondKind = "io.element.msc4306.thread_subscription"

// threadSubscriptionRules are MSC4306's postcontent defaults, with the
// rule IDs the proposal gives them.
func threadSubscriptionRules(rule func(id, conditions, actions string) *Rule, sound string) []*Rule {
	cond := func(subscribed string) string {
		return `[{"kind":"` + string(kindThreadSubscription) + `","subscribed":` + subscribed + `}]`
	}
	return []*Rule{
		rule(".m.rule.unsubscribed_thread", cond("false"), `[]`),
		rule(".m.rule.subscribed_thread", cond("true"), `["notify",`+sound+`]`),
	}
}

// keepSubscribed carries a rule's thread_subscription conditions'
// "subscribed", which mautrix's condition type has no field for, into
// the condition's Value.
func keepSubscribed(raw []byte, pr *pushrules.PushRule) {
	var r struct {
		Conditions []struct {
			Kind       string `json:"kind"`
			Subscribed *bool  `json:"subscribed"`
		} `json:"conditions"`
	}
	if json.Unmarshal(raw, &r) != nil || len(r.Conditions) != len(pr.Conditions) {
		return
	}
	for i, c := range r.Conditions {
		if c.Kind == string(kindThreadSubscription) {
			v := false
			if c.Subscribed != nil {
				v = *c.Subscribed
			}
			pr.Conditions[i].Value = v
		}
	}
}

// threadFollower is the room as one user's evaluation sees it, which
// knows the user's thread subscriptions.
type threadFollower interface {
	followsThread(rootID string) (follows, enabled bool)
}

func matchThreadSubscription(c *pushrules.PushCondition, room pushrules.Room, evt *event.Event) bool {
	root := threadOf(evt)
	if root == "" {
		return false
	}
	want, _ := c.Value.(bool)
	f, ok := room.(threadFollower)
	if !ok {
		return false
	}
	follows, enabled := f.followsThread(root)
	return enabled && follows == want
}

// followsThread asks the thread subscriptions service; an error reads
// as "not subscribed" (the event then notifies as other events do not).
// Without the service (rooms.thread_subscriptions off, as Synapse ships
// MSC4306 behind an experimental flag) enabled is false and neither
// thread rule matches: a thread reply notifies as any message, since
// clients that never subscribe (Element Web) would otherwise lose every
// thread notification.
func (u *userRoom) followsThread(rootID string) (follows, enabled bool) {
	ts := u.s.opts.ThreadSubscriptions
	if ts == nil {
		return false, false
	}
	ok, err := ts.Subscribed(u.ctx, u.user, u.ev.RoomID().String(), rootID)
	return err == nil && ok, true
}
