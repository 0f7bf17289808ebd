package slidingsync

import (
	"context"
	"slices"
	"strconv"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// extensions fills the extensions the request enables.
func (p *pass) extensions(ctx context.Context) error {
	ext := p.req.Extensions
	if ext.ToDevice.on() {
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
	return nil
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
// changed.
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
	if len(global)+len(rooms) > 0 && p.prev != nil {
		p.resp.changed = true
	}
	if global == nil {
		global = []accountdata.Event{}
	}
	p.resp.Extensions["account_data"] = map[string]any{"global": global, "rooms": rooms}
	return nil
}

// inScope reports whether a room is in an extension's lists and rooms:
// by default every room of the lists and subscriptions.
func (p *pass) inScope(roomID string, r *Scoped) bool {
	if r.Lists == nil && r.Rooms == nil {
		return p.wanted[roomID] != nil
	}
	if slices.Contains(r.Rooms, "*") || slices.Contains(r.Rooms, roomID) {
		return p.wanted[roomID] != nil || slices.Contains(r.Rooms, roomID)
	}
	return len(r.Lists) > 0 && p.wanted[roomID] != nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
