package appservice

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
)

// The encryption side of the ephemeral transactions: MSC2409's to-device
// messages and MSC3202's device lists, one-time key counts and unused
// fallback key types, what a bridge's Olm machine (mautrix-go's crypto
// in "appservice mode") reads instead of running /sync for its devices.

// toDeviceEvent is a to-device message as MSC2409 delivers it: with the
// recipient, since one transaction carries every device's messages.
type toDeviceEvent struct {
	Type       string          `json:"type"`
	Sender     string          `json:"sender"`
	Content    json.RawMessage `json:"content"`
	ToUserID   string          `json:"to_user_id"`
	ToDeviceID string          `json:"to_device_id"`
}

// localpart is the localpart of a user of this server, "" for others.
func (g *gather) localpart(userID string) string {
	lp, ok := strings.CutSuffix(strings.TrimPrefix(userID, "@"), ":"+g.e.o.Registry.ServerName)
	if !ok || !strings.HasPrefix(userID, "@") {
		return ""
	}
	return lp
}

// toDevice adds the messages waiting for the devices of the service's
// users among users (or, when scan is set, of all its users with
// messages waiting) and returns the users it found messages for. The
// messages are deleted once the service has the transaction (the acks).
func (g *gather) toDevice(ctx context.Context, users map[string]bool, scan bool) (map[string]bool, error) {
	type device struct{ user, id string }
	var devices []device
	seen := map[device]bool{}
	addDevice := func(d device) {
		if !seen[d] {
			seen[d] = true
			devices = append(devices, d)
		}
	}
	if scan {
		all, err := g.e.o.Store.ToDeviceRecipients(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range all {
			if g.reg.OwnsUser(r.UserID, g.e.o.Registry.ServerName) {
				addDevice(device{r.UserID, r.DeviceID})
			}
		}
	}
	if err := g.eachOwnDevice(ctx, users, func(u, id string) error {
		addDevice(device{u, id})
		return nil
	}); err != nil {
		return nil, err
	}
	found := map[string]bool{}
	for _, d := range devices {
		msgs, next, err := g.e.o.Keys.ToDeviceMessages(ctx, d.user, d.id, 0, ephemeralBatch)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			continue
		}
		if len(msgs) == ephemeralBatch {
			// The rest in the next transaction, read again from the
			// inbox once these are deleted.
			g.fullInboxes = append(g.fullInboxes, d.user)
		}
		found[d.user] = true
		for _, m := range msgs {
			b, err := json.Marshal(toDeviceEvent{Type: m.Type, Sender: m.Sender, Content: m.Content, ToUserID: d.user, ToDeviceID: d.id})
			if err != nil {
				return nil, err
			}
			g.txn.ToDevice = append(g.txn.ToDevice, b)
		}
		g.acks = append(g.acks, acked{userID: d.user, deviceID: d.id, upTo: next})
	}
	return found, nil
}

// deviceLists adds the users whose device lists changed in (pos, upto]
// and whom the service cares about: its own users and those sharing a
// room with them (Synapse's _is_appservice_interested_in_device_lists_of_user
// asks the same of their rooms). left stays empty, as in Synapse.
func (g *gather) deviceLists(ctx context.Context, pos, upto int64) error {
	if upto <= pos {
		return nil
	}
	changed, err := g.e.o.Store.DeviceListChangedUsers(ctx, pos, upto)
	if err != nil {
		return err
	}
	var out []string
	for _, u := range changed {
		ok, err := g.interest.user(ctx, u)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	g.txn.DeviceLists = &deviceLists{Changed: out, Left: []string{}}
	return nil
}

// keyCounts adds the one-time key counts and unused fallback key types
// of every device of the service's users among users: those whose keys
// were claimed or uploaded, or who were sent to-device messages (as
// Synapse: the users the transaction is about), so that the bridge's
// machine uploads more keys before they run out.
func (g *gather) keyCounts(ctx context.Context, users map[string]bool) error {
	return g.eachOwnDevice(ctx, users, func(u, deviceID string) error {
		counts, err := g.e.o.Keys.OneTimeKeyCounts(ctx, u, deviceID)
		if err != nil {
			return err
		}
		fallback, err := g.e.o.Keys.UnusedFallbackKeyTypes(ctx, u, deviceID)
		if err != nil {
			return err
		}
		if g.txn.OTKCounts == nil {
			g.txn.OTKCounts, g.txn.Fallback = otkCounts{}, fallbackKeys{}
		}
		if g.txn.OTKCounts[u] == nil {
			g.txn.OTKCounts[u], g.txn.Fallback[u] = map[string]map[string]int{}, map[string][]string{}
		}
		g.txn.OTKCounts[u][deviceID] = counts
		g.txn.Fallback[u][deviceID] = fallback
		return nil
	})
}

// eachOwnDevice calls fn for every device of the service's own users
// among users (users of its namespaces on this server).
func (g *gather) eachOwnDevice(ctx context.Context, users map[string]bool, fn func(user, deviceID string) error) error {
	for u := range users {
		lp := g.localpart(u)
		if lp == "" || !g.reg.OwnsUser(u, g.e.o.Registry.ServerName) {
			continue
		}
		list, err := g.e.o.Store.ListDevices(ctx, lp)
		if err != nil {
			return err
		}
		for _, d := range list {
			if err := fn(u, d.DeviceID); err != nil {
				return err
			}
		}
	}
	return nil
}
