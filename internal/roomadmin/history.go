package roomadmin

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Purging a room's old events (Synapse's purge history API): the
// timeline before a point goes, state events and, unless asked,
// local users' events stay.

// HistoryRequest is a history purge's parameters: up to (not including)
// the event UpToEventID, or the last event at or before UpToTS.
type HistoryRequest struct {
	RoomID            string
	UpToEventID       string
	UpToTS            *int64
	DeleteLocalEvents bool
	Requester         string
	before            int64
}

// The states of a history purge, as Synapse names them.
const (
	PurgeActive   = "active"
	PurgeComplete = "complete"
	PurgeFailed   = "failed"
)

// HistoryPurge is one history purge and where it stands.
type HistoryPurge struct {
	PurgeID, RoomID, Status, Error string
	Deleted                        int
	done                           time.Time
}

// checkHistory resolves where a purge stops; 400 as Synapse when it
// cannot tell.
func (s *Service) checkHistory(ctx context.Context, req *HistoryRequest) error {
	if _, err := s.currentState(ctx, req.RoomID); err != nil {
		return err
	}
	switch {
	case req.UpToEventID != "":
		ev, err := s.o.Rooms.Event(ctx, req.UpToEventID)
		if err != nil || ev == nil {
			return mxerr.NotFound("Event not found: %s", req.UpToEventID)
		}
		if ev.RoomID().String() != req.RoomID {
			return badRequest("Event is for wrong room.")
		}
		if ev.StreamPos == 0 {
			return badRequest("Event is an outlier")
		}
		req.before = ev.StreamPos
	case req.UpToTS != nil:
		id, _, ok, err := s.o.Rooms.FirstEventNear(ctx, req.RoomID, *req.UpToTS, s.CurrentPos(), true)
		if err != nil {
			return err
		}
		if !ok {
			return badRequest("there is no event to be purged")
		}
		ev, err := s.o.Rooms.Event(ctx, id)
		if err != nil {
			return err
		}
		req.before = ev.StreamPos
	default:
		return mxerr.MissingParam("must specify purge_up_to_event_id or purge_up_to_ts")
	}
	return nil
}

// StartHistoryPurge checks a purge and queues it; it returns the purge ID.
func (d *Deletions) StartHistoryPurge(ctx context.Context, req HistoryRequest) (string, error) {
	if err := d.s.checkHistory(ctx, &req); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.purges {
		if p.RoomID == req.RoomID && p.Status == PurgeActive {
			return "", badRequest("History purge already in progress for " + req.RoomID)
		}
	}
	id := rand.Text()[:16]
	d.purges[id] = &HistoryPurge{PurgeID: id, RoomID: req.RoomID, Status: PurgeActive}
	d.queue = append(d.queue, ShutdownRequestJob{ID: id, History: &req})
	d.queued[id] = d.now()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return id, nil
}

func (d *Deletions) runHistory(ctx context.Context, id string, req HistoryRequest) {
	local := ":" + d.s.o.ServerName
	if req.DeleteLocalEvents {
		local = ""
	}
	d.s.o.Log.Info("admin: purging room history", "room_id", req.RoomID, "purge_id", id, "by", req.Requester, "delete_local_events", req.DeleteLocalEvents)
	n, err := d.s.o.Rooms.PurgeHistory(ctx, req.RoomID, func(ctx context.Context) (store.PurgedRoom, error) {
		return d.s.o.Store.PurgeHistory(ctx, req.RoomID, req.before, local)
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.purges[id]
	p.Status, p.Deleted, p.done = PurgeComplete, n, d.now()
	if err != nil {
		p.Status, p.Error = PurgeFailed, err.Error()
		d.s.o.Log.Warn("admin: history purge failed", "room_id", req.RoomID, "purge_id", id, "err", err)
	}
}

// HistoryStatus is one history purge; ok is false for an unknown ID.
func (d *Deletions) HistoryStatus(id string) (HistoryPurge, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cutoff := d.now().Add(-keepDeletions)
	for k, p := range d.purges {
		if !p.done.IsZero() && p.done.Before(cutoff) {
			delete(d.purges, k)
		}
	}
	p, ok := d.purges[id]
	if !ok {
		return HistoryPurge{}, false
	}
	return *p, true
}
