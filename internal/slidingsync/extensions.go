package slidingsync

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// extensions fills the extensions the request enables.
func (p *pass) extensions(ctx context.Context) error {
	ext := p.req.Extensions
	if ext.ToDevice != nil && ext.ToDevice.on() {
		if err := p.toDevice(ctx, ext.ToDevice); err != nil {
			return err
		}
	}
	if ext.E2EE.on() {
		if err := p.e2ee(ctx); err != nil {
			return err
		}
	}
	if ext.AccountData != nil && ext.AccountData.on() {
		if err := p.accountData(ctx, ext.AccountData); err != nil {
			return err
		}
	}
	if ext.Receipts != nil && ext.Receipts.on() {
		if err := p.receipts(ctx, ext.Receipts); err != nil {
			return err
		}
	}
	if ext.Typing != nil && ext.Typing.on() {
		p.typing(ext.Typing)
	}
	if prev := p.prev; prev != nil {
		p.next.threadSubs = prev.threadSubs
	}
	for name, ts := range map[string]*ThreadSubsRequest{"io.element.msc4308.thread_subscriptions": ext.ThreadSubscriptions,
		"thread_subscriptions": ext.StableThreadSubscriptions} {
		if ts != nil && ts.on() {
			if err := p.threadSubscriptions(ctx, name, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

// threadSubscriptions is MSC4308's extension: the user's thread
// subscription changes since the connection's position (all of them on
// a new connection), each thread with its latest state and the change's
// position as bump_stamp. Served only when thread subscriptions are on.
//
// Where a connection has more changes than limit, Synapse answers the
// latest ones with a prev_batch for the companion endpoint
// (/thread_subscriptions) to fetch the gap; Myelin has no companion
// endpoint and answers the oldest ones instead, the rest in the next
// answers (at once, without waiting): the client ends with the same
// state either way.
func (p *pass) threadSubscriptions(ctx context.Context, name string, r *ThreadSubsRequest) error {
	ts := p.s.threadSubs
	if ts == nil {
		return nil
	}
	// Positions past the latest change committed when reading starts
	// may still be taken by another change (see ChangesSince).
	ceiling, err := ts.MaxPos(ctx)
	if err != nil {
		return err
	}
	limit := r.Limit
	if limit == 0 {
		limit = defaultThreadSubsN
	}
	from := p.next.threadSubs
	changes, _, err := ts.ChangesSince(ctx, p.req.UserID, from, limit)
	if err != nil {
		return err
	}
	subscribed := map[string]map[string]any{}
	unsubscribed := map[string]map[string]any{}
	next := from
	for _, c := range changes {
		if c.Pos > ceiling {
			break
		}
		next = c.Pos
		if c.Subscribed {
			if subscribed[c.RoomID] == nil {
				subscribed[c.RoomID] = map[string]any{}
			}
			subscribed[c.RoomID][c.ThreadRootID] = map[string]any{"automatic": c.Automatic, "bump_stamp": c.Pos}
		} else {
			if unsubscribed[c.RoomID] == nil {
				unsubscribed[c.RoomID] = map[string]any{}
			}
			unsubscribed[c.RoomID][c.ThreadRootID] = map[string]any{"bump_stamp": c.Pos}
		}
	}
	p.next.threadSubs = next
	if next == from {
		return nil // as Synapse: no section without changes
	}
	p.resp.changed = true
	p.resp.Extensions[name] = map[string]any{"subscribed": subscribed, "unsubscribed": unsubscribed}
	return nil
}

// scopedRooms are the joined rooms an extension covers, in the order
// they were wanted.
func (p *pass) scopedRooms(r *Scoped) []string {
	var out []string
	for _, id := range p.order {
		if p.wanted[id].e.Membership == spec.Join && p.inScope(id, r) {
			out = append(out, id)
		}
	}
	return out
}

// sinceFor is where a room's ephemeral news start: everything for a
// room sent whole in this answer, else the connection's position.
func (p *pass) sinceFor(roomID string) int64 {
	if r := p.resp.Rooms[roomID]; r != nil && r.Initial {
		return 0
	}
	return p.after
}

// receipts is the receipts extension: receipts in the rooms in scope
// since the connection's position (all of a room sent whole).
func (p *pass) receipts(ctx context.Context, r *Scoped) error {
	rs := p.s.sync.Streams().Receipts
	if rs == nil {
		return nil
	}
	out := map[string]any{}
	for _, id := range p.scopedRooms(r) {
		content, err := rs.ForSync(ctx, p.req.UserID, id, p.sinceFor(id), p.upto)
		if err != nil {
			return err
		}
		if content != nil {
			out[id] = map[string]any{"type": "m.receipt", "content": json.RawMessage(content)}
		}
	}
	if len(out) > 0 && p.prev != nil {
		p.resp.changed = true
	}
	p.resp.Extensions["receipts"] = map[string]any{"rooms": out}
	return nil
}

// typing is the typing extension: the typing list of each room in scope
// where it changed since the connection's position (a non-empty one for
// a room sent whole).
func (p *pass) typing(r *Scoped) {
	ts := p.s.sync.Streams().Typing
	if ts == nil {
		return
	}
	out := map[string]any{}
	for _, id := range p.scopedRooms(r) {
		users, pos := ts.Typing(id)
		since := p.sinceFor(id)
		if (since == 0 && len(users) > 0) || (since != 0 && pos > since && pos <= p.upto) {
			out[id] = map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": nonNil(users)}}
		}
	}
	if len(out) > 0 && p.prev != nil {
		p.resp.changed = true
	}
	p.resp.Extensions["typing"] = map[string]any{"rooms": out}
}

// toDevice is the to_device extension: messages after its own since
// token, those up to it deleted, as /sync does with its token.
func (p *pass) toDevice(ctx context.Context, r *ToDeviceRequest) error {
	k := p.s.sync.Streams().Keys
	if k == nil || p.req.DeviceID == "" {
		return nil
	}
	since := int64(0)
	if r.Since != "" {
		var err error
		if since, err = strconv.ParseInt(r.Since, 10, 64); err != nil || since < 0 {
			return mxerr.InvalidParam("Invalid to_device since %q", r.Since)
		}
		if err := k.Ack(ctx, p.req.UserID, p.req.DeviceID, since); err != nil {
			return err
		}
	}
	limit := r.Limit
	if limit == 0 {
		limit = defaultToDeviceN
	}
	msgs, next, err := k.ToDeviceMessages(ctx, p.req.UserID, p.req.DeviceID, since, limit)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []keys.Message{}
	}
	if len(msgs) > 0 {
		p.resp.changed = true
	}
	p.resp.Extensions["to_device"] = map[string]any{"next_batch": strconv.FormatInt(max(next, since), 10), "events": msgs}
	return nil
}

// e2ee is the e2ee extension: device lists changed since the last
// answer (none on a new connection, as Synapse), key counts and unused
// fallback key types.
func (p *pass) e2ee(ctx context.Context) error {
	k := p.s.sync.Streams().Keys
	if k == nil || p.req.DeviceID == "" {
		return nil
	}
	out := map[string]any{}
	if p.prev != nil {
		changed, left, err := k.DeviceListChanges(ctx, p.req.UserID, p.after, p.upto)
		if err != nil {
			return err
		}
		if len(changed)+len(left) > 0 {
			p.resp.changed = true
		}
		out["device_lists"] = map[string][]string{"changed": nonNil(changed), "left": nonNil(left)}
	}
	counts, err := k.OneTimeKeyCounts(ctx, p.req.UserID, p.req.DeviceID)
	if err != nil {
		return err
	}
	out["device_one_time_keys_count"] = counts
	unused, err := k.UnusedFallbackKeyTypes(ctx, p.req.UserID, p.req.DeviceID)
	if err != nil {
		return err
	}
	out["device_unused_fallback_key_types"] = nonNil(unused)
	p.resp.Extensions["e2ee"] = out
	return nil
}

// accountData is the account_data extension: global account data and
// that of the rooms in scope, all of it on a new connection, then what
// changed, and all of a room's when the room is sent whole.
func (p *pass) accountData(ctx context.Context, r *Scoped) error {
	ad := p.s.sync.Streams().AccountData
	if ad == nil {
		return nil
	}
	global, byRoom, err := ad.Changes(ctx, p.req.UserID, p.after, p.upto)
	if err != nil {
		return err
	}
	rooms := map[string][]accountdata.Event{}
	for id, evs := range byRoom {
		if p.inScope(id, r) {
			rooms[id] = evs
		}
	}
	p.next.dataRooms = p.dataScope(r)
	if p.prev != nil {
		// A room the connection gets whole in this answer (a room that
		// entered a window, or was subscribed to) gets all of its
		// account data, as Synapse sends a room it has never sent on the
		// connection: its m.fully_read and tags predate the position. So
		// does a room back in scope after it was out of it (out of every
		// window): the changes made meanwhile were not sent.
		var whole []string
		for _, id := range p.order {
			if !p.next.dataRooms[id] {
				continue
			}
			if rm := p.resp.Rooms[id]; rm != nil && rm.Initial || !p.prev.dataRooms[id] {
				whole = append(whole, id)
			}
		}
		all, err := ad.RoomData(ctx, p.req.UserID, whole, p.upto)
		if err != nil {
			return err
		}
		for id, evs := range all {
			rooms[id] = evs
		}
	}
	if len(global)+len(rooms) > 0 && p.prev != nil {
		p.resp.changed = true
	}
	if global == nil {
		global = []accountdata.Event{}
	}
	p.resp.Extensions["account_data"] = map[string]any{"global": global, "rooms": rooms}
	return nil
}

// dataScope is the set of the answer's rooms in the account_data
// extension's scope; the previous answer's set when it is the same (a
// steady window): snapshots never change, so they may share it.
func (p *pass) dataScope(r *Scoped) map[string]bool {
	var in []string
	same := p.prev != nil && p.prev.dataRooms != nil
	for _, id := range p.order {
		if p.inScope(id, r) {
			in = append(in, id)
			same = same && p.prev.dataRooms[id]
		}
	}
	if same && len(in) == len(p.prev.dataRooms) {
		return p.prev.dataRooms
	}
	set := make(map[string]bool, len(in))
	for _, id := range in {
		set[id] = true
	}
	return set
}

// inScope reports whether a room of the answer is in an extension's
// scope, as Synapse reads MSC4186's lists and rooms: lists names lists
// whose windows hold the room, rooms names room subscriptions ("*" in
// either: all of them); each defaults to ["*"] when absent, so that an
// extension without them covers every room of the answer.
func (p *pass) inScope(roomID string, r *Scoped) bool {
	w := p.wanted[roomID]
	if w == nil {
		return false
	}
	all := []string{"*"}
	lists, rooms := r.Lists, r.Rooms
	if lists == nil {
		lists = all
	}
	if rooms == nil {
		rooms = all
	}
	if w.subscribed && (slices.Contains(rooms, "*") || slices.Contains(rooms, roomID)) {
		return true
	}
	for _, l := range w.lists {
		if slices.Contains(lists, "*") || slices.Contains(lists, l) {
			return true
		}
	}
	return false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
