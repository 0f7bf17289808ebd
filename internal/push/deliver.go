package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// maxQueuedPerPusher bounds what waits for a failing gateway; the oldest
// go first, as a phone shows the latest anyway.
const maxQueuedPerPusher = 1000

// deliverer posts notifications to push gateways: one queue per pusher,
// drained by a goroutine of its own while it has work, which backs off
// exponentially while the gateway fails, so that one slow gateway holds
// up nobody else.
type deliverer struct {
	s *Service
	// ctx is the service's run context: queue runners outlive the
	// request that queued a badge update, and end with the service.
	ctx context.Context

	mu     sync.Mutex
	queues map[pusherKey]*pusherQueue
	// users have (or recently had) pushers; others cost no query.
	users map[string]bool
	wg    sync.WaitGroup
}

type pusherKey struct{ localpart, appID, pushkey string }

type pusherQueue struct{ items []pushItem }

// pushItem is one notification for one pusher; without an event it is
// a badge update (the user read something).
type pushItem struct {
	pusher   store.Pusher
	userID   string
	ev       *rooms.Event
	actions  pushrules.PushActionArray
	badge    int64
	queuedAt time.Time
}

func newDeliverer(s *Service) *deliverer {
	return &deliverer{s: s, queues: map[pusherKey]*pusherQueue{}, users: map[string]bool{}}
}

func (d *deliverer) load(ctx context.Context) error {
	lps, err := d.s.store.PusherLocalparts(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ctx = ctx
	for _, lp := range lps {
		d.users[lp] = true
	}
	return err
}

func (d *deliverer) addUser(localpart string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[localpart] = true
}

func (d *deliverer) wait() { d.wg.Wait() }

// enqueue queues a user's notification for each of their pushers; a nil
// event queues a badge update.
func (d *deliverer) enqueue(ctx context.Context, userID string, ev *rooms.Event, actions pushrules.PushActionArray) {
	localpart := strings.TrimPrefix(strings.TrimSuffix(userID, ":"+d.s.opts.ServerName), "@")
	d.mu.Lock()
	has := d.users[localpart]
	d.mu.Unlock()
	if !has {
		return
	}
	pushers, err := d.s.store.Pushers(ctx, localpart)
	if err != nil {
		d.s.opts.Log.Warn("push: loading pushers", "user", userID, "err", err)
		return
	}
	if len(pushers) == 0 {
		d.mu.Lock()
		delete(d.users, localpart)
		d.mu.Unlock()
		return
	}
	badge, err := d.s.store.TotalUnreadPush(ctx, userID)
	if err != nil {
		d.s.opts.Log.Warn("push: counting unread", "user", userID, "err", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range pushers {
		key := pusherKey{p.Localpart, p.AppID, p.Pushkey}
		q, running := d.queues[key]
		if !running {
			q = &pusherQueue{}
			d.queues[key] = q
		}
		if len(q.items) >= maxQueuedPerPusher {
			q.items = q.items[1:]
		}
		q.items = append(q.items, pushItem{pusher: p, userID: userID, ev: ev, actions: actions, badge: badge, queuedAt: time.Now()})
		if !running {
			runCtx := d.ctx
			if runCtx == nil {
				runCtx = ctx // the service is not running (tests of parts)
			}
			d.wg.Add(1)
			go d.run(runCtx, key)
		}
	}
}

// run drains one pusher's queue, retrying a failed post with exponential
// back-off, and ends when the queue is empty (or ctx ends).
func (d *deliverer) run(ctx context.Context, key pusherKey) {
	defer d.wg.Done()
	backoff := time.Duration(0)
	for {
		d.mu.Lock()
		q := d.queues[key]
		if len(q.items) == 0 {
			delete(d.queues, key)
			d.mu.Unlock()
			return
		}
		it := q.items[0]
		d.mu.Unlock()
		rejected, err := d.post(ctx, it)
		if err != nil {
			if time.Since(it.queuedAt) > d.s.opts.GiveUpAfter {
				eventID := "" // a badge update
				if it.ev != nil {
					eventID = it.ev.EventID()
				}
				d.s.opts.Log.Warn("push: giving up on a notification", "app_id", key.appID, "event_id", eventID, "err", err)
				d.pop(key)
				continue
			}
			backoff = min(max(2*backoff, d.s.opts.InitialBackoff), d.s.opts.MaxBackoff)
			d.s.opts.Log.Info("push: gateway failed, backing off", "app_id", key.appID, "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
				d.drop(key)
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		d.pop(key)
		if rejected {
			// The gateway no longer knows the pushkey (spec: the
			// homeserver must remove such pushers).
			if err := d.s.store.DeletePusher(ctx, key.localpart, key.appID, key.pushkey); err != nil {
				d.s.opts.Log.Warn("push: removing a rejected pusher", "err", err)
			}
			d.drop(key)
			return
		}
	}
}

func (d *deliverer) pop(key pusherKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q := d.queues[key]; q != nil && len(q.items) > 0 {
		q.items = q.items[1:]
	}
}

func (d *deliverer) drop(key pusherKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.queues, key)
}

// post sends one notification; it reports whether the gateway rejected
// the pushkey.
func (d *deliverer) post(ctx context.Context, it pushItem) (bool, error) {
	var data map[string]any
	_ = json.Unmarshal([]byte(it.pusher.Data), &data)
	url, _ := data["url"].(string)
	body, err := json.Marshal(map[string]any{"notification": d.payload(ctx, it, data)})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.s.opts.HTTPClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return false, fmt.Errorf("gateway answered %d", resp.StatusCode)
	}
	var out struct {
		Rejected []string `json:"rejected"`
	}
	_ = json.Unmarshal(raw, &out)
	for _, k := range out.Rejected {
		if k == it.pusher.Pushkey {
			return true, nil
		}
	}
	return false, nil
}

// payload is the notification of the push gateway API's /notify. As in
// Synapse, the priority is high when the event may make a sound or
// highlight (an encrypted one may), and the event_id_only format carries
// only the IDs, counts and devices.
func (d *deliverer) payload(ctx context.Context, it pushItem, data map[string]any) map[string]any {
	devData := map[string]any{}
	for k, v := range data {
		if k != "url" {
			devData[k] = v
		}
	}
	ev := it.ev
	if ev == nil {
		// A badge update: the new count and the device. The push
		// gateway spec lets event_id and the rest be omitted "for
		// notifications that only contain updated badge counts" (Synapse
		// sends them empty, "id": "", which no spec field is).
		return map[string]any{"counts": map[string]any{"unread": it.badge},
			"devices": []any{map[string]any{"app_id": it.pusher.AppID, "pushkey": it.pusher.Pushkey,
				"pushkey_ts": it.pusher.PushkeyTS / 1000, "data": devData}}}
	}
	tweaks := map[string]any{}
	for _, a := range it.actions {
		if a.Action == pushrules.ActionSetTweak {
			v := a.Value
			if v == nil && a.Tweak == pushrules.TweakHighlight {
				v = true
			}
			tweaks[string(a.Tweak)] = v
		}
	}
	prio := "low"
	if hl, _ := tweaks["highlight"].(bool); hl || tweaks["sound"] != nil || ev.Type() == "m.room.encrypted" {
		prio = "high"
	}
	device := map[string]any{"app_id": it.pusher.AppID, "pushkey": it.pusher.Pushkey,
		"pushkey_ts": it.pusher.PushkeyTS / 1000, "data": devData, "tweaks": tweaks}
	n := map[string]any{"event_id": ev.EventID(), "room_id": ev.RoomID().String(), "prio": prio,
		"counts": map[string]any{"unread": it.badge}, "devices": []any{device}}
	if data["format"] == "event_id_only" {
		return n
	}
	n["type"] = ev.Type()
	n["sender"] = ev.Sender()
	n["content"] = json.RawMessage(ev.Content())
	room := &roomContext{s: d.s, ctx: ctx, ev: ev}
	if name := displayName(room.stateEvent(spec.MRoomMember, ev.Sender())); name != "" {
		n["sender_display_name"] = name
	}
	if nameEv := room.stateEvent(spec.MRoomName, ""); nameEv != nil {
		var c struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(nameEv.Content(), &c) == nil && c.Name != "" {
			n["room_name"] = c.Name
		}
	}
	if ev.Type() == spec.MRoomMember && ev.StateKey() != nil {
		m, _ := ev.Membership()
		n["membership"] = m
		n["user_is_target"] = *ev.StateKey() == it.userID
	}
	return n
}
